//! The compiled configuration the request path reads: scopes, rules, the
//! allow lists, and the defaults a scope is filled with.

use std::rc::Rc;

use super::consumer::{Consumers, TokenLocation};
use super::oidc::OidcConfig;
use super::patterns::{DomainPattern, ServicePattern};
use crate::keys::remote::RemoteKeySource;

pub const DEFAULT_ISSUER: &str = "Higress-Gateway";
pub const DEFAULT_AUTH_PATH: &str = "/oauth2/token";
pub const DEFAULT_AUTH_HEADER: &str = "authorization";
pub const DEFAULT_TOKEN_TTL: u64 = 7200;
pub const DEFAULT_CLOCK_SKEW: u64 = 60;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Entry cap per worker; the byte budget below binds first for any
/// realistic identity (about 400-600 bytes each).
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 100_000;
/// Verified-token cache memory per worker: about 30,000 typical identities.
pub const DEFAULT_TOKEN_CACHE_BYTES: usize = 16 * 1024 * 1024;
pub(super) const MAX_TOKEN_CACHE_BYTES: usize = 1024 * 1024 * 1024;
/// Timeout of calls to an IdP's token endpoint.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 5000;
pub(super) const MAX_TOKEN_CACHE_SIZE: usize = 1_000_000;
/// How long a token POST's headers are held while its body is awaited.
pub const DEFAULT_TOKEN_BODY_TIMEOUT_MS: u64 = 5_000;
pub(super) const TOKEN_BODY_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

/// The settings that apply to a request: the global ones, or a rule's
/// overrides layered on top of them.
#[derive(Debug)]
pub struct Scope {
    /// 0 for the top level, i + 1 for `_rules_[i]`: part of cache keys.
    pub id: usize,
    pub issuer: String,
    pub auth_path: String,
    pub global_credentials: bool,
    /// Lower-case header name the bearer token is read from.
    pub auth_header: String,
    pub token_ttl: u64,
    pub clock_skew: u64,
    pub keep_token: bool,
    pub consumers: Rc<Consumers>,
    /// Where tokens are looked for, in order, without repeats: the gateway
    /// header first, then each JWT consumer's places.
    pub locations: Vec<TokenLocation>,
    /// Browser single sign-on, when configured for this scope.
    pub oidc: Option<Rc<OidcScope>>,
}

/// An `oidc` block with the key source of its provider.
#[derive(Debug)]
pub struct OidcScope {
    pub config: OidcConfig,
    pub provider: Rc<RemoteKeySource>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct AllowList(pub(super) Vec<String>);

impl AllowList {
    pub fn contains(&self, consumer_name: &str) -> bool {
        self.0.iter().any(|n| n == consumer_name)
    }

    /// For single sign-on, where `allow` lists values of a claim: a string
    /// claim must be listed; an array claim (`groups`, `roles`) is admitted
    /// when any of its string elements is listed, as oauth2-proxy's
    /// `allowed_groups`. Numbers compare as written; other values never match.
    pub fn admits_claim(&self, claim: Option<&serde_json::Value>) -> bool {
        use serde_json::Value;
        match claim {
            Some(Value::String(s)) => self.contains(s),
            Some(Value::Number(n)) => self.contains(&n.to_string()),
            Some(Value::Array(items)) => items
                .iter()
                .any(|item| item.as_str().is_some_and(|s| self.contains(s))),
            _ => false,
        }
    }
}

/// One selector of a rule; a rule matches when every selector it carries
/// matches (Higress writes several into one rule when a `matchRule` names
/// ingresses, domains and services together).
#[derive(Debug)]
pub enum Matcher {
    Route(Vec<String>),
    RoutePrefix(Vec<String>),
    Domain(Vec<DomainPattern>),
    Service(Vec<ServicePattern>),
}

#[derive(Debug)]
pub struct Rule {
    /// Never empty: a rule without a selector is a config error.
    pub matchers: Vec<Matcher>,
    pub disabled: bool,
    pub allow: Option<AllowList>,
    /// The rule carries its own `consumers` (a "local config" in the
    /// RouteRuleMatcher's terms): it is always authenticated against them.
    pub local_consumers: bool,
    pub scope: Rc<Scope>,
}

#[derive(Debug)]
pub struct Config {
    /// SHA-256 of the configuration text: with the remote key sets' digests
    /// it versions the shared verified-token cache (verified::shared_cache).
    pub digest: [u8; 32],
    pub global: Rc<Scope>,
    pub rules: Vec<Rule>,
    /// `global_auth` as written (`None` when absent): `rules::requirement`
    /// gives it the C++ RouteRuleMatcher's meaning.
    pub global_auth: Option<bool>,
    /// Tokens longer than this are refused before any parsing.
    pub max_token_bytes: usize,
    /// Verified-token cache entries per worker; 0 turns the cache off.
    pub token_cache_size: usize,
    /// Verified-token cache bytes per worker; 0 turns the cache off.
    pub token_cache_bytes: usize,
    /// Longest a token POST is held waiting for its body before it is
    /// refused (the body may never reach the plugin: see token_endpoint).
    pub token_body_timeout_ms: u64,
    /// Key sets fetched in the background, shared by consumers naming the same URL.
    pub remote_sources: Vec<Rc<RemoteKeySource>>,
    /// Every header the plugin may set upstream. Client-sent values of all of
    /// them are removed on every request, whatever rule applies.
    pub identity_headers: Vec<String>,
    /// Non-fatal findings the shell logs at warn level.
    pub warnings: Vec<String>,
    /// Paths of keys this version does not know (also in `warnings`);
    /// `edge-auth-config --strict` treats them as errors.
    pub unknown_keys: Vec<String>,
}
