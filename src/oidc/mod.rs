//! OpenID Connect single sign-on steps (authorization code + PKCE).

pub mod flow;
pub mod id_token;
pub mod pages;
pub mod redirect;
pub mod session;
