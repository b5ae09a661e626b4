//! The session store: a session sealed into the session cookie (split over
//! several when large), read back, refreshed when due, cleared; and the
//! validation of the IdP's tokens into a session.

use super::id_token;
use super::idp_call::TokenResponse;
use super::session::Session;
use super::sso_request::SsoRequest;
use crate::config::oidc::OidcConfig;
use crate::config::OidcScope;
use crate::cookie::jar as cookie;
use crate::cookie::seal::NONCE_LEN;
use crate::decision::Reply;
use crate::host::{Host, LogLevel};
use crate::token::TokenError;

pub(super) fn read_session(
    oidc: &OidcConfig,
    cookie_header: Option<&str>,
    now: u64,
) -> Option<Session> {
    let value = cookie::read(cookie_header?, &oidc.cookie_name)?;
    let plain = oidc.session_key.open(&value, &oidc.cookie_name)?;
    let session: Session = serde_json::from_slice(&plain).ok()?;
    // The browser may ignore Max-Age; the server enforces cookie_expire.
    let expired = oidc
        .cookie_expire
        .is_some_and(|limit| now >= session.created_at.saturating_add(limit));
    (!expired).then_some(session)
}

pub(super) fn refresh_due(oidc: &OidcConfig, session: &Session, now: u64) -> bool {
    now >= session.expires_at
        || oidc
            .cookie_refresh
            .is_some_and(|every| now >= session.refreshed_at.saturating_add(every))
}

pub(super) fn random_nonce<H: Host>(host: &mut H) -> Option<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    host.random_bytes(&mut nonce).ok()?;
    Some(nonce)
}

/// Why a sign-in or refresh made no session: a stable code for the log, a
/// sentence for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionRefusal {
    pub(super) code: &'static str,
    pub(super) reason: &'static str,
}

impl From<TokenError> for SessionRefusal {
    fn from(e: TokenError) -> Self {
        SessionRefusal {
            code: e.code(),
            reason: e.id_token_description(),
        }
    }
}

/// Validates the IdP's tokens into a session. On refresh the ID token may be
/// absent (the old one stays) and carries no nonce.
pub(super) fn new_session(
    sso: &OidcScope,
    previous: Option<&Session>,
    response: TokenResponse,
    nonce: Option<&str>,
    now: u64,
) -> Result<Session, SessionRefusal> {
    let oidc = &sso.config;
    let keys = sso.provider.current().ok_or(TokenError::KeysUnavailable)?;
    let id_token = match (response.id_token, previous) {
        (Some(t), _) => {
            let claims = id_token::validate(&t, oidc, &keys, nonce, now)?;
            // OpenID Connect Core §12.2: a refresh never switches the user.
            if let Some(p) = previous {
                let before = id_token::claims_of(&p.id_token, usize::MAX).unwrap_or_default();
                if !id_token::same_subject(&before, &claims) {
                    return Err(TokenError::IdentityChanged.into());
                }
            }
            t
        }
        (None, Some(p)) => p.id_token.clone(),
        (None, None) => {
            return Err(SessionRefusal {
                code: "no_id_token",
                reason: "the identity provider sent no ID token",
            })
        }
    };
    Ok(Session {
        id_token,
        access_token: response.access_token.unwrap_or_default(),
        refresh_token: response
            .refresh_token
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        expires_at: now.saturating_add(response.expires_in.unwrap_or(oidc.access_token_expires_in)),
        created_at: previous.map_or(now, |p| p.created_at),
        refreshed_at: now,
    })
}

pub(super) fn write_session<H: Host>(
    sso: &OidcScope,
    session: &Session,
    req: &SsoRequest<'_>,
    host: &mut H,
) -> Result<Vec<String>, Reply> {
    let oidc = &sso.config;
    let nonce = random_nonce(host).ok_or_else(crate::decision::server_error)?;
    let plain = serde_json::to_vec(session).unwrap_or_default();
    let sealed = oidc.session_key.seal(&plain, &oidc.cookie_name, nonce);
    let existing = req
        .cookie
        .map(|c| cookie::present(c, &oidc.cookie_name))
        .unwrap_or_default();
    cookie::write(
        &oidc.cookie_name,
        &sealed,
        &oidc.cookie,
        oidc.cookie_expire,
        &existing,
    )
    .ok_or_else(|| {
        host.log(LogLevel::Error, "edge-auth: session too large for cookies");
        crate::decision::server_error()
    })
}

pub(super) fn clear_session(oidc: &OidcConfig, cookie_header: Option<&str>) -> Vec<String> {
    cookie_header
        .map(|c| cookie::present(c, &oidc.cookie_name))
        .unwrap_or_default()
        .iter()
        .map(|name| cookie::clear_line(name, &oidc.cookie))
        .collect()
}
