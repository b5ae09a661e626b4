//! Issuing the access token for a granted request: a random `jti`, the
//! audience the token is bound to, the signed token and its JSON reply.

use serde_json::json;

use crate::audit::{ConsumerKind, Who};
use crate::config::Scope;
use crate::decision::server_error;
use crate::host::{Host, LogLevel};
use crate::token::issue::{issue_access_token, uuid_v4, AccessTokenRequest};
use crate::token::GLOBAL_AUDIENCE as DEFAULT_AUDIENCE;

use super::answer::{json_reply, Answer, Outcome, TokenError};
use super::grant::Grant;

/// The token for `grant`, bound to `route_name` (or to the global audience
/// on a global-credentials endpoint).
pub(super) fn issue_token<H: Host>(
    scope: &Scope,
    route_name: &str,
    grant: Grant<'_>,
    host: &mut H,
) -> Answer {
    let Grant {
        consumer,
        requested_scope,
    } = grant;
    let mut jti_random = [0u8; 16];
    if let Err(e) = host.random_bytes(&mut jti_random) {
        host.log(
            LogLevel::Error,
            &format!(
                "edge-auth: no random bytes for jti ({}); token not issued",
                e.0
            ),
        );
        return Answer {
            outcome: Outcome::Refused(TokenError::ServerError),
            reply: server_error(),
        };
    }
    let audience = if scope.global_credentials {
        DEFAULT_AUDIENCE
    } else {
        route_name
    };
    let token = issue_access_token(&AccessTokenRequest {
        consumer,
        issuer: &scope.issuer,
        audience,
        scope: requested_scope.as_deref(),
        now: host.now_unix_seconds(),
        ttl: scope.token_ttl,
        jti_random,
    });
    let mut reply = json_reply(
        200,
        json!({"token_type": "bearer", "access_token": token, "expires_in": scope.token_ttl}),
    );
    // The audit trail names the client and the token's jti, never the token.
    reply.who = Some(Box::new(Who {
        consumer: consumer.name.clone(),
        kind: ConsumerKind::Gateway,
        sub: Some(consumer.name.clone()),
        jti: Some(uuid_v4(jti_random)),
    }));
    Answer {
        outcome: Outcome::Issued,
        reply,
    }
}
