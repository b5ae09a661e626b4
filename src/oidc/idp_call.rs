//! Calls to the IdP's token endpoint (code exchange, refresh) with the
//! configured client authentication, their answers, and the key fetch an
//! answer signed by an unknown key asks for.

use base64::Engine;
use serde::Deserialize;

use super::continuation::{CallOut, Continuation};
use crate::config::oidc::{ClientAuth, OidcConfig};
use crate::decision::{keys_unavailable, Decision, Reply};
use crate::http_url::{form_encode, form_encode_component};
use crate::keys::remote::{jwks_request, split_url, JwksRequest, ProviderMetadata};
use crate::token::jwt;

/// A POST to the token endpoint with the configured client authentication.
pub(super) fn token_call<'c>(
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
pub(super) struct TokenResponse {
    #[serde(default)]
    pub(super) id_token: Option<String>,
    #[serde(default)]
    pub(super) access_token: Option<String>,
    #[serde(default)]
    pub(super) refresh_token: Option<String>,
    #[serde(default)]
    pub(super) expires_in: Option<u64>,
}

/// The token endpoint's answer, when it is a success with a JSON body.
pub(super) fn token_response(status: Option<u32>, body: &[u8]) -> Option<TokenResponse> {
    (status == Some(200))
        .then(|| serde_json::from_slice::<TokenResponse>(body).ok())
        .flatten()
}

/// When the ID token in the IdP's answer names a key we do not hold: the
/// call that fetches the provider's JWKS before the answer is taken up. The
/// ID token came straight from the IdP's token endpoint, so an unknown kid
/// means the IdP rotated its keys (no client can make us fetch).
pub(super) fn new_keys_request(
    then: &Continuation,
    response: &TokenResponse,
) -> Option<JwksRequest> {
    let sso = then.sso();
    let id_token = response.id_token.as_deref()?;
    let kid = jwt::parse(id_token, sso.config.max_token_size).ok()?.kid?;
    let keys = sso.provider.current()?;
    if keys.candidates(Some(&kid)).next().is_some() {
        return None;
    }
    jwks_request(&sso.provider)
}
