//! Why a bearer request was refused, and the reply that says so: 401 with a
//! `WWW-Authenticate: Bearer` challenge, 403, or 503 while keys are missing.

use crate::audit::{self, Who};
use crate::decision::{bearer_challenge, keys_unavailable, realm, Reply};
use crate::form;
use crate::host::Host;
use crate::token::TokenError;

/// Why a request was refused, before it becomes a reply.
pub(super) struct Refusal {
    pub(super) status: u32,
    /// Stable, machine-readable: metrics (`denied_<status>_<code>`) and logs.
    pub(super) code: &'static str,
    /// For people: `error_description` and the debug log.
    pub(super) reason: &'static str,
    /// A token was presented (it gets `error="invalid_token"`).
    token_presented: bool,
    /// The verified identity refused (not in the allow list), for the
    /// audit record.
    pub(super) who: Option<Box<Who>>,
}

impl Refusal {
    pub(super) fn unauthorized(
        code: &'static str,
        reason: &'static str,
        token_presented: bool,
    ) -> Self {
        Refusal {
            status: 401,
            code,
            reason,
            token_presented,
            who: None,
        }
    }

    pub(super) fn forbidden(code: &'static str, reason: &'static str) -> Self {
        Refusal {
            status: 403,
            code,
            reason,
            token_presented: true,
            who: None,
        }
    }

    pub(super) fn into_reply<H: Host>(self, host: &H, authority: &str, path: &str) -> Reply {
        match self.status {
            403 => {
                return Reply {
                    status: 403,
                    headers: vec![("content-type", "text/plain".into())],
                    body: "Access Denied.".into(),
                    verdict: audit::denied(self.code),
                    who: self.who,
                }
            }
            503 => return keys_unavailable().because(audit::denied(self.code)),
            _ => {}
        }
        let scheme = host
            .request_header(":scheme")
            .unwrap_or_else(|| "http".into());
        let realm = realm(&scheme, authority, form::path_only(path));
        let challenge = bearer_challenge(&realm, self.token_presented.then_some(self.reason));
        Reply {
            status: 401,
            headers: vec![
                ("content-type", "text/plain".into()),
                ("www-authenticate", challenge),
            ],
            body: "Invalid Jwt token.".into(),
            verdict: audit::denied(self.code),
            who: None,
        }
    }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::KeysUnavailable => Refusal {
                status: 503,
                code: e.code(),
                reason: e.description(),
                token_presented: true,
                who: None,
            },
            _ => Refusal::unauthorized(e.code(), e.description(), true),
        }
    }
}
