//! The OAuth2 token endpoint at `auth_path`: client-credentials grant
//! (RFC 6749 §4.4), drop-in for the MSE/Higress `oauth` plugin, with its
//! holes closed (other methods, empty bodies, mixed client authentication).

use std::rc::Rc;

use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::{Consumer, Scope};
use crate::decision::{server_error, Decision, Reply};
use crate::form::{self, basic_credentials, FormError};
use crate::host::{Host, LogLevel};
use crate::token::issue::{issue_access_token, AccessTokenRequest};

/// Form bodies bigger than this are refused before parsing.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
use crate::token::GLOBAL_AUDIENCE as DEFAULT_AUDIENCE;
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The request line and headers of a token request.
pub struct TokenRequestHead<'r> {
    pub method: &'r str,
    /// `:path` with its query.
    pub path: &'r str,
    pub content_type: Option<&'r str>,
    pub authorization: Option<String>,
    pub route_name: String,
    /// The request has no body (`end_of_stream` on the headers).
    pub end_of_stream: bool,
}

/// A POST whose form body is still on its way.
#[derive(Debug)]
pub struct PendingTokenRequest {
    scope: Rc<Scope>,
    route_name: String,
    authorization: Option<String>,
}

pub fn on_headers<'c, H: Host>(
    scope: &Rc<Scope>,
    head: TokenRequestHead<'_>,
    host: &mut H,
) -> Decision<'c> {
    match head.method {
        "GET" => {
            let params = form::query(head.path).unwrap_or("");
            Decision::Reply(grant(
                scope,
                &head.route_name,
                params,
                head.authorization.as_deref(),
                host,
            ))
        }
        "POST" => {
            let is_form = head.content_type.is_some_and(|ct| {
                ct.split(';')
                    .next()
                    .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE))
            });
            if !is_form {
                return Decision::Reply(error(
                    400,
                    "invalid_request",
                    "content-type must be application/x-www-form-urlencoded",
                ));
            }
            if head.end_of_stream {
                return Decision::Reply(error(400, "invalid_request", "request body is missing"));
            }
            Decision::ReadBody(PendingTokenRequest {
                scope: Rc::clone(scope),
                route_name: head.route_name,
                authorization: head.authorization,
            })
        }
        _ => {
            let mut reply = error(
                405,
                "invalid_request",
                "method not allowed, use GET or POST",
            );
            reply.headers.push(("allow", "GET, POST".into()));
            Decision::Reply(reply)
        }
    }
}

/// Finishes a POST once the whole body is in.
pub fn on_body<H: Host>(pending: &PendingTokenRequest, body: &[u8], host: &mut H) -> Reply {
    if body.is_empty() {
        return error(400, "invalid_request", "request body is missing");
    }
    if body.len() > MAX_FORM_BYTES {
        return body_too_large();
    }
    let Ok(params) = std::str::from_utf8(body) else {
        return error(400, "invalid_request", "malformed parameters");
    };
    grant(
        &pending.scope,
        &pending.route_name,
        params,
        pending.authorization.as_deref(),
        host,
    )
}

pub fn body_too_large() -> Reply {
    error(413, "invalid_request", "request body too large")
}

fn grant<H: Host>(
    scope: &Scope,
    route_name: &str,
    params: &str,
    authorization: Option<&str>,
    host: &mut H,
) -> Reply {
    let reply = issue(scope, route_name, params, authorization, host);
    count_outcome(&reply, host);
    reply
}

/// `tokens_issued`, or `token_endpoint_errors_<error code>`.
pub fn count_outcome<H: Host>(reply: &Reply, host: &H) {
    if reply.status == 200 {
        host.count("tokens_issued");
        return;
    }
    let code = serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.as_str())
                .map(crate::host::slug)
        })
        .unwrap_or_else(|| "server_error".into());
    host.count(&format!("token_endpoint_errors_{code}"));
}

fn issue<H: Host>(
    scope: &Scope,
    route_name: &str,
    params: &str,
    authorization: Option<&str>,
    host: &mut H,
) -> Reply {
    let [grant_type, client_id, client_secret, requested_scope] = match form::pick(
        params,
        ["grant_type", "client_id", "client_secret", "scope"],
    ) {
        Ok(found) => found,
        Err(FormError::Repeated(name)) => {
            return error(400, "invalid_request", &format!("{name} is repeated"))
        }
        Err(FormError::Malformed) => return error(400, "invalid_request", "malformed parameters"),
    };
    match grant_type.as_deref() {
        None => return error(400, "invalid_request", "grant_type is missing"),
        Some("client_credentials") => {}
        Some(_) => {
            return error(
                400,
                "unsupported_grant_type",
                "grant_type is not supported, only client_credentials is",
            )
        }
    }

    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
    let basic = authorization.and_then(basic_credentials);
    let (client_id, client_secret, via_basic) = match basic {
        None => (client_id, client_secret, false),
        Some(_) if client_id.is_some() || client_secret.is_some() => {
            return error(
                400,
                "invalid_request",
                "client credentials must be sent either in Authorization: Basic or as parameters, not both",
            )
        }
        Some(Err(_)) => return invalid_client(true),
        Some(Ok(creds)) => (Some(creds.client_id), Some(creds.client_secret), true),
    };
    let Some(client_id) = client_id.filter(|s| !s.is_empty()) else {
        return error(400, "invalid_request", "client_id is missing");
    };
    let Some(client_secret) = client_secret.filter(|s| !s.is_empty()) else {
        return error(400, "invalid_request", "client_secret is missing");
    };
    let Some(consumer) = authenticate_client(scope, &client_id, &client_secret) else {
        host.log(
            LogLevel::Debug,
            "edge-auth: token request refused: invalid client credentials",
        );
        return invalid_client(via_basic);
    };
    if let Some(s) = requested_scope.as_deref() {
        if !is_valid_scope(s) {
            return error(400, "invalid_scope", "scope has invalid characters");
        }
    }

    let mut jti_random = [0u8; 16];
    if let Err(e) = host.random_bytes(&mut jti_random) {
        host.log(
            LogLevel::Error,
            &format!(
                "edge-auth: no random bytes for jti ({}); token not issued",
                e.0
            ),
        );
        return server_error();
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
    json_reply(
        200,
        json!({"token_type": "bearer", "access_token": token, "expires_in": scope.token_ttl}),
    )
}

/// Looks the client up and compares the secret in constant time.
fn authenticate_client<'s>(
    scope: &'s Scope,
    client_id: &str,
    secret: &str,
) -> Option<&'s Consumer> {
    let consumer = scope.consumers.by_client_id(client_id)?;
    bool::from(consumer.secret.as_slice().ct_eq(secret.as_bytes())).then_some(consumer)
}

/// RFC 6749 §3.3: space-separated NQCHAR tokens.
fn is_valid_scope(scope: &str) -> bool {
    scope
        .bytes()
        .all(|b| b == b' ' || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn invalid_client(via_basic: bool) -> Reply {
    let description = "invalid client_id or client_secret";
    if via_basic {
        // RFC 6749 §5.2: 401 with a challenge for the scheme the client used.
        let mut reply = error(401, "invalid_client", description);
        reply
            .headers
            .push(("www-authenticate", "Basic realm=\"oauth2\"".into()));
        reply
    } else {
        error(400, "invalid_client", description)
    }
}

fn error(status: u32, code: &str, description: &str) -> Reply {
    json_reply(
        status,
        json!({"error": code, "error_description": description}),
    )
}

fn json_reply(status: u32, body: serde_json::Value) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type", "application/json".into()),
            ("cache-control", "no-store".into()),
            ("pragma", "no-cache".into()),
        ],
        body: body.to_string(),
    }
}
