//! OpenID Connect single sign-on steps (authorization code + PKCE).

pub mod redirect;
