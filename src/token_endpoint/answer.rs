//! The token endpoint's answers as outcomes: why it refused (stable codes,
//! RFC 6749 §5.2 `error`), the JSON replies, and counting each one.

use serde_json::json;

use crate::audit;
use crate::decision::Reply;
use crate::host::Host;

/// Why the token endpoint refused: a stable code for metrics and logs (never
/// derived from the reply's text), and the RFC 6749 §5.2 `error` it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    InvalidRequest,
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
    MethodNotAllowed,
    BodyTooLarge,
    BodyNotReceived,
    ServerError,
}

impl TokenError {
    /// Counted as `token_endpoint_errors_<code>`.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::InvalidRequest => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidScope => "invalid_scope",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::MethodNotAllowed => "method_not_allowed",
            TokenError::BodyTooLarge => "body_too_large",
            TokenError::BodyNotReceived => "body_not_received",
            TokenError::ServerError => "server_error",
        }
    }

    /// The `error` member of the JSON reply.
    pub fn rfc6749_error(self) -> &'static str {
        match self {
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidScope => "invalid_scope",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::ServerError => "server_error",
            TokenError::InvalidRequest
            | TokenError::MethodNotAllowed
            | TokenError::BodyTooLarge
            | TokenError::BodyNotReceived => "invalid_request",
        }
    }
}

/// How a token request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Issued,
    Refused(TokenError),
}

/// A reply together with the outcome it stands for.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) outcome: Outcome,
    pub(super) reply: Reply,
}

/// Counts the outcome (`tokens_issued` or `token_endpoint_errors_<code>`)
/// and hands over the reply.
pub(super) fn counted<H: Host>(answer: Answer, host: &H) -> Reply {
    let verdict = match answer.outcome {
        Outcome::Issued => {
            host.count("tokens_issued");
            audit::Verdict::new("token_issued", "")
        }
        Outcome::Refused(e) => {
            host.count(&format!("token_endpoint_errors_{}", e.code()));
            audit::Verdict::new("token_refused", e.code())
        }
    };
    answer.reply.because(verdict)
}

pub(super) fn body_too_large() -> Answer {
    error(413, TokenError::BodyTooLarge, "request body too large")
}

pub(super) fn invalid_client(via_basic: bool) -> Answer {
    let description = "invalid client_id or client_secret";
    if via_basic {
        // RFC 6749 §5.2: 401 with a challenge for the scheme the client used.
        let mut answer = error(401, TokenError::InvalidClient, description);
        answer
            .reply
            .headers
            .push(("www-authenticate", "Basic realm=\"oauth2\"".into()));
        answer
    } else {
        error(400, TokenError::InvalidClient, description)
    }
}

pub(super) fn error(status: u32, why: TokenError, description: &str) -> Answer {
    Answer {
        outcome: Outcome::Refused(why),
        reply: json_reply(
            status,
            json!({"error": why.rfc6749_error(), "error_description": description}),
        ),
    }
}

pub(super) fn json_reply(status: u32, body: serde_json::Value) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type", "application/json".into()),
            ("cache-control", "no-store".into()),
            ("pragma", "no-cache".into()),
        ],
        body: body.to_string(),
        verdict: audit::Verdict::new("token_refused", ""),
        who: None,
    }
}
