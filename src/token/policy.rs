//! The policy layer above `jwt-compact`: what a token of each kind must
//! say once its signature checks out. One [`Policy`] per token kind, read
//! from the configuration; [`check_claims`] applies it, [`verify`] runs the
//! whole pipeline for kinds with one issuer and one key set.
//!
//! | kind          | issuer         | audiences                   | azp       | exp      | identity            |
//! |---------------|----------------|-----------------------------|-----------|----------|---------------------|
//! | gateway token | scope `issuer` | its route (after the cache) | -         | required | `sub` = consumer    |
//! | JWT consumer  | consumer's     | consumer's `audiences`      | -         | per config | the consumer      |
//! | ID token      | provider's     | `client_id`                 | client_id | required | `sub` + consumer claim |
//! | SSO bearer    | provider's     | `client_id` + `audiences`   | client_id | required | `sub` + consumer claim |

use serde_json::{Map, Value};

use super::error::TokenError;
use super::jwt::{self, check_audience, check_signature, check_times, lookup_claim, ParsedJwt};
use crate::config::oidc::OidcConfig;
use crate::config::JwtConsumer;
use crate::keys::KeySet;

/// Which of the provider's tokens an OIDC policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcToken {
    /// From the token endpoint: meant for `client_id` only.
    IdToken,
    /// `Authorization: Bearer` on an SSO route (`accept_bearer`): for
    /// `client_id` or one of the configured `audiences`.
    Bearer,
}

#[derive(Debug, Clone)]
pub struct Policy<'c> {
    pub issuer: &'c str,
    /// `aud` must name one of these; empty: no audience rule.
    pub audiences: &'c [String],
    /// `azp` must be this when present, and present with several audiences.
    pub authorized_party: Option<&'c str>,
    pub clock_skew: u64,
    pub require_exp: bool,
    pub max_bytes: usize,
    /// Claims that must name someone (a non-empty string), when set.
    pub identity_claims: [Option<&'c str>; 2],
}

impl<'c> Policy<'c> {
    /// ID tokens and bearer tokens of the single sign-on provider.
    pub fn oidc(config: &'c OidcConfig, kind: OidcToken, max_bytes: usize) -> Self {
        Policy {
            issuer: &config.issuer,
            audiences: match kind {
                OidcToken::IdToken => std::slice::from_ref(&config.client_id),
                OidcToken::Bearer => &config.bearer_audiences,
            },
            authorized_party: Some(&config.client_id),
            clock_skew: config.clock_skew,
            require_exp: true,
            max_bytes,
            identity_claims: [Some("sub"), Some(&config.consumer_claim)],
        }
    }

    /// A JWT consumer: its identity is the consumer itself.
    pub fn jwt_consumer(consumer: &'c JwtConsumer, max_bytes: usize) -> Self {
        Policy {
            issuer: &consumer.issuer,
            audiences: &consumer.audiences,
            authorized_party: None,
            clock_skew: consumer.clock_skew,
            require_exp: consumer.require_exp,
            max_bytes,
            identity_claims: [None, None],
        }
    }
}

/// Times, audience (+ azp) and identity of a token whose issuer and
/// signature were checked; the last second it may be trusted.
pub fn check_claims(
    token: &ParsedJwt<'_>,
    policy: &Policy<'_>,
    now: u64,
) -> Result<Option<u64>, TokenError> {
    let valid_until = check_times(token, policy.clock_skew, policy.require_exp, now)?;
    if !policy.audiences.is_empty() {
        check_audience(&token.claims, policy.audiences, policy.authorized_party)?;
    }
    // No identity, no access: an upstream must never see an authenticated
    // request that names nobody.
    for claim in policy.identity_claims.into_iter().flatten() {
        if identity_of(&token.claims, claim).is_none() {
            return Err(TokenError::NoIdentity);
        }
    }
    Ok(valid_until)
}

/// What a token established.
#[derive(Debug)]
pub struct Verified {
    pub claims: Map<String, Value>,
    pub valid_until: Option<u64>,
}

/// The whole pipeline for one issuer and one key set: size and parse
/// (`jwt-compact`, header policy), issuer, key by `kid` with the algorithm
/// bound to the key, signature, then [`check_claims`].
pub fn verify(
    token: &str,
    policy: &Policy<'_>,
    keys: &KeySet,
    now: u64,
) -> Result<Verified, TokenError> {
    let parsed = jwt::parse(token, policy.max_bytes)?;
    if parsed.issuer() != Some(policy.issuer) {
        return Err(TokenError::WrongIssuer);
    }
    check_signature(&parsed, keys)?;
    let valid_until = check_claims(&parsed, policy, now)?;
    Ok(Verified {
        claims: parsed.claims,
        valid_until,
    })
}

/// A claim that names someone: a non-empty string.
fn identity_of<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    lookup_claim(claims, name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::b64::b64url;

    const NOW: u64 = 1_700_000_000;

    /// Structure only: check_claims runs after the signature check.
    fn token(claims: serde_json::Value) -> String {
        format!(
            "{}.{}.{}",
            b64url(br#"{"alg":"HS256"}"#),
            b64url(claims.to_string().as_bytes()),
            b64url(&[0; 32])
        )
    }

    fn check(policy: &Policy<'_>, claims: serde_json::Value) -> Result<Option<u64>, TokenError> {
        let t = token(claims);
        let parsed = jwt::parse(&t, 4096).unwrap();
        check_claims(&parsed, policy, NOW)
    }

    #[test]
    fn each_rule_of_the_oidc_policy() {
        let client = vec!["client".to_string(), "urn:api".to_string()];
        let policy = Policy {
            issuer: "https://idp",
            audiences: &client,
            authorized_party: Some("client"),
            clock_skew: 60,
            require_exp: true,
            max_bytes: 4096,
            identity_claims: [Some("sub"), Some("email")],
        };
        let ok = json!({"sub": "bob", "email": "b@x", "aud": "client", "exp": NOW + 10});
        assert_eq!(check(&policy, ok.clone()), Ok(Some(NOW + 70)));
        let with = |k: &str, v: serde_json::Value| {
            let mut c = ok.clone();
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v;
            }
            c
        };
        let table = [
            (with("aud", json!("urn:api")), Ok(Some(NOW + 70))),
            (
                with("aud", json!("urn:other")),
                Err(TokenError::WrongAudience),
            ),
            (
                with("aud", serde_json::Value::Null),
                Err(TokenError::WrongAudience),
            ),
            (with("aud", json!([])), Err(TokenError::WrongAudience)),
            (
                with("aud", json!(["client", "x"])),
                Err(TokenError::WrongAuthorizedParty),
            ),
            (
                with("azp", json!("other")),
                Err(TokenError::WrongAuthorizedParty),
            ),
            (with("azp", json!(7)), Err(TokenError::WrongAuthorizedParty)),
            (
                with("sub", serde_json::Value::Null),
                Err(TokenError::NoIdentity),
            ),
            (with("sub", json!("")), Err(TokenError::NoIdentity)),
            (with("sub", json!(5)), Err(TokenError::NoIdentity)),
            (
                with("email", serde_json::Value::Null),
                Err(TokenError::NoIdentity),
            ),
            (
                with("exp", serde_json::Value::Null),
                Err(TokenError::MissingExp),
            ),
            (with("exp", json!(NOW - 61)), Err(TokenError::Expired)),
            (with("exp", json!(NOW - 60)), Ok(Some(NOW))),
            (with("nbf", json!(NOW + 61)), Err(TokenError::NotYetValid)),
            (
                with("iat", json!(NOW + 61)),
                Err(TokenError::IssuedInFuture),
            ),
            (
                with("nbf", json!(i64::MIN / 1000)),
                Err(TokenError::InvalidDate),
            ),
        ];
        for (claims, expected) in table {
            let t = token(claims.clone());
            let got = jwt::parse(&t, 4096).and_then(|p| check_claims(&p, &policy, NOW));
            assert_eq!(got, expected, "{claims}");
        }
        let mut both = with("aud", json!(["client", "x"]));
        both["azp"] = json!("client");
        assert_eq!(check(&policy, both), Ok(Some(NOW + 70)));
    }

    #[test]
    fn a_consumer_policy_without_audiences_or_exp() {
        let policy = Policy {
            issuer: "https://idp",
            audiences: &[],
            authorized_party: None,
            clock_skew: 0,
            require_exp: false,
            max_bytes: 4096,
            identity_claims: [None, None],
        };
        assert_eq!(check(&policy, json!({"aud": "anything"})), Ok(None));
        assert_eq!(
            check(&policy, json!({"exp": NOW - 1})),
            Err(TokenError::Expired)
        );
    }
}
