//! Browser sessions: AEAD-sealed cookie values, split across `<name>_N`
//! cookies when too big for one, and `Set-Cookie` lines to write or clear
//! them.

pub mod cookie;
pub mod seal;
