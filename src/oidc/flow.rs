//! The single sign-on steps for one request, as decisions: send the browser
//! to log in, handle the callback (state, CSRF cookie, code exchange, ID
//! token), forward with a session, refresh it, sign out.

use std::rc::Rc;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::id_token;
use super::pages;
use super::redirect::safe_redirect;
use super::session::{LoginState, Session, LOGIN_TTL_SECONDS};
use crate::audit::{self, ConsumerKind, Verdict};
use crate::b64::b64url;
use crate::canonical::{without_parameters, CanonicalPath};
use crate::config::oidc::{ClientAuth, MatchType, OidcConfig, PassToken, PathMatch, RedirectUrl};
use crate::config::{AllowList, Config, OidcScope};
use crate::cookie::jar::{self as cookie, CookieAttributes, SameSite};
use crate::cookie::seal::NONCE_LEN;
use crate::decision::{
    bearer_challenge, keys_unavailable, realm, redirect, CookieEdit, Decision, Forward, Reply,
};
use crate::form::{self, decode_component};
use crate::host::{Host, LogLevel};
use crate::http_url::{form_encode, form_encode_component, with_query};
use crate::keys::remote::{
    accept_jwks, jwks_fetch_failed, jwks_request, split_url, JwksRequest, ProviderMetadata,
};
use crate::rules::domain_matches;
use crate::token::jwt::{self, claim_header_value};
use crate::token::policy::{self, OidcToken, Policy};
use crate::token::TokenError;

/// The request facts SSO needs, read once by the caller.
pub struct SsoRequest<'r> {
    pub method: &'r str,
    /// `:path` as sent, with query: the page to return to after a login,
    /// and where query parameters are read. Never compared: decisions read
    /// `canonical_path`.
    pub path: &'r str,
    /// The canonical path (without query) every path decision reads.
    pub canonical_path: &'r CanonicalPath,
    /// `:authority` as sent (for URLs the browser is sent to).
    pub authority: &'r str,
    /// The canonical host match lists read.
    pub host: &'r str,
    pub scheme: &'r str,
    pub cookie: Option<&'r str>,
    pub accept: Option<&'r str>,
    pub requested_with: Option<&'r str>,
    pub authorization: Option<&'r str>,
}

impl SsoRequest<'_> {
    /// `scheme://host`, escaped and bounded, for a `WWW-Authenticate` challenge.
    fn realm(&self) -> String {
        realm(self.scheme, self.authority, "")
    }

    /// A browser navigating (gets a login redirect) rather than an API call
    /// or XHR (gets 401).
    fn is_navigation(&self) -> bool {
        matches!(self.method, "GET" | "HEAD")
            && self.requested_with.is_none()
            && self.accept.is_some_and(|a| a.contains("text/html"))
    }
}

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
    fn sso(&self) -> &Rc<OidcScope> {
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

/// Does the `match_type`/`match_list` pair ask for authentication here?
///
/// `host` and `path` are canonical. Where servers could read the path
/// differently, the reading that asks for authentication wins:
/// - a path with no canonical form (`%2F`, `\`, `%00`, `..;`) always needs it;
/// - a blacklist entry matches case-insensitively, also the path without
///   `;parameters` (`/admin;x` is `/admin` to Tomcat) and without a
///   trailing slash;
/// - a whitelist entry matches case-sensitively, and must match the path
///   both with and without `;parameters`.
pub fn needs_auth(config: &OidcConfig, host: &str, path: &CanonicalPath) -> bool {
    let Some(path) = path.as_safe() else {
        return true;
    };
    let lenient = without_parameters(path);
    let listed = |p: &str, any_case: bool| {
        config.match_list.iter().any(|rule| {
            rule.domain.as_ref().is_none_or(|d| domain_matches(d, host))
                && path_matches(&rule.path, p, any_case)
        })
    };
    match config.match_type {
        MatchType::Whitelist => !(listed(path, false) && listed(&lenient, false)),
        MatchType::Blacklist => [path, &*lenient].iter().any(|p| {
            listed(p, true)
                || p.strip_suffix('/')
                    .is_some_and(|trimmed| !trimmed.is_empty() && listed(trimmed, true))
        }),
    }
}

fn path_matches(rule: &PathMatch, path: &str, any_case: bool) -> bool {
    let same = |a: &[u8], b: &[u8]| {
        if any_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match rule {
        PathMatch::Exact(p) => same(path.as_bytes(), p.as_bytes()),
        PathMatch::Prefix(p) => path
            .as_bytes()
            .get(..p.len())
            .is_some_and(|head| same(head, p.as_bytes())),
    }
}

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
    match read_session(oidc, req.cookie, now) {
        Some(session) if refresh_due(oidc, &session, now) => match &session.refresh_token {
            Some(refresh_token) => {
                let refresh_token = refresh_token.clone();
                token_call(
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
                .unwrap_or_else(Decision::Reply)
            }
            // Nothing to refresh with: valid until the access token expires.
            None if now < session.expires_at => decide(
                session_forward(config, sso, &session, allow, req, Vec::new()).map_err(|r| {
                    let nav = req.is_navigation();
                    pages::access_denied_for_browser(
                        r,
                        &*host,
                        nav,
                        req.path,
                        req.authority,
                        &oidc.logout_path,
                    )
                }),
            ),
            None => login_or_401(sso, &metadata, req, host),
        },
        Some(session) => decide(
            session_forward(config, sso, &session, allow, req, Vec::new()).map_err(|r| {
                let nav = req.is_navigation();
                pages::access_denied_for_browser(
                    r,
                    &*host,
                    nav,
                    req.path,
                    req.authority,
                    &oidc.logout_path,
                )
            }),
        ),
        None => login_or_401(sso, &metadata, req, host),
    }
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

fn read_session(oidc: &OidcConfig, cookie_header: Option<&str>, now: u64) -> Option<Session> {
    let value = cookie::read(cookie_header?, &oidc.cookie_name)?;
    let plain = oidc.session_key.open(&value, &oidc.cookie_name)?;
    let session: Session = serde_json::from_slice(&plain).ok()?;
    // The browser may ignore Max-Age; the server enforces cookie_expire.
    let expired = oidc
        .cookie_expire
        .is_some_and(|limit| now >= session.created_at.saturating_add(limit));
    (!expired).then_some(session)
}

fn refresh_due(oidc: &OidcConfig, session: &Session, now: u64) -> bool {
    now >= session.expires_at
        || oidc
            .cookie_refresh
            .is_some_and(|every| now >= session.refreshed_at.saturating_add(every))
}

fn login_cookie_name(oidc: &OidcConfig, state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    let tag = b64url(digest.get(..9).unwrap_or_default());
    format!("{}_csrf_{tag}", oidc.cookie_name)
}

fn is_our_cookie(oidc: &OidcConfig, name: &str) -> bool {
    name == oidc.cookie_name
        || name
            .strip_prefix(oidc.cookie_name.as_str())
            .is_some_and(|rest| rest.starts_with('_'))
}

/// Login cookies must come back on the IdP's top-level redirect, which a
/// `Strict` cookie would not.
fn login_cookie_attributes(oidc: &OidcConfig) -> CookieAttributes {
    let mut attrs = oidc.cookie.clone();
    if attrs.same_site == SameSite::Strict {
        attrs.same_site = SameSite::Lax;
    }
    attrs
}

fn random_token<H: Host>(host: &mut H) -> Option<String> {
    let mut bytes = [0u8; 32];
    host.random_bytes(&mut bytes).ok()?;
    Some(b64url(&bytes))
}

fn random_nonce<H: Host>(host: &mut H) -> Option<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    host.random_bytes(&mut nonce).ok()?;
    Some(nonce)
}

fn redirect_uri(oidc: &OidcConfig, req: &SsoRequest<'_>) -> String {
    match &oidc.redirect {
        RedirectUrl::Absolute(url) => url.clone(),
        RedirectUrl::Path(path) => format!("{}://{}{path}", req.scheme, req.authority),
    }
}

fn unauthorized(req: &SsoRequest<'_>) -> Reply {
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
fn login_or_401<'c, H: Host>(
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

fn query_param(path: &str, name: &str) -> Option<String> {
    form::query(path).and_then(|q| form::first(q, name))
}

fn callback<'c, H: Host>(
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

/// A POST to the token endpoint with the configured client authentication.
fn token_call<'c>(
    oidc: &OidcConfig,
    metadata: &ProviderMetadata,
    params: &[(&str, &str)],
    then: Continuation,
) -> Result<Decision<'c, CallOut>, Reply> {
    let endpoint = metadata
        .token_endpoint
        .as_deref()
        .ok_or_else(keys_unavailable)?;
    let (authority, path) = split_url(endpoint).ok_or_else(keys_unavailable)?;
    let mut body: Vec<(&str, &str)> = params.to_vec();
    let mut headers = vec![
        (":method".to_string(), "POST".to_string()),
        (":path".to_string(), path),
        (":authority".to_string(), authority),
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept".to_string(), "application/json".to_string()),
    ];
    match oidc.client_auth {
        ClientAuth::Basic => {
            // RFC 6749 §2.3.1: each part form-encoded, then base64.
            let credentials = format!(
                "{}:{}",
                form_encode_component(&oidc.client_id),
                form_encode_component(&oidc.client_secret)
            );
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            headers.push(("authorization".to_string(), format!("Basic {encoded}")));
        }
        ClientAuth::Post => {
            body.push(("client_id", &oidc.client_id));
            body.push(("client_secret", &oidc.client_secret));
        }
    }
    let body = form_encode(&body).into_bytes();
    let timeout_ms = crate::config::DEFAULT_CALL_TIMEOUT_MS;
    Ok(Decision::Wait(CallOut {
        cluster: oidc.cluster.clone(),
        headers: headers.clone(),
        body: body.clone(),
        timeout_ms,
        then: Continuation::RetryOnce {
            cluster: oidc.cluster.clone(),
            headers,
            body,
            timeout_ms,
            then: Box::new(then),
        },
    }))
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
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

/// The token endpoint's answer, when it is a success with a JSON body.
fn token_response(status: Option<u32>, body: &[u8]) -> Option<TokenResponse> {
    (status == Some(200))
        .then(|| serde_json::from_slice::<TokenResponse>(body).ok())
        .flatten()
}

/// When the ID token in the IdP's answer names a key we do not hold: the
/// call that fetches the provider's JWKS before the answer is taken up. The
/// ID token came straight from the IdP's token endpoint, so an unknown kid
/// means the IdP rotated its keys (no client can make us fetch).
fn new_keys_request(then: &Continuation, response: &TokenResponse) -> Option<JwksRequest> {
    let sso = then.sso();
    let id_token = response.id_token.as_deref()?;
    let kid = jwt::parse(id_token, sso.config.max_token_size).ok()?.kid?;
    let keys = sso.provider.current()?;
    if keys.candidates(Some(&kid)).next().is_some() {
        return None;
    }
    jwks_request(&sso.provider)
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
                    match session_forward(config, &sso, &session, allow, req, cookies) {
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

/// Why a sign-in or refresh made no session: a stable code for the log, a
/// sentence for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SessionRefusal {
    code: &'static str,
    reason: &'static str,
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
fn new_session(
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

fn write_session<H: Host>(
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

fn clear_session(oidc: &OidcConfig, cookie_header: Option<&str>) -> Vec<String> {
    cookie_header
        .map(|c| cookie::present(c, &oidc.cookie_name))
        .unwrap_or_default()
        .iter()
        .map(|name| cookie::clear_line(name, &oidc.cookie))
        .collect()
}

/// Upstream headers for a signed-in user.
fn session_forward<'c>(
    config: &'c Config,
    sso: &OidcScope,
    session: &Session,
    allow: Option<&AllowList>,
    req: &SsoRequest<'_>,
    response_cookies: Vec<String>,
) -> Result<Forward<'c>, Reply> {
    let oidc = &sso.config;
    let claims = id_token::claims_of(&session.id_token, usize::MAX).unwrap_or_default();
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
        if let Some(payload) = session.id_token.split('.').nth(1) {
            forward
                .claim_headers
                .push(("x-userinfo".into(), payload.to_string(), true));
        }
    }
    forward.upstream_cookie = match req.cookie {
        Some(header) => match cookie::without(header, |name| is_our_cookie(oidc, name)) {
            Some(rest) if rest != header => CookieEdit::Replace(rest),
            Some(_) => CookieEdit::Keep,
            None => CookieEdit::Remove,
        },
        None => CookieEdit::Keep,
    };
    forward.response_cookies = response_cookies;
    Ok(forward)
}

/// Consumer from the configured claim, allow list, claims to headers.
fn identity_forward<'c>(
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
fn bearer_forward<'c>(
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

/// Clears every session cookie and ends the IdP session when it can.
fn sign_out(sso: &OidcScope, req: &SsoRequest<'_>) -> Reply {
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
