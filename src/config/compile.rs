//! Validation and compilation of [`RawScope`] into ready-to-use structures.
//!
//! Every error names the offending field with its JSON path, e.g.
//! `consumers[1].client_id: duplicate client_id "abc"`. Secret values never
//! appear in an error message.

use std::fmt;
use std::rc::Rc;

use super::claim_headers::writes_token_header;
use super::consumer::{compile_consumers, ConsumerDefaults, Consumers, TokenLocation};
use super::oidc::{compile_oidc, OidcConfig};
use super::raw::RawScope;
use crate::canonical::CanonicalPath;
use crate::keys::remote::KeyLocation;
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
const MAX_TOKEN_CACHE_BYTES: usize = 1024 * 1024 * 1024;
/// Timeout of calls to an IdP's token endpoint.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 5000;
const MAX_TOKEN_CACHE_SIZE: usize = 1_000_000;
/// How long a token POST's headers are held while its body is awaited.
pub const DEFAULT_TOKEN_BODY_TIMEOUT_MS: u64 = 5_000;
const TOKEN_BODY_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending field, e.g. `_rules_[0].allow[1]`.
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

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
pub struct AllowList(Vec<String>);

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    Exact(String),
    /// `*.example.com` is stored as `.example.com`: subdomains only.
    Suffix(String),
    /// `api*` is stored as `api`.
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePattern {
    pub fqdn: String,
    pub port: Option<String>,
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

/// Parses the plugin configuration JSON. An empty configuration means all
/// defaults (which, with no consumers, denies every request: fail closed).
pub fn parse(json: &[u8]) -> Result<RawScope, ConfigError> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(RawScope::default());
    }
    // serde would also accept a JSON array as a struct; say what is expected.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ConfigError::new(
            "",
            "the configuration must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let raw: RawScope = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = err.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let inner = err.into_inner();
        // serde echoes the offending value; for a secret that is a leak.
        let reason = if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON: {}", strip_position(&inner.to_string()))
        } else if field.ends_with("client_secret") {
            "invalid value, expected a non-empty string".to_string()
        } else {
            strip_position(&inner.to_string())
        };
        ConfigError::new(field, reason)
    })?;
    de.end().map_err(|e| {
        ConfigError::new(
            "",
            format!("not valid JSON: {}", strip_position(&e.to_string())),
        )
    })?;
    Ok(raw)
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_string(),
        None => message.to_string(),
    }
}

/// Parses and compiles in one step: what `on_configure` calls.
pub fn compile_json(json: &[u8]) -> Result<Config, ConfigError> {
    let mut config = compile(parse(json)?)?;
    config.digest = <sha2::Sha256 as sha2::Digest>::digest(json).into();
    Ok(config)
}

pub fn compile(mut raw: RawScope) -> Result<Config, ConfigError> {
    super::oidc::lift_flat(&mut raw, "")?;
    for (i, rule) in raw.rules.iter_mut().flatten().enumerate() {
        super::oidc::lift_flat(rule, &format!("_rules_[{i}]."))?;
    }
    let unknown_keys = unknown_keys(&raw);
    let mut warnings: Vec<String> = unknown_keys
        .iter()
        .map(|path| format!("{path}: unknown key, ignored"))
        .collect();
    let mut remote_sources = Vec::new();
    reject_rule_only_keys(&raw)?;
    let global_consumers = Rc::new(compile_consumers(
        raw.consumers.as_deref().unwrap_or(&[]),
        "consumers",
        &mut ConsumerDefaults {
            clock_skew: raw.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW),
            keep_token: raw.keep_token.unwrap_or(true),
            remote_sources: &mut remote_sources,
            warnings: &mut warnings,
        },
    )?);
    let global = Rc::new(compile_scope(
        &raw,
        "",
        None,
        global_consumers,
        0,
        &mut remote_sources,
    )?);

    let mut rules = Vec::new();
    for (i, raw_rule) in raw.rules.as_deref().unwrap_or(&[]).iter().enumerate() {
        let prefix = format!("_rules_[{i}].");
        let mut defaults = ConsumerDefaults {
            clock_skew: raw_rule.clock_skew_seconds.unwrap_or(global.clock_skew),
            keep_token: raw_rule.keep_token.unwrap_or(global.keep_token),
            remote_sources: &mut remote_sources,
            warnings: &mut warnings,
        };
        rules.push(compile_rule(
            raw_rule,
            &prefix,
            &global,
            &mut defaults,
            i + 1,
        )?);
    }
    let max_token_bytes = match raw.max_token_bytes {
        Some(n) if n < 64 => {
            return Err(ConfigError::new("max_token_bytes", "must be at least 64"))
        }
        Some(n) => n,
        None => DEFAULT_MAX_TOKEN_BYTES,
    };
    let token_cache_size = raw.token_cache_size.unwrap_or(DEFAULT_TOKEN_CACHE_SIZE);
    if token_cache_size > MAX_TOKEN_CACHE_SIZE {
        return Err(ConfigError::new(
            "token_cache_size",
            format!("must be at most {MAX_TOKEN_CACHE_SIZE}"),
        ));
    }
    let token_cache_bytes = raw.token_cache_bytes.unwrap_or(DEFAULT_TOKEN_CACHE_BYTES);
    if token_cache_bytes > MAX_TOKEN_CACHE_BYTES {
        return Err(ConfigError::new(
            "token_cache_bytes",
            format!("must be at most {MAX_TOKEN_CACHE_BYTES}"),
        ));
    }
    let token_body_timeout_ms = raw
        .token_body_timeout_ms
        .unwrap_or(DEFAULT_TOKEN_BODY_TIMEOUT_MS);
    if !TOKEN_BODY_TIMEOUT_RANGE_MS.contains(&token_body_timeout_ms) {
        return Err(ConfigError::new(
            "token_body_timeout_ms",
            format!(
                "must be between {} and {}",
                TOKEN_BODY_TIMEOUT_RANGE_MS.start(),
                TOKEN_BODY_TIMEOUT_RANGE_MS.end()
            ),
        ));
    }
    let identity_headers = identity_headers(&global, &rules);
    Ok(Config {
        global,
        rules,
        global_auth: raw.global_auth,
        max_token_bytes,
        digest: [0; 32],
        token_cache_size,
        token_cache_bytes,
        token_body_timeout_ms,
        remote_sources,
        identity_headers,
        warnings,
        unknown_keys,
    })
}

/// Every key the raw config carries that this version does not know, with
/// its path.
fn unknown_keys(raw: &RawScope) -> Vec<String> {
    fn scope(raw: &RawScope, prefix: &str, out: &mut Vec<String>) {
        out.extend(raw.unknown.keys().map(|k| format!("{prefix}{k}")));
        for (i, c) in raw.consumers.iter().flatten().enumerate() {
            out.extend(
                c.unknown
                    .keys()
                    .map(|k| format!("{prefix}consumers[{i}].{k}")),
            );
        }
    }
    let mut out = Vec::new();
    scope(raw, "", &mut out);
    for (i, rule) in raw.rules.iter().flatten().enumerate() {
        scope(rule, &format!("_rules_[{i}]."), &mut out);
    }
    out
}

fn identity_headers(global: &Scope, rules: &[Rule]) -> Vec<String> {
    let mut headers = vec![crate::headers::CONSUMER_HEADER.to_string()];
    let scopes = std::iter::once(global).chain(rules.iter().map(|r| r.scope.as_ref()));
    for scope in scopes {
        let from_claims = scope
            .consumers
            .jwt
            .iter()
            .flat_map(|c| c.claims_to_headers.iter().map(|h| h.header.clone()));
        let from_sso = scope.oidc.iter().flat_map(|o| o.config.identity_headers());
        for header in from_claims.chain(from_sso) {
            if !headers.contains(&header) {
                headers.push(header);
            }
        }
    }
    headers
}

/// The distinct places a scope reads tokens from.
fn token_locations(auth_header: &str, consumers: &Consumers) -> Vec<TokenLocation> {
    let mut out = Vec::new();
    if consumers.has_gateway_consumers() || consumers.jwt.is_empty() {
        out.push(TokenLocation::Header {
            name: auth_header.to_string(),
            prefix: "Bearer ".into(),
        });
    }
    for location in consumers.jwt.iter().flat_map(|c| c.locations.iter()) {
        if !out.contains(location) {
            out.push(location.clone());
        }
    }
    out
}

fn reject_rule_only_keys(raw: &RawScope) -> Result<(), ConfigError> {
    let present = [
        ("_match_route_", raw.match_route.is_some()),
        ("_match_route_prefix_", raw.match_route_prefix.is_some()),
        ("_match_domain_", raw.match_domain.is_some()),
        ("_match_service_", raw.match_service.is_some()),
        ("allow", raw.allow.is_some()),
        ("_disable_", raw.disable.is_some()),
    ];
    match present.iter().find(|(_, is_set)| *is_set) {
        Some((key, _)) => Err(ConfigError::new(
            *key,
            "only allowed inside a _rules_ entry",
        )),
        None => Ok(()),
    }
}

fn compile_rule(
    raw: &RawScope,
    prefix: &str,
    global: &Rc<Scope>,
    defaults: &mut ConsumerDefaults<'_>,
    id: usize,
) -> Result<Rule, ConfigError> {
    let top_level_only = [
        ("global_auth", raw.global_auth.is_some()),
        ("max_token_bytes", raw.max_token_bytes.is_some()),
        ("token_cache_size", raw.token_cache_size.is_some()),
        ("token_cache_bytes", raw.token_cache_bytes.is_some()),
        ("token_body_timeout_ms", raw.token_body_timeout_ms.is_some()),
    ];
    if let Some((key, _)) = top_level_only.iter().find(|(_, set)| *set) {
        return Err(ConfigError::new(
            format!("{prefix}{key}"),
            "only allowed at the top level",
        ));
    }
    if raw.rules.is_some() {
        return Err(ConfigError::new(
            format!("{prefix}_rules_"),
            "rules cannot be nested",
        ));
    }
    let matchers = compile_matchers(raw, prefix)?;
    let consumers = match &raw.consumers {
        Some(list) => Rc::new(compile_consumers(
            list,
            &format!("{prefix}consumers"),
            defaults,
        )?),
        None => Rc::clone(&global.consumers),
    };
    let scope = compile_scope(
        raw,
        prefix,
        Some(global),
        consumers,
        id,
        defaults.remote_sources,
    )?;
    let disabled = raw.disable.unwrap_or(false);
    let allow = match &raw.allow {
        None => None,
        Some(_) if disabled => {
            return Err(ConfigError::new(
                format!("{prefix}allow"),
                "has no effect on a rule with _disable_: true",
            ))
        }
        Some(names) => {
            for (j, name) in names.iter().enumerate() {
                // With SSO the consumer name is a claim value (e.g. a
                // user's sub or email), not a configured consumer.
                if scope.oidc.is_none() && !scope.consumers.has_name(name) {
                    return Err(ConfigError::new(
                        format!("{prefix}allow[{j}]"),
                        format!("unknown consumer \"{name}\""),
                    ));
                }
            }
            Some(AllowList(names.clone()))
        }
    };
    Ok(Rule {
        matchers,
        disabled,
        allow,
        local_consumers: raw.consumers.is_some(),
        scope: Rc::new(scope),
    })
}

/// Every selector present in a rule; all of them must match.
fn compile_matchers(raw: &RawScope, prefix: &str) -> Result<Vec<Matcher>, ConfigError> {
    let candidates = [
        ("_match_route_", &raw.match_route),
        ("_match_route_prefix_", &raw.match_route_prefix),
        ("_match_domain_", &raw.match_domain),
        ("_match_service_", &raw.match_service),
    ];
    let mut matchers = Vec::new();
    for (key, values) in candidates {
        if let Some(values) = values {
            matchers.push(compile_matcher(key, values, prefix)?);
        }
    }
    if matchers.is_empty() {
        return Err(ConfigError::new(
            prefix.trim_end_matches('.'),
            "a rule needs at least one of _match_route_, _match_route_prefix_, _match_domain_, _match_service_",
        ));
    }
    Ok(matchers)
}

fn compile_matcher(key: &str, values: &[String], prefix: &str) -> Result<Matcher, ConfigError> {
    let field = format!("{prefix}{key}");
    if values.is_empty() {
        return Err(ConfigError::new(field, "must not be empty"));
    }
    if let Some(j) = values.iter().position(|v| v.is_empty()) {
        return Err(ConfigError::new(
            format!("{field}[{j}]"),
            "must not be empty",
        ));
    }
    Ok(match key {
        "_match_route_" => Matcher::Route(values.to_vec()),
        "_match_route_prefix_" => Matcher::RoutePrefix(values.to_vec()),
        "_match_domain_" => Matcher::Domain(values.iter().map(|d| domain_pattern(d)).collect()),
        _ => Matcher::Service(
            values
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    service_pattern(s).ok_or_else(|| {
                        ConfigError::new(format!("{field}[{j}]"), "expected fqdn or fqdn:port")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A `_match_domain_` / `match_rule_domain` pattern, spelled like the
/// canonical hosts it is matched against: lower case, one trailing dot
/// removed (`api.example.com.` is `api.example.com`).
pub(crate) fn domain_pattern(domain: &str) -> DomainPattern {
    let domain = domain.to_ascii_lowercase();
    let without_dot = |d: &str| d.strip_suffix('.').unwrap_or(d).to_string();
    if let Some(suffix) = domain.strip_prefix('*') {
        DomainPattern::Suffix(without_dot(suffix))
    } else if let Some(prefix) = domain.strip_suffix('*') {
        DomainPattern::Prefix(prefix.to_string())
    } else {
        DomainPattern::Exact(without_dot(&domain))
    }
}

fn service_pattern(service: &str) -> Option<ServicePattern> {
    match service.rsplit_once(':') {
        None => Some(ServicePattern {
            fqdn: service.to_string(),
            port: None,
        }),
        Some((fqdn, port))
            if !fqdn.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(ServicePattern {
                fqdn: fqdn.to_string(),
                port: Some(port.to_string()),
            })
        }
        Some(_) => None,
    }
}

/// Builds a scope from `raw`'s keys, falling back to `parent` (a rule's
/// overrides) or to the defaults (the top level).
fn compile_scope(
    raw: &RawScope,
    prefix: &str,
    parent: Option<&Scope>,
    consumers: Rc<Consumers>,
    id: usize,
    remote_sources: &mut Vec<Rc<RemoteKeySource>>,
) -> Result<Scope, ConfigError> {
    let issuer = match (&raw.issuer, parent) {
        (Some(i), _) if i.is_empty() => {
            return Err(ConfigError::new(
                format!("{prefix}issuer"),
                "must not be empty",
            ))
        }
        (Some(i), _) => i.clone(),
        (None, Some(p)) => p.issuer.clone(),
        (None, None) => DEFAULT_ISSUER.to_string(),
    };
    let auth_path = match (&raw.auth_path, parent) {
        (Some(p), _) => normalize_auth_path(p, &format!("{prefix}auth_path"))?,
        (None, Some(p)) => p.auth_path.clone(),
        (None, None) => DEFAULT_AUTH_PATH.to_string(),
    };
    let header = match (&raw.auth_header_name, &raw.auth_header) {
        (Some(a), Some(b)) if a != b => {
            return Err(ConfigError::new(
                format!("{prefix}auth_header"),
                "conflicts with auth_header_name (an alias of it)",
            ))
        }
        (Some(a), _) => Some((a, "auth_header_name")),
        (None, Some(b)) => Some((b, "auth_header")),
        (None, None) => None,
    };
    let auth_header = match (header, parent) {
        (Some((name, key)), _) => {
            if !is_header_name(name) {
                return Err(ConfigError::new(
                    format!("{prefix}{key}"),
                    "not a valid HTTP header name",
                ));
            }
            name.to_ascii_lowercase()
        }
        (None, Some(p)) => p.auth_header.clone(),
        (None, None) => DEFAULT_AUTH_HEADER.to_string(),
    };
    let oidc = match (&raw.oidc, parent) {
        (Some(block), _) => Some(Rc::new(oidc_scope(block, prefix, remote_sources)?)),
        (None, Some(p)) => p.oidc.clone(),
        (None, None) => None,
    };
    check_claims_leave_token_header(raw, prefix, &auth_header, &consumers, oidc.as_deref())?;
    let token_ttl = match (raw.token_ttl, parent) {
        (Some(0), _) => {
            return Err(ConfigError::new(
                format!("{prefix}token_ttl"),
                "must be at least 1 second",
            ))
        }
        (Some(t), _) => t,
        (None, Some(p)) => p.token_ttl,
        (None, None) => DEFAULT_TOKEN_TTL,
    };
    let locations = token_locations(&auth_header, &consumers);
    Ok(Scope {
        id,
        issuer,
        auth_path,
        global_credentials: raw
            .global_credentials
            .or(parent.map(|p| p.global_credentials))
            .unwrap_or(true),
        auth_header,
        token_ttl,
        clock_skew: raw
            .clock_skew_seconds
            .or(parent.map(|p| p.clock_skew))
            .unwrap_or(DEFAULT_CLOCK_SKEW),
        keep_token: raw
            .keep_token
            .or(parent.map(|p| p.keep_token))
            .unwrap_or(true),
        consumers,
        locations,
        oidc,
    })
}

fn oidc_scope(
    raw: &super::oidc::RawOidc,
    prefix: &str,
    remote_sources: &mut Vec<Rc<RemoteKeySource>>,
) -> Result<OidcScope, ConfigError> {
    let config = compile_oidc(raw, prefix)?;
    let candidate = RemoteKeySource::new(
        config.cluster.clone(),
        KeyLocation::Discovery {
            issuer: config.issuer.clone(),
            authority: config.discovery_authority.clone(),
            path: config.discovery_path.clone(),
        },
        super::consumer::DEFAULT_JWKS_REFRESH_SECONDS,
        // `oidc_verifier_request_timeout` (Higress: the discovery request).
        config.call_timeout_ms,
    );
    let provider = match remote_sources.iter().find(|s| s.id == candidate.id) {
        Some(existing) => Rc::clone(existing),
        None => {
            let source = Rc::new(candidate);
            remote_sources.push(Rc::clone(&source));
            source
        }
    };
    Ok(OidcScope { config, provider })
}

/// No claim may be written into the header this scope reads gateway tokens
/// from: upstream it would read as a credential. The error names the claim
/// entry when this scope configured it, else the auth header that a rule
/// changed under inherited claims.
fn check_claims_leave_token_header(
    raw: &RawScope,
    prefix: &str,
    auth_header: &str,
    consumers: &Consumers,
    oidc: Option<&OidcScope>,
) -> Result<(), ConfigError> {
    let reason =
        || format!("\"{auth_header}\" is the auth header; a claim cannot be written into it");
    let header_key = if raw.auth_header.is_some() && raw.auth_header_name.is_none() {
        "auth_header"
    } else {
        "auth_header_name"
    };
    if let Some(sso) = oidc {
        if let Some(j) = writes_token_header(&sso.config.claims_to_headers, auth_header) {
            let field = match &raw.oidc {
                Some(_) => format!("{prefix}oidc.claims_to_headers[{j}].header"),
                None => format!("{prefix}{header_key}"),
            };
            return Err(ConfigError::new(field, reason()));
        }
    }
    for consumer in &consumers.jwt {
        if let Some(j) = writes_token_header(&consumer.claims_to_headers, auth_header) {
            let own = raw
                .consumers
                .as_deref()
                .and_then(|list| list.iter().position(|c| c.name == consumer.name));
            let field = match own {
                Some(i) => format!("{prefix}consumers[{i}].claims_to_headers[{j}].header"),
                None => format!("{prefix}{header_key}"),
            };
            return Err(ConfigError::new(field, reason()));
        }
    }
    Ok(())
}

fn normalize_auth_path(path: &str, field: &str) -> Result<String, ConfigError> {
    // An empty path would make every URL ending in "/" a token endpoint.
    if path.is_empty() || path == "/" {
        return Err(ConfigError::new(
            field,
            "must name a path such as /oauth2/token",
        ));
    }
    if path.contains(['?', '#']) || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(ConfigError::new(
            field,
            "must be a plain path without query or spaces",
        ));
    }
    let absolute = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    // Requests are compared in canonical form, so the configured path is
    // kept in that form too (`/oauth2/./token` is `/oauth2/token`).
    match crate::canonical::canonical_path(&absolute) {
        CanonicalPath::Safe(p) if p != "/" && !p.ends_with('/') => Ok(p),
        _ => Err(ConfigError::new(
            field,
            "must be a plain path such as /oauth2/token (no trailing slash, %2F or ..;)",
        )),
    }
}

/// RFC 9110 token characters; pseudo-headers (`:path`) are not allowed.
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
