//! OpenID Connect single sign-on (authorization code + PKCE).

mod continuation;
pub mod flow;
pub mod id_token;
mod identity;
mod idp_call;
mod login;
mod logout;
pub mod pages;
mod paths;
pub mod redirect;
pub mod session;
mod session_store;
mod sso_request;
