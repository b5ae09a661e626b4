//! OpenID Connect single sign-on (authorization code + PKCE).

pub mod flow;
pub mod id_token;
mod identity;
mod idp_call;
mod login;
mod logout;
mod paths;
pub mod redirect;
pub mod session;
mod session_store;
