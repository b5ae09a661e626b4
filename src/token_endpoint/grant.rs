//! The client-credentials grant's parameters (RFC 6749 §4.4): read once,
//! one client authentication method, the client's secret compared in
//! constant time, a well-formed `scope`.

use subtle::ConstantTimeEq;

use crate::config::{Consumer, Scope};
use crate::form::{self, basic_credentials, FormError};
use crate::host::{Host, LogLevel};

use super::answer::{error, invalid_client, Answer, TokenError};

/// A grant that may be answered with a token.
pub(super) struct Grant<'s> {
    pub(super) consumer: &'s Consumer,
    /// The `scope` parameter, checked for its characters.
    pub(super) requested_scope: Option<String>,
}

/// Reads and checks the parameters (and `Authorization: Basic`) of a token
/// request, in the order its errors are reported.
pub(super) fn validate<'s, H: Host>(
    scope: &'s Scope,
    params: &str,
    authorization: Option<&str>,
    host: &H,
) -> Result<Grant<'s>, Answer> {
    let [grant_type, client_id, client_secret, requested_scope] = match form::pick(
        params,
        ["grant_type", "client_id", "client_secret", "scope"],
    ) {
        Ok(found) => found,
        Err(FormError::Repeated(name)) => {
            return Err(error(
                400,
                TokenError::InvalidRequest,
                &format!("{name} is repeated"),
            ))
        }
        Err(FormError::Malformed) => {
            return Err(error(
                400,
                TokenError::InvalidRequest,
                "malformed parameters",
            ))
        }
    };
    match grant_type.as_deref() {
        None => {
            return Err(error(
                400,
                TokenError::InvalidRequest,
                "grant_type is missing",
            ))
        }
        Some("client_credentials") => {}
        Some(_) => {
            return Err(error(
                400,
                TokenError::UnsupportedGrantType,
                "grant_type is not supported, only client_credentials is",
            ))
        }
    }

    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
    let basic = authorization.and_then(basic_credentials);
    let (client_id, client_secret, via_basic) = match basic {
        None => (client_id, client_secret, false),
        Some(_) if client_id.is_some() || client_secret.is_some() => {
            return Err(error(
                400,
                TokenError::InvalidRequest,
                "client credentials must be sent either in Authorization: Basic or as parameters, not both",
            ))
        }
        Some(Err(_)) => return Err(invalid_client(true)),
        Some(Ok(creds)) => (Some(creds.client_id), Some(creds.client_secret), true),
    };
    let Some(client_id) = client_id.filter(|s| !s.is_empty()) else {
        return Err(error(
            400,
            TokenError::InvalidRequest,
            "client_id is missing",
        ));
    };
    let Some(client_secret) = client_secret.filter(|s| !s.is_empty()) else {
        return Err(error(
            400,
            TokenError::InvalidRequest,
            "client_secret is missing",
        ));
    };
    let Some(consumer) = authenticate_client(scope, &client_id, &client_secret) else {
        host.log(
            LogLevel::Debug,
            "edge-auth: token request refused: invalid client credentials",
        );
        return Err(invalid_client(via_basic));
    };
    if let Some(s) = requested_scope.as_deref() {
        if !is_valid_scope(s) {
            return Err(error(
                400,
                TokenError::InvalidScope,
                "scope has invalid characters",
            ));
        }
    }
    Ok(Grant {
        consumer,
        requested_scope,
    })
}

/// Looks the client up and compares the secret in constant time.
fn authenticate_client<'s>(
    scope: &'s Scope,
    client_id: &str,
    secret: &str,
) -> Option<&'s Consumer> {
    let consumer = scope.consumers.by_client_id(client_id)?;
    bool::from(consumer.secret.as_slice().ct_eq(secret.as_bytes())).then_some(consumer)
}

/// RFC 6749 §3.3: space-separated NQCHAR tokens.
fn is_valid_scope(scope: &str) -> bool {
    scope
        .bytes()
        .all(|b| b == b' ' || b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}
