//! The compiled `oidc` block: single sign-on at the gateway (authorization
//! code + PKCE), as `oidc::flow` reads it. Compiled by `oidc_compile`.

use crate::cookie::jar::CookieAttributes;
use crate::cookie::seal::SealKey;

/// How long a login may take: the lifetime of its CSRF/state cookie.
pub const LOGIN_TTL_SECONDS: u64 = 600;
pub const DEFAULT_CALLBACK_PATH: &str = "/oauth2/callback";
pub const DEFAULT_LOGOUT_PATH: &str = "/oauth2/sign_out";
pub const DEFAULT_SCOPE: &str = "openid email profile";
pub const DEFAULT_COOKIE_NAME: &str = "_edge_auth_session";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRule {
    /// Lower-case host without port; `*.x` = subdomains; empty = any host.
    pub domain: Option<super::patterns::DomainPattern>,
    pub path: PathMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    /// Matching requests skip authentication.
    Whitelist,
    /// Only matching requests need authentication.
    Blacklist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Basic,
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassToken {
    None,
    IdToken,
    AccessToken,
}

/// Where the browser comes back: a full URL, or a path on the request's host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectUrl {
    Absolute(String),
    Path(String),
}

#[derive(Debug)]
pub struct OidcConfig {
    pub issuer: String,
    pub cluster: String,
    /// `:authority` and path of the discovery document.
    pub discovery_authority: String,
    pub discovery_path: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect: RedirectUrl,
    pub callback_path: String,
    pub scope: String,
    pub client_auth: ClientAuth,
    pub cookie_name: String,
    pub session_key: SealKey,
    pub csrf_key: SealKey,
    pub cookie: CookieAttributes,
    /// Timeout of discovery and key fetches (`oidc_verifier_request_timeout`).
    pub call_timeout_ms: u64,
    /// None: a browser-session cookie.
    pub cookie_expire: Option<u64>,
    /// None: never refresh early.
    pub cookie_refresh: Option<u64>,
    pub match_type: MatchType,
    pub match_list: Vec<MatchRule>,
    pub logout_path: String,
    pub end_session_endpoint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub allowed_redirect_domains: Vec<String>,
    pub pass_token: PassToken,
    pub set_access_token_header: bool,
    pub set_userinfo_header: bool,
    pub claims_to_headers: Vec<super::claim_headers::ClaimHeader>,
    pub accept_bearer: bool,
    /// What a bearer token's `aud` may name: `client_id`, then the
    /// configured `audiences`.
    pub bearer_audiences: Vec<String>,
    pub access_token_expires_in: u64,
    pub max_token_size: usize,
    pub consumer_claim: String,
    /// What a rule's `allow` lists values of.
    pub allow_claim: String,
    pub clock_skew: u64,
}

impl OidcConfig {
    /// Headers this block may set upstream, scrubbed from every request.
    /// `Authorization` is not among them: other routes carry bearer tokens in
    /// it; on SSO requests the plugin replaces it outright.
    pub fn identity_headers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.set_access_token_header {
            out.push("x-forwarded-access-token".to_string());
        }
        if self.set_userinfo_header {
            out.push("x-userinfo".to_string());
        }
        out.extend(self.claims_to_headers.iter().map(|h| h.header.clone()));
        out
    }
}
