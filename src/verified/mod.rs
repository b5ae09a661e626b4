//! The verified-token cache: what a verification found (an identity), kept
//! per worker within a memory budget and shared between the gateway's
//! workers. Above `config` and `keys` (its entries are versioned by the
//! configuration and the key sets), below the request path that uses it.

pub mod cache;
pub mod identity;
pub mod shared_cache;
