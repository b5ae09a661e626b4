//! Cookie plumbing for browser sessions: AEAD-sealed values (`seal`), and
//! reading, writing, splitting across `<name>_N` cookies and clearing them
//! (`jar`). What a session holds is `oidc::session`'s business.

pub mod jar;
pub mod seal;
