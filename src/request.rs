//! The per-request decision: which configuration applies, token endpoint or
//! verification, and the answer. Reads the request through [`Host`] only.

use crate::audit::{self, ConsumerKind, Placement, Who};
use crate::canonical::{BadAuthority, CanonicalPath, RequestView};
use crate::config::{AllowList, Config, Matcher, Scope, TokenLocation};
use crate::decision::{bearer_challenge, keys_unavailable, realm, Decision, Forward, Reply};
use crate::form;
use crate::host::{Host, LogLevel};
use crate::oidc::flow::CallOut;
use crate::rules::{self, Facts, Requirement};
use crate::token::extract::{find_tokens, Found, Presented};
use crate::token::jwt::{self, claim_header, ClaimValue};
use crate::token::{verify_gateway_token, TokenError, GLOBAL_AUDIENCE};
use crate::token_endpoint::{self, PendingTokenRequest, TokenRequestHead};
use crate::verified::cache::{Identity, TokenCache};

/// Request attributes fetched from the host on first use, then cached; the
/// host comes from the request's canonical view.
struct HostFacts<'h, H: Host> {
    host: &'h H,
    host_name: &'h str,
    route: Option<String>,
    cluster: Option<String>,
}

impl<'h, H: Host> HostFacts<'h, H> {
    fn new(host: &'h H, host_name: &'h str) -> Self {
        HostFacts {
            host,
            host_name,
            route: None,
            cluster: None,
        }
    }
}

fn property_string<H: Host>(host: &H, names: &[&[&str]]) -> String {
    names
        .iter()
        .find_map(|path| host.property(path))
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}

impl<H: Host> Facts for HostFacts<'_, H> {
    fn canonical_host(&mut self) -> &str {
        self.host_name
    }
    fn route_name(&mut self) -> &str {
        let host = self.host;
        self.route.get_or_insert_with(|| {
            property_string(host, &[&["route_name"], &["xds", "route_name"]])
        })
    }
    fn cluster_name(&mut self) -> &str {
        let host = self.host;
        self.cluster.get_or_insert_with(|| {
            property_string(host, &[&["cluster_name"], &["xds", "cluster_name"]])
        })
    }
}

/// 400 for an `:authority` that does not parse: it would match no
/// `_match_domain_` rule only by accident of its spelling.
fn bad_authority<H: Host>(host: &H, why: BadAuthority) -> Reply {
    host.count("denied_400_bad_authority");
    host.log(
        LogLevel::Debug,
        &format!("edge-auth: 400: :authority does not parse ({})", why.code()),
    );
    Reply {
        status: 400,
        headers: vec![("content-type", "text/plain".into())],
        body: "Bad Request: invalid host.".into(),
        verdict: audit::denied("bad_authority"),
        who: None,
    }
}

/// Is this request for the token endpoint? Only a path with a canonical
/// form can be: `/oauth2/./token` is, `/oauth2%2Ftoken` is not (it gets the
/// scope's ordinary authentication instead).
fn is_token_endpoint(path: &CanonicalPath, auth_path: &str) -> bool {
    path.as_safe().is_some_and(|p| p.ends_with(auth_path))
}

/// What a stream may wait for after its headers.
#[derive(Debug)]
pub enum Wait {
    /// A token request whose parameters are in the body: answered locally
    /// once the body is in (or its wait runs out, `token_endpoint::BodyWaits`).
    ReadBody(PendingTokenRequest),
    /// Single sign-on asks the IdP first (code exchange, refresh).
    CallOut(CallOut),
}

pub fn on_request_headers<'c, H: Host>(
    config: &'c Config,
    cache: &TokenCache,
    host: &mut H,
    end_of_stream: bool,
) -> Decision<'c, Wait> {
    decide(
        config,
        cache,
        host,
        end_of_stream,
        &mut Placement::default(),
    )
}

/// The configured route name of this request: Envoy's `route_name` when a
/// `_match_route_` lists it. Envoy is asked only when some rule matches on
/// route names (and then usually was asked already by the rule match).
fn configured_route<H: Host>(config: &Config, facts: &mut HostFacts<'_, H>) -> Option<String> {
    let route_lists = || {
        config
            .rules
            .iter()
            .flat_map(|r| &r.matchers)
            .filter_map(|m| match m {
                Matcher::Route(routes) => Some(routes),
                _ => None,
            })
    };
    route_lists().next()?;
    let route = facts.route_name();
    route_lists()
        .any(|routes| routes.iter().any(|r| r == route))
        .then(|| route.to_string())
}

/// As [`on_request_headers`], and says where the request fell in the
/// configuration (`placement`, for the audit trail and metrics).
pub fn decide<'c, H: Host>(
    config: &'c Config,
    cache: &TokenCache,
    host: &mut H,
    end_of_stream: bool,
    placement: &mut Placement,
) -> Decision<'c, Wait> {
    let now = host.now_unix_seconds();
    if crate::keys::remote::adopt_published_keys(&config.remote_sources, &*host, now) {
        cache.clear();
    }
    // The one canonical view of path and host every decision below reads.
    let path = host.request_header(":path").unwrap_or_default();
    let authority = host.request_header(":authority").unwrap_or_default();
    let view = match RequestView::new(&path, &authority) {
        Ok(view) => view,
        Err(why) => return Decision::Reply(bad_authority(&*host, why)),
    };
    let mut facts = HostFacts::new(&*host, &view.host);
    let rule = rules::select(config, &mut facts);
    let rule_index = rule.and_then(|r| config.rules.iter().position(|x| std::ptr::eq(x, r)));
    placement.rule = rule_index;
    placement.route = configured_route(config, &mut facts);
    let requirement = rules::requirement(config, rule);
    if requirement == Requirement::Disabled {
        return Decision::Forward(Forward::anonymous(&config.identity_headers));
    }
    let scope = rule.map_or(&config.global, |r| &r.scope);
    let token_endpoint = rules::serves_token_endpoint(config, rule)
        && is_token_endpoint(&view.path, &scope.auth_path);

    // Browser single sign-on: its own paths (callback, sign-out) and its own
    // match list decide; a matched rule's `allow` still applies.
    if let Some(sso) = &scope.oidc {
        if !token_endpoint {
            let facts = SsoFacts::with_view(host, view);
            let req = facts.request(&path);
            return crate::oidc::flow::on_request(config, sso, rule_index, &req, host)
                .map_wait(Wait::CallOut);
        }
    }

    if token_endpoint {
        let route_name = facts.route_name().to_string();
        let method = host.request_header(":method").unwrap_or_default();
        let content_type = host.request_header("content-type");
        let head = TokenRequestHead {
            method: &method,
            path: &path,
            content_type: content_type.as_deref(),
            authorization: host.request_header("authorization"),
            route_name,
            end_of_stream,
        };
        return token_endpoint::on_headers(scope, head, host).map_wait(Wait::ReadBody);
    }

    match requirement {
        Requirement::Authenticate { allow } => {
            let now = host.now_unix_seconds();
            let outcome = authenticate(config, cache, scope, allow, &mut facts, now);
            match outcome {
                Ok(forward) => {
                    host.count("requests_allowed");
                    Decision::Forward(forward)
                }
                Err(refusal) => {
                    host.count(&format!("denied_{}_{}", refusal.status, refusal.code));
                    host.log(
                        LogLevel::Debug,
                        &format!(
                            "edge-auth: {} on route \"{}\": {} [{}]",
                            refusal.status,
                            facts.route_name(),
                            refusal.reason,
                            refusal.code
                        ),
                    );
                    Decision::Reply(refusal.into_reply(host, &authority, &path))
                }
            }
        }
        Requirement::Open | Requirement::Disabled => {
            Decision::Forward(Forward::anonymous(&config.identity_headers))
        }
    }
}

/// Owned copies of the request headers single sign-on looks at, and the
/// request's canonical view.
pub struct SsoFacts {
    method: String,
    authority: String,
    scheme: String,
    cookie: Option<String>,
    accept: Option<String>,
    requested_with: Option<String>,
    authorization: Option<String>,
    view: RequestView,
}

impl SsoFacts {
    /// Reads the headers and computes the canonical view (a request whose
    /// `:authority` does not parse gets a view that matches nothing and needs
    /// authentication everywhere; on the request path it was answered 400
    /// before this point).
    pub fn read<H: Host>(host: &H) -> Self {
        let path = host.request_header(":path").unwrap_or_default();
        let authority = host.request_header(":authority").unwrap_or_default();
        let view = RequestView::new(&path, &authority).unwrap_or_else(|_| RequestView::unusable());
        Self::with_view(host, view)
    }

    /// Reads the headers; the view was computed already.
    pub fn with_view<H: Host>(host: &H, view: RequestView) -> Self {
        SsoFacts {
            method: host.request_header(":method").unwrap_or_default(),
            authority: host.request_header(":authority").unwrap_or_default(),
            scheme: host
                .request_header(":scheme")
                .unwrap_or_else(|| "http".into()),
            cookie: host.request_header("cookie"),
            accept: host.request_header("accept"),
            requested_with: host.request_header("x-requested-with"),
            authorization: host.request_header("authorization"),
            view,
        }
    }

    pub fn request<'a>(&'a self, path: &'a str) -> crate::oidc::flow::SsoRequest<'a> {
        crate::oidc::flow::SsoRequest {
            method: &self.method,
            path,
            canonical_path: &self.view.path,
            authority: &self.authority,
            host: &self.view.host,
            scheme: &self.scheme,
            cookie: self.cookie.as_deref(),
            accept: self.accept.as_deref(),
            requested_with: self.requested_with.as_deref(),
            authorization: self.authorization.as_deref(),
        }
    }
}

/// Why a request was refused, before it becomes a reply.
struct Refusal {
    status: u32,
    /// Stable, machine-readable: metrics (`denied_<status>_<code>`) and logs.
    code: &'static str,
    /// For people: `error_description` and the debug log.
    reason: &'static str,
    /// A token was presented (it gets `error="invalid_token"`).
    token_presented: bool,
    /// The verified identity refused (not in the allow list), for the
    /// audit record.
    who: Option<Box<Who>>,
}

impl Refusal {
    fn unauthorized(code: &'static str, reason: &'static str, token_presented: bool) -> Self {
        Refusal {
            status: 401,
            code,
            reason,
            token_presented,
            who: None,
        }
    }

    fn forbidden(code: &'static str, reason: &'static str) -> Self {
        Refusal {
            status: 403,
            code,
            reason,
            token_presented: true,
            who: None,
        }
    }

    fn into_reply<H: Host>(self, host: &H, authority: &str, path: &str) -> Reply {
        match self.status {
            403 => {
                return Reply {
                    status: 403,
                    headers: vec![("content-type", "text/plain".into())],
                    body: "Access Denied.".into(),
                    verdict: audit::denied(self.code),
                    who: self.who,
                }
            }
            503 => return keys_unavailable().because(audit::denied(self.code)),
            _ => {}
        }
        let scheme = host
            .request_header(":scheme")
            .unwrap_or_else(|| "http".into());
        let realm = realm(&scheme, authority, form::path_only(path));
        let challenge = bearer_challenge(&realm, self.token_presented.then_some(self.reason));
        Reply {
            status: 401,
            headers: vec![
                ("content-type", "text/plain".into()),
                ("www-authenticate", challenge),
            ],
            body: "Invalid Jwt token.".into(),
            verdict: audit::denied(self.code),
            who: None,
        }
    }
}

impl From<TokenError> for Refusal {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::KeysUnavailable => Refusal {
                status: 503,
                code: e.code(),
                reason: e.description(),
                token_presented: true,
                who: None,
            },
            _ => Refusal::unauthorized(e.code(), e.description(), true),
        }
    }
}

fn authenticate<'c, H: Host>(
    config: &'c Config,
    cache: &TokenCache,
    scope: &'c Scope,
    allow: Option<&AllowList>,
    facts: &mut HostFacts<'_, H>,
    now: u64,
) -> Result<Forward<'c>, Refusal> {
    let presented = match find_tokens(&scope.locations, facts.host) {
        Found::Nothing => {
            return Err(Refusal::unauthorized(
                "no_bearer_token",
                "no bearer token",
                false,
            ))
        }
        Found::Malformed(_) => {
            return Err(Refusal::unauthorized(
                "malformed_token",
                "malformed token",
                true,
            ))
        }
        Found::Repeated(_) => {
            return Err(Refusal::unauthorized(
                "repeated_token",
                "more than one token in one place",
                true,
            ))
        }
        Found::Tokens(list) => list,
    };
    // Every token present must verify and name the same consumer: a valid
    // token in one place never carries an unchecked one in another.
    let mut identity: Option<Identity> = None;
    for token in &presented {
        let this = identify(config, cache, scope, token, facts, now)?;
        match &identity {
            Some(first) if first.consumer != this.consumer => {
                return Err(Refusal::unauthorized(
                    "tokens_disagree",
                    "tokens in several places name different consumers",
                    true,
                ))
            }
            Some(_) => {}
            None => identity = Some(this),
        }
    }
    let Some(identity) = identity else {
        return Err(Refusal::unauthorized(
            "no_bearer_token",
            "no bearer token",
            false,
        ));
    };
    if allow.is_some_and(|list| !list.contains(&identity.consumer)) {
        let mut refusal =
            Refusal::forbidden("consumer_not_in_allow_list", "consumer not in allow list");
        refusal.who = Some(Box::new(Who {
            kind: if identity.gateway_token {
                ConsumerKind::Gateway
            } else {
                ConsumerKind::Jwt
            },
            consumer: identity.consumer,
            sub: identity.sub,
            jti: identity.jti,
        }));
        return Err(refusal);
    }
    Ok(Forward {
        scrub: &config.identity_headers,
        strip_header: identity.strip_header,
        consumer: Some(identity.consumer),
        claim_headers: identity.claim_headers,
        kind: Some(if identity.gateway_token {
            ConsumerKind::Gateway
        } else {
            ConsumerKind::Jwt
        }),
        sub: identity.sub,
        jti: identity.jti,
        ..Forward::default()
    })
}

/// One presented token: from the cache or verified in full, then the
/// checks that depend on this request rather than on the token (the route a
/// gateway token is bound to).
fn identify<H: Host>(
    config: &Config,
    cache: &TokenCache,
    scope: &Scope,
    presented: &Presented<'_>,
    facts: &mut HostFacts<'_, H>,
    now: u64,
) -> Result<Identity, Refusal> {
    let token = presented.token.as_str();
    if token.len() > config.max_token_bytes {
        return Err(TokenError::TooLarge.into());
    }
    let key = cache
        .enabled()
        .then(|| cache.key(scope.id, presented.index, token));
    let cached = key
        .as_ref()
        .and_then(|k| cache.lookup(config, facts.host, k, now));
    let identity = match cached {
        Some(identity) => identity,
        None => {
            let (identity, valid_until, skipped) =
                verify_token(config, scope, presented.location, token, now)?;
            for (claim, why) in skipped {
                facts.host.log(
                    LogLevel::Info,
                    &format!("edge-auth: claim \"{claim}\" not passed upstream: {why}"),
                );
            }
            if let Some(k) = key {
                cache.store(config, facts.host, k, identity.clone(), valid_until);
            }
            identity
        }
    };
    // A gateway token is bound to where it was issued: `aud` "default" from
    // a global-credentials endpoint, the route's name from a route-scoped
    // one. Each works only where the same kind would have been issued.
    if identity.gateway_token {
        let route = facts.route_name();
        let expected = if scope.global_credentials {
            GLOBAL_AUDIENCE
        } else {
            route
        };
        if !identity.audience.iter().any(|a| a == expected) {
            return Err(Refusal::forbidden(
                "wrong_audience",
                "token audience is another route",
            ));
        }
    }
    Ok(identity)
}

/// Longest a verified token without `exp` is trusted from the cache.
const MAX_CACHE_SECONDS_WITHOUT_EXP: u64 = 300;

/// Claims not passed upstream, with why (for the log).
type SkippedClaims = Vec<(String, &'static str)>;

/// Full verification: gateway tokens for the gateway header, then JWT
/// consumers reading tokens from where this one was found. Returns the
/// identity, the last second it may be reused, and the claims that could
/// not become headers.
fn verify_token(
    config: &Config,
    scope: &Scope,
    location: &TokenLocation,
    token: &str,
    now: u64,
) -> Result<(Identity, u64, SkippedClaims), Refusal> {
    let consumers = &scope.consumers;
    let gateway_location =
        matches!(location, TokenLocation::Header { name, .. } if *name == scope.auth_header);
    let mut gateway_error = None;
    if gateway_location && consumers.has_gateway_consumers() {
        match verify_gateway_token(token, scope, config.max_token_bytes, now) {
            Ok(v) => {
                let identity = Identity {
                    consumer: v.consumer.name.clone(),
                    audience: v.audience.into_strings(),
                    claim_headers: Vec::new(),
                    strip_header: (!scope.keep_token).then(|| scope.auth_header.clone()),
                    gateway_token: true,
                    sub: Some(v.consumer.name.clone()),
                    jti: v.jti,
                };
                let valid_until = v.expires_at.saturating_add(scope.clock_skew);
                return Ok((identity, valid_until, Vec::new()));
            }
            Err(e) => gateway_error = Some(e),
        }
    }
    let mut candidates = consumers
        .jwt
        .iter()
        .filter(|c| c.locations.contains(location))
        .peekable();
    if candidates.peek().is_none() {
        return Err(gateway_error.map_or_else(
            || {
                Refusal::unauthorized(
                    "no_consumer_for_location",
                    "no consumer reads tokens from here",
                    true,
                )
            },
            Refusal::from,
        ));
    }
    let parsed = jwt::parse(token, config.max_token_bytes);
    let result = parsed.and_then(|p| jwt::verify(&p, candidates, now).map(|v| (p, v)));
    match result {
        Ok((parsed, verified)) => {
            let consumer = verified.consumer;
            let mut skipped = Vec::new();
            let mut claim_headers = Vec::new();
            for h in &consumer.claims_to_headers {
                match claim_header(&parsed.claims, &h.claim) {
                    ClaimValue::Value(v) => claim_headers.push((h.header.clone(), v, h.replace)),
                    ClaimValue::Absent => {}
                    ClaimValue::Refused(why) => skipped.push((h.claim.clone(), why)),
                }
            }
            let strip_header = match location {
                TokenLocation::Header { name, .. } if !consumer.keep_token => Some(name.clone()),
                _ => None,
            };
            let text_claim = |name: &str| {
                parsed
                    .claims
                    .get(name)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string)
            };
            let identity = Identity {
                consumer: consumer.name.clone(),
                audience: Vec::new(),
                claim_headers,
                strip_header,
                gateway_token: false,
                sub: text_claim("sub"),
                jti: text_claim("jti"),
            };
            let valid_until = verified
                .valid_until
                .unwrap_or_else(|| now.saturating_add(MAX_CACHE_SECONDS_WITHOUT_EXP));
            Ok((identity, valid_until, skipped))
        }
        // A gateway token (client_id of a gateway consumer) explains itself
        // better than "issuer not accepted" from the JWT consumers.
        Err(TokenError::WrongIssuer) if gateway_error.is_some() => {
            Err(gateway_error.map_or_else(|| TokenError::WrongIssuer.into(), Refusal::from))
        }
        Err(e) => Err(e.into()),
    }
}
