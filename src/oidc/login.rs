//! Sign-in: the redirect to the IdP (state, nonce and PKCE verifier sealed
//! into a login cookie of their own, the CSRF check) and the callback that
//! checks that cookie and exchanges the code.

use std::rc::Rc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::continuation::{CallOut, Continuation};
use super::idp_call::token_call;
use super::pages;
use super::session::{LoginState, LOGIN_TTL_SECONDS};
use super::session_store::random_nonce;
use super::sso_request::SsoRequest;
use crate::audit::{self, Verdict};
use crate::b64::b64url;
use crate::canonical::CanonicalPath;
use crate::config::oidc::{OidcConfig, RedirectUrl};
use crate::config::OidcScope;
use crate::cookie::jar::{self as cookie, CookieAttributes, SameSite};
use crate::decision::{bearer_challenge, keys_unavailable, redirect, Decision, Reply};
use crate::form;
use crate::host::{Host, LogLevel};
use crate::http_url::with_query;
use crate::keys::remote::ProviderMetadata;

pub(super) fn login_cookie_name(oidc: &OidcConfig, state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    let tag = b64url(digest.get(..9).unwrap_or_default());
    format!("{}_csrf_{tag}", oidc.cookie_name)
}

/// Login cookies must come back on the IdP's top-level redirect, which a
/// `Strict` cookie would not.
pub(super) fn login_cookie_attributes(oidc: &OidcConfig) -> CookieAttributes {
    let mut attrs = oidc.cookie.clone();
    if attrs.same_site == SameSite::Strict {
        attrs.same_site = SameSite::Lax;
    }
    attrs
}

pub(super) fn random_token<H: Host>(host: &mut H) -> Option<String> {
    let mut bytes = [0u8; 32];
    host.random_bytes(&mut bytes).ok()?;
    Some(b64url(&bytes))
}

pub(super) fn redirect_uri(oidc: &OidcConfig, req: &SsoRequest<'_>) -> String {
    match &oidc.redirect {
        RedirectUrl::Absolute(url) => url.clone(),
        RedirectUrl::Path(path) => format!("{}://{}{path}", req.scheme, req.authority),
    }
}

pub(super) fn unauthorized(req: &SsoRequest<'_>) -> Reply {
    Reply {
        status: 401,
        headers: vec![
            ("content-type", "text/plain".into()),
            ("www-authenticate", bearer_challenge(&req.realm(), None)),
        ],
        body: "Authentication required.".into(),
        verdict: audit::denied("no_session"),
        who: None,
    }
}

/// Navigations go to the IdP with a fresh state, nonce and PKCE verifier,
/// remembered in a login cookie of their own; everything else gets 401.
pub(super) fn login_or_401<'c, H: Host>(
    sso: &OidcScope,
    metadata: &ProviderMetadata,
    req: &SsoRequest<'_>,
    host: &mut H,
) -> Decision<'c, CallOut> {
    if !req.is_navigation() {
        return Decision::Reply(unauthorized(req));
    }
    // A path with no canonical form needs authentication, but it cannot be
    // a login's return address either (the decision after login would read
    // it again): the browser is told the address is bad.
    if let CanonicalPath::Unsafe(why) = req.canonical_path {
        host.log(
            LogLevel::Debug,
            &format!(
                "edge-auth: 400: path has no canonical form ({})",
                why.code()
            ),
        );
        host.count("denied_400_unsafe_path");
        return Decision::Reply(pages::bad_address(&*host));
    }
    let oidc = &sso.config;
    let Some(authorize) = metadata.authorization_endpoint.as_deref() else {
        return Decision::Reply(pages::idp_unreachable(
            &*host,
            req.is_navigation(),
            req.path,
            req.authority,
        ));
    };
    let (Some(state), Some(nonce), Some(verifier), Some(seal_nonce)) = (
        random_token(host),
        random_token(host),
        random_token(host),
        random_nonce(host),
    ) else {
        return Decision::Reply(crate::decision::server_error());
    };
    let challenge = b64url(&Sha256::digest(verifier.as_bytes()));
    let login = LoginState {
        state: state.clone(),
        nonce: nonce.clone(),
        verifier,
        url: req.path.to_string(),
        created_at: host.now_unix_seconds(),
    };
    let name = login_cookie_name(oidc, &state);
    let sealed = oidc.csrf_key.seal(
        serde_json::to_string(&login).unwrap_or_default().as_bytes(),
        &name,
        seal_nonce,
    );
    let cookie_line = format!(
        "{name}={sealed}; Max-Age={LOGIN_TTL_SECONDS}{}",
        cookie::clear_line("", &login_cookie_attributes(oidc)).trim_start_matches("=; Max-Age=0")
    );
    let redirect_to = redirect_uri(oidc, req);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", oidc.client_id.as_str()),
        ("redirect_uri", redirect_to.as_str()),
        ("scope", oidc.scope.as_str()),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // OpenID Connect Core §11: a refresh token (offline_access) is only
    // granted with prompt=consent.
    if oidc.scope.split(' ').any(|s| s == "offline_access") {
        params.push(("prompt", "consent"));
    }
    let Some(location) = with_query(authorize, &params) else {
        return Decision::Reply(keys_unavailable());
    };
    host.log(LogLevel::Debug, "edge-auth: sign-in started");
    host.count("sso_logins_started");
    Decision::Reply(redirect(&location, vec![cookie_line]).because(Verdict::new("sso_login", "")))
}

pub(super) fn query_param(path: &str, name: &str) -> Option<String> {
    form::query(path).and_then(|q| form::first(q, name))
}

pub(super) fn callback<'c, H: Host>(
    sso: &Rc<OidcScope>,
    req: &SsoRequest<'_>,
    host: &mut H,
) -> Decision<'c, CallOut> {
    let oidc = &sso.config;
    // The IdP's error and description are not shown (request text on our
    // page); the reason code goes to the access log.
    if query_param(req.path, "error").is_some() {
        host.log(
            LogLevel::Debug,
            "edge-auth: identity provider returned an error",
        );
        return Decision::Reply(pages::sign_in_failed(
            &*host,
            "idp_error",
            None,
            req.authority,
            Vec::new(),
        ));
    }
    let (Some(state), Some(code)) = (
        query_param(req.path, "state"),
        query_param(req.path, "code"),
    ) else {
        return Decision::Reply(pages::sign_in_failed(
            &*host,
            "missing_state_or_code",
            None,
            req.authority,
            Vec::new(),
        ));
    };
    let name = login_cookie_name(oidc, &state);
    let login = req
        .cookie
        .and_then(|c| cookie::read(c, &name))
        .and_then(|v| oidc.csrf_key.open(&v, &name))
        .and_then(|plain| serde_json::from_slice::<LoginState>(&plain).ok());
    let now = host.now_unix_seconds();
    let Some(login) = login.filter(|l| {
        bool::from(l.state.as_bytes().ct_eq(state.as_bytes()))
            && now < l.created_at.saturating_add(LOGIN_TTL_SECONDS)
    }) else {
        return Decision::Reply(pages::sign_in_failed(
            &*host,
            "unknown_login",
            None,
            req.authority,
            Vec::new(),
        ));
    };
    let (Some(metadata), Some(_)) = (sso.provider.metadata(), sso.provider.current()) else {
        return Decision::Reply(pages::idp_unreachable(
            &*host,
            true,
            &login.url,
            req.authority,
        ));
    };
    let redirect_to = redirect_uri(oidc, req);
    let verifier = login.verifier.clone();
    token_call(
        oidc,
        &metadata,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_to),
            ("code_verifier", &verifier),
        ],
        Continuation::Exchange {
            sso: Rc::clone(sso),
            login,
            login_cookie: name,
        },
    )
    .unwrap_or_else(Decision::Reply)
}
