//! The per-request decision on a request's headers: which rule and scope
//! apply, then the token endpoint, single sign-on or bearer verification, and
//! the answer. Reads the request through [`Host`] only. The parts:
//! `facts` (route and cluster names, asked once), `bearer` (the tokens a
//! scope accepts and its `allow` list), `verify` (one token in full),
//! `refusal` (the 401/403/503 replies), `sso` (what single sign-on reads).

mod bearer;
mod facts;
mod refusal;
mod sso;
mod verify;

pub use sso::SsoFacts;

use crate::audit::{self, Placement};
use crate::canonical::{BadAuthority, CanonicalPath, RequestView};
use crate::config::Config;
use crate::decision::{Decision, Forward, Reply};
use crate::host::{Host, LogLevel};
use crate::oidc::flow::CallOut;
use crate::rules::{self, Facts, Requirement};
use crate::token_endpoint::{self, PendingTokenRequest, TokenRequestHead};
use crate::verified::cache::TokenCache;

use bearer::authenticate;
use facts::{configured_route, HostFacts};

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
            // The clock read at the top: one callback, one instant.
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
