//! The single sign-on state machine: what one request in a scope with an
//! `oidc` block leads to (login, callback, sign-out, a session or bearer
//! forward, a refresh), and what each answer of the IdP leads to. The steps
//! themselves live in the sibling modules: `login` (login + callback, CSRF
//! state), `idp_call` (token endpoint calls), `session_store` (the sealed
//! session cookie), `identity` (upstream identity headers), `logout`.

use std::rc::Rc;

use super::identity::{bearer_forward, session_forward};
use super::idp_call::{new_keys_request, token_call, token_response, TokenResponse};
use super::login::{callback, login_cookie_attributes, login_or_401, unauthorized};
use super::logout::sign_out;
use super::pages;
use super::redirect::safe_redirect;
use super::session_store::{
    clear_session, new_session, read_session, refresh_due, write_session, SessionRefusal,
};
use crate::audit::Verdict;
use crate::config::{Config, OidcScope, DEFAULT_CALL_TIMEOUT_MS};
use crate::cookie::jar as cookie;
use crate::decision::{redirect, Decision, Forward, Reply};
use crate::host::{Host, LogLevel};
use crate::keys::remote::idp_backoff::unavailable;
use crate::keys::remote::{accept_jwks, jwks_fetch_failed};

pub use super::continuation::{CallOut, Continuation};
pub use super::paths::needs_auth;
pub use super::sso_request::SsoRequest;

/// Entry point for a request in a scope with an `oidc` block.
pub fn on_request<'c, H: Host>(
    config: &'c Config,
    sso: &Rc<OidcScope>,
    rule: Option<usize>,
    req: &SsoRequest<'_>,
    host: &mut H,
) -> Decision<'c, CallOut> {
    let oidc = &sso.config;
    if req.canonical_path.is(&oidc.callback_path) {
        return callback(sso, req, host);
    }
    if req.canonical_path.is(&oidc.logout_path) {
        return Decision::Reply(sign_out(sso, req));
    }
    let allow = rule
        .and_then(|i| config.rules.get(i))
        .and_then(|r| r.allow.as_ref());
    if allow.is_none() && !needs_auth(oidc, req.host, req.canonical_path) {
        return Decision::Forward(Forward::anonymous(&config.identity_headers));
    }
    let now = host.now_unix_seconds();
    if oidc.accept_bearer {
        if let Some(token) = bearer(req.authorization) {
            return decide(bearer_forward(config, sso, token, allow, req, now));
        }
    }
    // Both the endpoints and the signing keys: a login that starts before
    // the keys are in would burn its code at a callback that cannot check
    // the ID token (another worker may publish the two a moment apart).
    let (Some(metadata), Some(_)) = (sso.provider.metadata(), sso.provider.current()) else {
        return Decision::Reply(pages::idp_unreachable(
            &*host,
            req.is_navigation(),
            req.path,
            req.authority,
        ));
    };
    let Some(session) = read_session(oidc, req.cookie, now) else {
        return login_or_401(sso, &metadata, req, host);
    };
    if refresh_due(oidc, &session, now) {
        if let Some(refresh_token) = session.refresh_token.clone() {
            // The IdP just failed to answer a refresh: refused now rather
            // than held for another call timeout (the session is kept).
            if !sso
                .provider
                .idp_backoff
                .may_call(host.now_unix_millis(), DEFAULT_CALL_TIMEOUT_MS)
            {
                host.count("sso_refresh_deferred");
                return Decision::Reply(idp_unavailable(sso, req, host));
            }
            return token_call(
                oidc,
                &metadata,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &refresh_token),
                ],
                Continuation::Refresh {
                    sso: Rc::clone(sso),
                    session,
                    rule,
                    navigation: req.is_navigation(),
                },
            )
            .unwrap_or_else(Decision::Reply);
        }
        // Nothing to refresh with: valid until the access token expires.
        if now >= session.expires_at {
            return login_or_401(sso, &metadata, req, host);
        }
    }
    decide(
        session_forward(config, sso, &session, allow, Vec::new()).map_err(|r| {
            pages::access_denied_for_browser(
                r,
                &*host,
                req.is_navigation(),
                req.path,
                req.authority,
                &oidc.logout_path,
            )
        }),
    )
}

/// 503 for a request whose session needs a refresh the IdP cannot make
/// now (the "sign-in is unavailable" page for a navigation), retryable after
/// the backoff; its cookie is left alone.
fn idp_unavailable<H: Host>(sso: &OidcScope, req: &SsoRequest<'_>, host: &H) -> Reply {
    let mut reply = pages::idp_unreachable(host, req.is_navigation(), req.path, req.authority);
    let seconds = sso
        .provider
        .idp_backoff
        .retry_after_seconds(host.now_unix_millis())
        .to_string();
    reply
        .headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("retry-after"));
    reply.headers.push(("retry-after", seconds));
    reply
}

fn decide(result: Result<Forward<'_>, Reply>) -> Decision<'_, CallOut> {
    match result {
        Ok(forward) => Decision::Forward(forward),
        Err(reply) => Decision::Reply(reply),
    }
}

fn bearer(authorization: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The IdP answered a code exchange, a refresh or a key fetch.
pub fn on_response<'c, H: Host>(
    config: &'c Config,
    then: Continuation,
    status: Option<u32>,
    body: &[u8],
    req: &SsoRequest<'_>,
    host: &mut H,
) -> Decision<'c, CallOut> {
    match then {
        // No answer at all: the same call once more. Safe to repeat: a code
        // or refresh token the IdP did take is refused the second time.
        Continuation::RetryOnce {
            cluster,
            headers,
            body: request,
            timeout_ms,
            then,
        } if status.is_none() => {
            host.log(
                LogLevel::Debug,
                "edge-auth: no answer from the identity provider's token endpoint; trying once more",
            );
            Decision::Wait(CallOut {
                cluster,
                headers,
                body: request,
                timeout_ms,
                then: *then,
            })
        }
        Continuation::RetryOnce { then, .. } => on_response(config, *then, status, body, req, host),
        Continuation::NewKeysThen {
            then,
            status: answer_status,
            body: answer,
        } => {
            let provider = &then.sso().provider;
            if status == Some(200) {
                accept_jwks(provider, body, host);
            } else {
                jwks_fetch_failed(provider, status, host);
            }
            // Once only: with the keys as they now are, valid or not.
            let response = token_response(answer_status, &answer);
            on_token_response(config, *then, response, req, host)
        }
        then => {
            let now_ms = host.now_unix_millis();
            then.sso().provider.idp_backoff.record(status, now_ms);
            if let Continuation::Refresh { sso, .. } = &then {
                if unavailable(status) {
                    // Not a refusal: the refresh token may be good, so the
                    // session stays for a retry once the IdP answers.
                    host.log(
                        LogLevel::Info,
                        "edge-auth: session refresh failed: the identity provider did not answer [idp_unavailable]",
                    );
                    host.count("sso_refresh_failed");
                    return Decision::Reply(idp_unavailable(sso, req, host));
                }
            }
            let response = token_response(status, body);
            match response.as_ref().and_then(|r| new_keys_request(&then, r)) {
                Some(fetch) => Decision::Wait(CallOut {
                    cluster: fetch.cluster,
                    headers: fetch.headers,
                    body: Vec::new(),
                    timeout_ms: fetch.timeout_ms,
                    then: Continuation::NewKeysThen {
                        then: Box::new(then),
                        status,
                        body: body.to_vec(),
                    },
                }),
                None => on_token_response(config, then, response, req, host),
            }
        }
    }
}

/// The IdP answered a code exchange or a refresh.
fn on_token_response<'c, H: Host>(
    config: &'c Config,
    then: Continuation,
    response: Option<TokenResponse>,
    req: &SsoRequest<'_>,
    host: &mut H,
) -> Decision<'c, CallOut> {
    let now = host.now_unix_seconds();
    match then {
        Continuation::Exchange {
            sso,
            login,
            login_cookie,
        } => {
            let oidc = &sso.config;
            let clear_login = cookie::clear_line(&login_cookie, &login_cookie_attributes(oidc));
            let Some(response) = response else {
                host.log(
                    LogLevel::Debug,
                    "edge-auth: code exchange refused by the identity provider",
                );
                host.count("sso_logins_failed");
                return Decision::Reply(pages::sign_in_failed(
                    &*host,
                    "code_refused",
                    Some(&login.url),
                    req.authority,
                    vec![clear_login],
                ));
            };
            match new_session(&sso, None, response, Some(&login.nonce), now) {
                Ok(session) => {
                    let mut cookies = match write_session(&sso, &session, req, host) {
                        Ok(lines) => lines,
                        Err(reply) => return Decision::Reply(reply),
                    };
                    cookies.push(clear_login);
                    let target =
                        safe_redirect(&login.url, req.authority, &oidc.allowed_redirect_domains)
                            .unwrap_or_else(|| "/".into());
                    host.log(LogLevel::Debug, "edge-auth: sign-in completed");
                    host.count("sso_logins_completed");
                    Decision::Reply(
                        redirect(&target, cookies).because(Verdict::new("sso_signed_in", "")),
                    )
                }
                Err(refusal) => {
                    host.log(
                        LogLevel::Info,
                        &format!(
                            "edge-auth: sign-in refused: {} [{}]",
                            refusal.reason, refusal.code
                        ),
                    );
                    host.count("sso_logins_failed");
                    Decision::Reply(pages::sign_in_failed(
                        &*host,
                        refusal.code,
                        Some(&login.url),
                        req.authority,
                        vec![clear_login],
                    ))
                }
            }
        }
        Continuation::Refresh {
            sso,
            session,
            rule,
            navigation,
        } => {
            let allow = rule
                .and_then(|i| config.rules.get(i))
                .and_then(|r| r.allow.as_ref());
            let refreshed = response
                .ok_or(SessionRefusal {
                    code: "refresh_refused",
                    reason: "refresh refused by the identity provider",
                })
                .and_then(|r| new_session(&sso, Some(&session), r, None, now));
            match refreshed {
                Ok(session) => {
                    host.count("sso_refreshes");
                    let cookies = match write_session(&sso, &session, req, host) {
                        Ok(lines) => lines,
                        Err(reply) => return Decision::Reply(reply),
                    };
                    match session_forward(config, &sso, &session, allow, cookies) {
                        Ok(forward) => Decision::Forward(forward),
                        Err(reply) => Decision::Reply(reply),
                    }
                }
                Err(refusal) => {
                    host.log(
                        LogLevel::Info,
                        &format!(
                            "edge-auth: session refresh failed: {} [{}]",
                            refusal.reason, refusal.code
                        ),
                    );
                    host.count("sso_refresh_failed");
                    let clear = clear_session(&sso.config, req.cookie);
                    if !navigation {
                        let mut reply = unauthorized(req);
                        reply
                            .headers
                            .extend(clear.into_iter().map(|c| ("set-cookie", c)));
                        return Decision::Reply(reply);
                    }
                    let Some(metadata) = sso.provider.metadata() else {
                        return Decision::Reply(pages::idp_unreachable(
                            &*host,
                            true,
                            req.path,
                            req.authority,
                        ));
                    };
                    match login_or_401(&sso, &metadata, req, host) {
                        Decision::Reply(mut reply) => {
                            reply
                                .headers
                                .extend(clear.into_iter().map(|c| ("set-cookie", c)));
                            Decision::Reply(reply)
                        }
                        other => other,
                    }
                }
            }
        }
        // Unwrapped by on_response before this point.
        Continuation::NewKeysThen { .. } | Continuation::RetryOnce { .. } => {
            Decision::Reply(crate::decision::server_error())
        }
    }
}
