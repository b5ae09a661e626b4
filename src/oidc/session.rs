//! Session data: what the sealed session and login cookies hold (the
//! sealing and cookie plumbing are `crate::cookie`).

use serde::{Deserialize, Serialize};

/// A signed-in browser: its tokens and when they were obtained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id_token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires.
    pub expires_at: u64,
    /// When the session was created (login) and last refreshed.
    pub created_at: u64,
    pub refreshed_at: u64,
}

/// One login in flight, kept in its own cookie so parallel tabs each finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Where the browser was going (a path on this host).
    pub url: String,
    pub created_at: u64,
}

/// How long a login may take (the login cookie's lifetime); the config
/// checks `cookie_csrf_expire` against it.
pub use crate::config::oidc::LOGIN_TTL_SECONDS;
