//! What a signed-in user (session) or an API client (IdP bearer token) is
//! forwarded with: the consumer from the configured claim, the `allow`
//! check, claims to headers, the token in `Authorization`,
//! `X-Forwarded-Access-Token`, `X-Userinfo`, and the request's cookies
//! without ours.

use serde_json::{Map, Value};

use super::pages;
use super::session::Session;
use super::sso_request::SsoRequest;
use crate::audit::{self, ConsumerKind};
use crate::config::oidc::{OidcConfig, PassToken};
use crate::config::{AllowList, Config, OidcScope};
use crate::decision::{bearer_challenge, keys_unavailable, CookieEdit, Forward, Reply};
use crate::token::jwt::{self, claim_header_value};
use crate::token::policy::{self, OidcToken, Policy};
use crate::token::TokenError;

/// Upstream headers for a signed-in user.
pub(super) fn session_forward<'c>(
    config: &'c Config,
    sso: &OidcScope,
    session: &Session,
    allow: Option<&AllowList>,
    response_cookies: Vec<String>,
) -> Result<Forward<'c>, Reply> {
    let oidc = &sso.config;
    // The ID token was validated when the session was made (the session is
    // sealed): read again, not checked again.
    let id_token = jwt::parse(&session.id_token, usize::MAX).ok();
    let claims = id_token
        .as_ref()
        .map(|t| t.claims.clone())
        .unwrap_or_default();
    let mut forward = identity_forward(config, oidc, &claims, allow)?;
    let pass = match oidc.pass_token {
        PassToken::IdToken => Some(&session.id_token),
        PassToken::AccessToken => Some(&session.access_token),
        PassToken::None => None,
    };
    if let Some(token) = pass.filter(|t| !t.is_empty()) {
        forward
            .claim_headers
            .push(("authorization".into(), format!("Bearer {token}"), true));
    }
    if oidc.set_access_token_header && !session.access_token.is_empty() {
        forward.claim_headers.push((
            "x-forwarded-access-token".into(),
            session.access_token.clone(),
            true,
        ));
    }
    if oidc.set_userinfo_header {
        // The claims as the IdP wrote them (base64url JSON), byte for byte.
        if let Some(token) = &id_token {
            forward
                .claim_headers
                .push(("x-userinfo".into(), token.payload.to_string(), true));
        }
    }
    // Taken out of every Cookie value when the request is forwarded, byte
    // for byte (the lossy text view above must not rewrite others' cookies).
    forward.upstream_cookie = CookieEdit::StripFamily(oidc.cookie_name.clone());
    forward.response_cookies = response_cookies;
    Ok(forward)
}

/// Consumer from the configured claim, allow list, claims to headers.
pub(super) fn identity_forward<'c>(
    config: &'c Config,
    oidc: &OidcConfig,
    claims: &Map<String, Value>,
    allow: Option<&AllowList>,
) -> Result<Forward<'c>, Reply> {
    let denied = || Reply {
        status: 403,
        headers: vec![("content-type", "text/plain".into())],
        body: "Access Denied.".into(),
        verdict: audit::denied(pages::NOT_ALLOWED),
        who: None,
    };
    // Tokens are checked for an identity before they get here; a session
    // that still names nobody is never forwarded as authenticated.
    let Some(consumer) = claim_header_value(claims, &oidc.consumer_claim) else {
        return Err(denied());
    };
    let claim = crate::token::jwt::lookup_claim(claims, &oidc.allow_claim);
    if allow.is_some_and(|list| !list.admits_claim(claim)) {
        return Err(denied());
    }
    let claim_headers = oidc
        .claims_to_headers
        .iter()
        .filter_map(|h| {
            claim_header_value(claims, &h.claim).map(|v| (h.header.clone(), v, h.replace))
        })
        .collect();
    Ok(Forward {
        scrub: &config.identity_headers,
        consumer: Some(consumer),
        claim_headers,
        kind: Some(ConsumerKind::Oidc),
        sub: claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_string),
        jti: claims
            .get("jti")
            .and_then(Value::as_str)
            .map(str::to_string),
        ..Forward::default()
    })
}

/// An API client with an IdP access token instead of a session.
pub(super) fn bearer_forward<'c>(
    config: &'c Config,
    sso: &OidcScope,
    token: &str,
    allow: Option<&AllowList>,
    req: &SsoRequest<'_>,
    now: u64,
) -> Result<Forward<'c>, Reply> {
    let oidc = &sso.config;
    let refuse = |e: TokenError| Reply {
        status: 401,
        headers: vec![
            ("content-type", "text/plain".into()),
            (
                "www-authenticate",
                bearer_challenge(&req.realm(), Some(e.description())),
            ),
        ],
        body: "Invalid Jwt token.".into(),
        verdict: audit::denied(e.code()),
        who: None,
    };
    let Some(keys) = sso.provider.current() else {
        return Err(keys_unavailable());
    };
    // The same policy as ID tokens, with the bearer audiences: a token the
    // provider issued for another API or another client is not ours.
    let policy = Policy::oidc(oidc, OidcToken::Bearer, config.max_token_bytes);
    let claims = policy::verify(token, &policy, &keys, now)
        .map_err(|e| {
            if e == TokenError::UnknownKid {
                sso.provider.want_refetch();
            }
            refuse(e)
        })?
        .claims;
    identity_forward(config, oidc, &claims, allow)
}
