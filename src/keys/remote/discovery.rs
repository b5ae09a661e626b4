//! OpenID Connect discovery documents (OpenID Connect Discovery 1.0 §4):
//! what single sign-on and key fetching need from one, checked before use.

/// What OpenID Connect single sign-on needs from a discovery document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// A discovery document, checked: issuer as expected (when one is), every
/// endpoint an absolute http(s) URL.
pub fn parse_discovery(
    expected_issuer: Option<&str>,
    body: &[u8],
) -> Result<ProviderMetadata, String> {
    let doc: ProviderMetadata = serde_json::from_slice(body)
        .map_err(|_| "discovery document lacks issuer or jwks_uri".to_string())?;
    if let Some(issuer) = expected_issuer {
        // OpenID Connect Discovery §4.3: the issuer MUST match exactly.
        if doc.issuer != issuer {
            return Err(format!(
                "discovery issuer \"{}\" is not the configured \"{issuer}\"",
                doc.issuer
            ));
        }
    }
    let endpoints = [
        ("jwks_uri", Some(&doc.jwks_uri)),
        (
            "authorization_endpoint",
            doc.authorization_endpoint.as_ref(),
        ),
        ("token_endpoint", doc.token_endpoint.as_ref()),
        ("end_session_endpoint", doc.end_session_endpoint.as_ref()),
    ];
    for (name, value) in endpoints {
        if let Some(url) = value {
            if let Err(reason) = crate::http_url::parse_absolute(url) {
                return Err(format!("discovery {name} \"{url}\" {reason}"));
            }
        }
    }
    Ok(doc)
}
