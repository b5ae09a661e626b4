//! Sign-out: clears every session cookie and sends the browser to the
//! IdP's end-session endpoint (with an ID token hint) or a safe address.

use super::login::query_param;
use super::redirect::safe_redirect;
use super::session::Session;
use super::session_store::clear_session;
use super::sso_request::SsoRequest;
use crate::audit::Verdict;
use crate::config::OidcScope;
use crate::cookie::jar as cookie;
use crate::decision::{redirect, Reply};
use crate::form::decode_component;
use crate::http_url::with_query;

/// Clears every session cookie and ends the IdP session when it can.
pub(super) fn sign_out(sso: &OidcScope, req: &SsoRequest<'_>) -> Reply {
    let oidc = &sso.config;
    let mut cookies = clear_session(oidc, req.cookie);
    if cookies.is_empty() {
        cookies.push(cookie::clear_line(&oidc.cookie_name, &oidc.cookie));
    }
    let id_token = req
        .cookie
        .and_then(|c| cookie::read(c, &oidc.cookie_name))
        .and_then(|v| oidc.session_key.open(&v, &oidc.cookie_name))
        .and_then(|p| serde_json::from_slice::<Session>(&p).ok())
        .map(|s| s.id_token);
    let requested = query_param(req.path, "rd")
        .and_then(|rd| decode_component(&rd).ok().or(Some(rd)))
        .and_then(|rd| safe_redirect(&rd, req.authority, &oidc.allowed_redirect_domains));
    let after = requested
        .or_else(|| oidc.post_logout_redirect_uri.clone())
        .unwrap_or_else(|| "/".into());
    let absolute_after = if after.starts_with('/') {
        format!("{}://{}{after}", req.scheme, req.authority)
    } else {
        after.clone()
    };
    let end_session = oidc.end_session_endpoint.clone().or_else(|| {
        sso.provider
            .metadata()
            .and_then(|m| m.end_session_endpoint.clone())
    });
    let location = match end_session {
        Some(endpoint) => {
            let mut params = vec![
                ("client_id", oidc.client_id.as_str()),
                ("post_logout_redirect_uri", absolute_after.as_str()),
            ];
            if let Some(hint) = id_token.as_deref() {
                params.push(("id_token_hint", hint));
            }
            with_query(&endpoint, &params).unwrap_or(after)
        }
        None => after,
    };
    redirect(&location, cookies).because(Verdict::new("sso_signed_out", ""))
}
