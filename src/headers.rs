//! Header names more than one layer uses (a leaf: imports nothing).

/// The header the backend learns the caller from (MSE/Higress convention).
/// Every spelling a client sends is removed before the plugin sets it.
pub const CONSUMER_HEADER: &str = "x-mse-consumer";
