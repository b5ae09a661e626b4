//! One error type for every token kind, with stable codes: metrics
//! (`denied_<status>_<code>`) and logs use [`TokenError::code`], people read
//! [`TokenError::description`] (the `error_description` of a 401).

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TokenError {
    // Ordered by how far verification got: the furthest is the most useful
    // explanation when several consumers were tried.
    TooLarge,
    Malformed,
    UnsupportedAlgorithm,
    /// `jwk`, `jku`, `x5u` or `x5c` in the header.
    EmbeddedKey,
    UnsupportedCritical,
    /// A gateway token whose `typ` is not an RFC 9068 access token.
    WrongType,
    /// A gateway token without a claim it must have.
    MissingClaim(&'static str),
    WrongIssuer,
    /// Remote keys never arrived: the answer is 503, not 401.
    KeysUnavailable,
    UnknownKid,
    AlgorithmMismatch,
    /// Also an unknown gateway `client_id`: one answer, so replies do not
    /// reveal which client ids exist.
    BadSignature,
    /// A gateway token whose `sub` is not its client's consumer.
    WrongSubject,
    /// Verified, but another consumer's token: only the answer when no
    /// consumer's conditions matched.
    ClaimsMismatch,
    /// exp/nbf/iat present but not a NumericDate.
    InvalidDate,
    MissingExp,
    Expired,
    NotYetValid,
    IssuedInFuture,
    WrongAudience,
    /// Several audiences, or an `azp`, and `azp` is not this client
    /// (OpenID Connect Core §3.1.3.7 items 4-5).
    WrongAuthorizedParty,
    /// Verified, but it names nobody: no `sub`, or no consumer claim.
    NoIdentity,
    /// An ID token whose `nonce` is not the login's.
    NonceMismatch,
    /// A refreshed ID token for another user, issuer or client (OpenID
    /// Connect Core §12.2).
    IdentityChanged,
}

impl TokenError {
    pub fn description(self) -> &'static str {
        match self {
            TokenError::TooLarge => "token too large",
            TokenError::Malformed => "malformed token",
            TokenError::UnsupportedAlgorithm => "unsupported algorithm",
            TokenError::EmbeddedKey => "embedded key headers are not accepted",
            TokenError::UnsupportedCritical => "unsupported critical header",
            TokenError::WrongType => "unexpected token type",
            TokenError::MissingClaim(_) => "missing or invalid claim",
            TokenError::WrongIssuer => "issuer not accepted",
            TokenError::KeysUnavailable => "signing keys not available yet",
            TokenError::UnknownKid => "unknown key id",
            TokenError::AlgorithmMismatch => "algorithm does not match the key",
            TokenError::BadSignature => "signature verification failed",
            TokenError::WrongSubject => "subject does not match client",
            TokenError::InvalidDate => "exp, nbf or iat is not a number",
            TokenError::MissingExp => "token has no expiry",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::IssuedInFuture => "token issued in the future",
            TokenError::WrongAudience => "audience not accepted",
            TokenError::ClaimsMismatch => "token claims match no consumer",
            TokenError::WrongAuthorizedParty => "authorized party is not this client",
            TokenError::NoIdentity => "token names no subject",
            TokenError::NonceMismatch => "ID token nonce mismatch",
            TokenError::IdentityChanged => "refreshed ID token is for another user",
        }
    }

    /// Stable machine-readable code for metrics and logs; never changes
    /// when the description is reworded.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::TooLarge => "token_too_large",
            TokenError::Malformed => "malformed_token",
            TokenError::UnsupportedAlgorithm => "unsupported_algorithm",
            TokenError::EmbeddedKey => "embedded_key",
            TokenError::UnsupportedCritical => "unsupported_critical_header",
            TokenError::WrongType => "wrong_type",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::KeysUnavailable => "keys_unavailable",
            TokenError::UnknownKid => "unknown_kid",
            TokenError::AlgorithmMismatch => "algorithm_mismatch",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongSubject => "wrong_subject",
            TokenError::ClaimsMismatch => "claims_mismatch",
            TokenError::InvalidDate => "invalid_date",
            TokenError::MissingExp => "missing_exp",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::WrongAuthorizedParty => "wrong_authorized_party",
            TokenError::NoIdentity => "no_identity",
            TokenError::NonceMismatch => "nonce_mismatch",
            TokenError::IdentityChanged => "identity_changed",
        }
    }

    /// The wording on the sign-in error page, where "ID token" says which
    /// token is meant.
    pub fn id_token_description(self) -> &'static str {
        match self {
            TokenError::WrongIssuer => "ID token issuer mismatch",
            TokenError::WrongAudience => "ID token audience is not this client",
            TokenError::WrongAuthorizedParty => "ID token authorized party is not this client",
            TokenError::NoIdentity => "ID token names no user",
            other => other.description(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes are metric names: lower-case words joined by `_`, and unique.
    #[test]
    fn codes_are_stable_identifiers() {
        let all = [
            TokenError::TooLarge,
            TokenError::Malformed,
            TokenError::UnsupportedAlgorithm,
            TokenError::EmbeddedKey,
            TokenError::UnsupportedCritical,
            TokenError::WrongType,
            TokenError::MissingClaim("exp"),
            TokenError::WrongIssuer,
            TokenError::KeysUnavailable,
            TokenError::UnknownKid,
            TokenError::AlgorithmMismatch,
            TokenError::BadSignature,
            TokenError::WrongSubject,
            TokenError::ClaimsMismatch,
            TokenError::InvalidDate,
            TokenError::MissingExp,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::IssuedInFuture,
            TokenError::WrongAudience,
            TokenError::WrongAuthorizedParty,
            TokenError::NoIdentity,
            TokenError::NonceMismatch,
            TokenError::IdentityChanged,
        ];
        let mut seen = std::collections::HashSet::new();
        for e in all {
            let code = e.code();
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(!e.description().is_empty());
        }
        assert_eq!(TokenError::Expired.code(), "token_expired");
        assert_eq!(TokenError::BadSignature.code(), "bad_signature");
        assert_eq!(TokenError::WrongAudience.code(), "wrong_audience");
        assert_eq!(TokenError::UnknownKid.code(), "unknown_kid");
    }
}
