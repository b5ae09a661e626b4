//! What an SSO request waits for: a call to the IdP, and what to do with
//! its answer (code exchange, refresh, a key fetch, one retry).

use std::rc::Rc;

use super::session::{LoginState, Session};
use crate::config::OidcScope;

/// An HTTP call to the IdP (code exchange, refresh, keys); the request
/// waits, then `then` decides with the answer.
#[derive(Debug)]
pub struct CallOut {
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: u64,
    pub then: Continuation,
}

/// What to do when the IdP answers a call.
#[derive(Debug)]
pub enum Continuation {
    Exchange {
        sso: Rc<OidcScope>,
        login: LoginState,
        login_cookie: String,
    },
    Refresh {
        sso: Rc<OidcScope>,
        session: Session,
        /// Index of the rule whose `allow` applies, if any.
        rule: Option<usize>,
        navigation: bool,
    },
    /// The IdP answered `then`'s call with an ID token signed by a key we
    /// do not hold (it rotated its keys): its JWKS is being fetched, then
    /// that answer (`status`, `body`) is taken up again with the new keys.
    NewKeysThen {
        then: Box<Continuation>,
        status: Option<u32>,
        body: Vec<u8>,
    },
    /// A call to the IdP's token endpoint that is sent once more when it
    /// gets no answer at all (a kept-alive connection the IdP had just
    /// closed, a reset): then `then`.
    RetryOnce {
        cluster: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout_ms: u64,
        then: Box<Continuation>,
    },
}

impl Continuation {
    pub(super) fn sso(&self) -> &Rc<OidcScope> {
        match self {
            Continuation::Exchange { sso, .. } | Continuation::Refresh { sso, .. } => sso,
            Continuation::NewKeysThen { then, .. } | Continuation::RetryOnce { then, .. } => {
                then.sso()
            }
        }
    }

    /// Whether this continuation fetches keys (the caller's verified-token
    /// cache must then be cleared).
    pub fn fetches_keys(&self) -> bool {
        matches!(self, Continuation::NewKeysThen { .. })
    }
}
