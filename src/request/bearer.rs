//! Bearer authentication for one scope: every presented token verified (from
//! the cache or in full) and naming the same consumer, a gateway token bound
//! to its route, then the rule's `allow` list.

use crate::audit::{ConsumerKind, Who};
use crate::config::{AllowList, Config, Scope};
use crate::decision::Forward;
use crate::host::{Host, LogLevel};
use crate::rules::Facts;
use crate::token::extract::{find_tokens, Found, Presented};
use crate::token::{TokenError, GLOBAL_AUDIENCE};
use crate::verified::cache::{Identity, TokenCache};

use super::facts::HostFacts;
use super::refusal::Refusal;
use super::verify::verify_token;

pub(super) fn authenticate<'c, H: Host>(
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
        .and_then(|k| cache.lookup(config, facts.host, k, token, now));
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
                cache.store(config, facts.host, k, token, identity.clone(), valid_until);
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
