//! Compiling an `oidc` block into an [`OidcConfig`], one named step per
//! concern, in the order errors are reported: the provider (issuer,
//! discovery, cluster), the client, the redirect URL, scope and client
//! authentication, cookies (`oidc_cookies`), provider-specific fields,
//! timeouts, which paths need a login, what is passed upstream, sign-out.

use super::claim_headers::compile_claim_headers;
use super::error::{ConfigError, Errors};
use super::oidc::{
    ClientAuth, OidcConfig, PassToken, RedirectUrl, DEFAULT_CALLBACK_PATH, DEFAULT_LOGOUT_PATH,
    DEFAULT_SCOPE, LOGIN_TTL_SECONDS,
};
use super::oidc_cookies::{cookie_domain, cookie_settings};
use super::oidc_match::{match_list, match_type};
use super::patterns::{after_logout, canonical, path, redirect_domain};
use super::raw::{PassAuthorization, RawOidc};
use crate::http_url::{authority_and_path, parse_absolute};

const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";
/// Calls to the IdP may take at most this long (`oidc_verifier_request_timeout`).
const CALL_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 1..=60_000;

pub fn compile_oidc(raw: &RawOidc, prefix: &str, errors: &mut Errors) -> Option<OidcConfig> {
    let at = |k: &str| {
        if raw.flat {
            let flat_name = match k {
                "issuer" => "oidc_issuer_url",
                "set_access_token_header" => "pass_access_token",
                other => other,
            };
            format!("{prefix}{flat_name}")
        } else {
            format!("{prefix}oidc.{k}")
        }
    };
    // Every step runs, so that each mistake is reported (`Errors`); the
    // block compiles when none failed.
    let before = errors.len();
    let provider = errors.take(provider(raw, &at));
    errors.take(check_client(raw, &at));
    let redirect = errors.take(redirect_url(raw, &at));
    let scope = errors.take(scope(raw, &at));
    let client_auth = errors.take(client_auth(raw, &at));
    let cookie = errors.take(cookie_settings(raw, &at));
    if raw.allow_claim.as_deref() == Some("") {
        errors.push(ConfigError::new(at("allow_claim"), "must not be empty"));
    }
    let cookie_domain = errors.take(cookie_domain(raw, &at));
    errors.take(check_apig_fields(raw, &at));
    errors.take(check_provider_kind(raw, &at));
    let call_timeout_ms = errors.take(timeouts(raw, &at));
    let match_type = errors.take(match_type(raw, &at));
    let match_list = errors.take(match_list(raw, &at));
    let pass_token = errors.take(pass_token(raw, &at));
    let post_logout = errors.take(post_logout_redirect(raw, &at));
    let end_session_endpoint = errors.take(end_session_endpoint(raw, &at));
    let allowed_redirect_domains = errors.take(allowed_redirect_domains(raw, &at));
    let claims_to_headers = errors.take(compile_claim_headers(
        raw.claims_to_headers.iter().flatten(),
        &at("claims_to_headers"),
    ));
    let logout_path = errors.take(path(
        raw.logout_path.as_deref(),
        DEFAULT_LOGOUT_PATH,
        &at("logout_path"),
    ));
    let (
        Some(provider),
        Some((redirect, callback_path)),
        Some(scope),
        Some(client_auth),
        Some(mut cookie),
        Some(cookie_domain),
        Some(call_timeout_ms),
        Some(match_type),
        Some(match_list),
        Some(pass_token),
        Some(post_logout),
        Some(end_session_endpoint),
        Some(allowed_redirect_domains),
        Some(claims_to_headers),
        Some(logout_path),
    ) = (
        provider,
        redirect,
        scope,
        client_auth,
        cookie,
        cookie_domain,
        call_timeout_ms,
        match_type,
        match_list,
        pass_token,
        post_logout,
        end_session_endpoint,
        allowed_redirect_domains,
        claims_to_headers,
        logout_path,
    )
    else {
        return None;
    };
    if errors.len() > before {
        return None;
    }
    cookie.attributes.domain = cookie_domain;
    Some(OidcConfig {
        issuer: provider.issuer,
        cluster: provider.cluster,
        discovery_authority: provider.discovery_authority,
        discovery_path: provider.discovery_path,
        client_id: raw.client_id.clone(),
        client_secret: raw.client_secret.clone(),
        redirect,
        callback_path,
        scope,
        client_auth,
        session_key: cookie.session_key,
        csrf_key: cookie.csrf_key,
        cookie_name: cookie.name,
        call_timeout_ms,
        cookie: cookie.attributes,
        cookie_expire: cookie.expire,
        cookie_refresh: cookie.refresh,
        match_type,
        match_list,
        logout_path,
        end_session_endpoint,
        post_logout_redirect_uri: post_logout,
        allowed_redirect_domains,
        pass_token,
        set_access_token_header: raw.set_access_token_header.unwrap_or(false),
        set_userinfo_header: raw.set_userinfo_header.unwrap_or(false),
        claims_to_headers,
        accept_bearer: raw.accept_bearer.unwrap_or(false),
        bearer_audiences: std::iter::once(raw.client_id.clone())
            .chain(raw.audiences.iter().flatten().cloned())
            .collect(),
        access_token_expires_in: raw.access_token_expires_in.unwrap_or(3600),
        max_token_size: raw.max_token_size.unwrap_or(5 * 1024),
        allow_claim: raw
            .allow_claim
            .clone()
            .or_else(|| raw.consumer_claim.clone())
            .unwrap_or_else(|| "sub".into()),
        consumer_claim: raw.consumer_claim.clone().unwrap_or_else(|| "sub".into()),
        clock_skew: raw.clock_skew_seconds.unwrap_or(60),
    })
}

/// Where the provider is: its issuer, the discovery document, and the
/// Envoy cluster that reaches it.
struct Provider {
    issuer: String,
    cluster: String,
    discovery_authority: String,
    discovery_path: String,
}

fn provider(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<Provider, ConfigError> {
    let (issuer, discovery_url) = match (&raw.issuer, &raw.discovery) {
        (Some(i), d) => (
            i.trim_end_matches('/').to_string(),
            d.clone().unwrap_or_else(|| {
                format!(
                    "{}/.well-known/openid-configuration",
                    i.trim_end_matches('/')
                )
            }),
        ),
        // OpenID Connect Discovery 1.0 §4: the document lives at the
        // issuer + `/.well-known/openid-configuration`, and the issuer it
        // names must equal that prefix; so the prefix is the issuer (Huawei
        // APIG configures `discovery` alone).
        (None, Some(d)) => match d.strip_suffix(DISCOVERY_SUFFIX) {
            Some(issuer) if !issuer.is_empty() => (issuer.to_string(), d.clone()),
            _ => {
                return Err(ConfigError::new(
                    at("issuer"),
                    format!("required when discovery does not end in {DISCOVERY_SUFFIX} (tokens are checked against it)"),
                ))
            }
        },
        (None, None) => return Err(ConfigError::new(at("issuer"), "required")),
    };
    // The issuer must be kept exactly as the IdP spells it (trailing slash
    // included); only the discovery URL is derived without it.
    let issuer = raw.issuer.clone().unwrap_or(issuer);
    let discovery_field = at(if raw.discovery.is_some() {
        "discovery"
    } else {
        "issuer"
    });
    let (url_authority, discovery_path) = parse_absolute(&discovery_url)
        .map(|url| authority_and_path(&url))
        .map_err(|reason| ConfigError::new(discovery_field, reason))?;
    let (cluster, discovery_authority) = match (&raw.cluster, &raw.service_name) {
        (Some(c), None) if !c.is_empty() => (c.clone(), url_authority),
        (None, Some(s)) if !s.is_empty() => (
            format!("outbound|{}||{s}", raw.service_port.unwrap_or(80)),
            raw.service_host.clone().unwrap_or(url_authority),
        ),
        (Some(_), Some(_)) => return Err(ConfigError::new(at("service_name"), "conflicts with cluster")),
        _ => {
            return Err(ConfigError::new(
                at("cluster"),
                "the Envoy cluster that reaches the IdP is required: cluster, or service_name/service_port",
            ))
        }
    };
    Ok(Provider {
        issuer,
        cluster,
        discovery_authority,
        discovery_path,
    })
}

/// `client_id`, extra `audiences`, `client_secret`.
fn check_client(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if raw.client_id.is_empty() {
        return Err(ConfigError::new(at("client_id"), "must not be empty"));
    }
    if raw.audiences.iter().flatten().any(String::is_empty) {
        return Err(ConfigError::new(
            at("audiences"),
            "must not hold an empty audience",
        ));
    }
    if raw.client_secret.is_empty() {
        return Err(ConfigError::new(at("client_secret"), "must not be empty"));
    }
    // A full URL is sent to the IdP exactly as written (IdPs compare it
    // with the registered one as a string); the callback is recognised by
    // its path as a browser will send it (WHATWG-normalized).
    Ok(())
}

/// Where the browser comes back, and the callback path that recognises it.
fn redirect_url(
    raw: &RawOidc,
    at: &dyn Fn(&str) -> String,
) -> Result<(RedirectUrl, String), ConfigError> {
    Ok(match raw.redirect_url.as_deref() {
        None => (
            RedirectUrl::Path(DEFAULT_CALLBACK_PATH.into()),
            DEFAULT_CALLBACK_PATH.to_string(),
        ),
        Some(u) if u.starts_with('/') => {
            let p = path(Some(u), "", &at("redirect_url"))?;
            (RedirectUrl::Path(p.clone()), p)
        }
        Some(u) => {
            let url = parse_absolute(u).map_err(|reason| {
                ConfigError::new(
                    at("redirect_url"),
                    format!("must be a path or an http(s) URL: {reason}"),
                )
            })?;
            let callback = canonical(url.path(), &at("redirect_url"))?;
            (RedirectUrl::Absolute(u.to_string()), callback)
        }
    })
}

/// The scopes asked for, space-separated; `openid` among them.
fn scope(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<String, ConfigError> {
    let scope = raw
        .scope
        .as_deref()
        .unwrap_or(DEFAULT_SCOPE)
        .split([';', ' ', ','])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>();
    if !scope.contains(&"openid") {
        return Err(ConfigError::new(at("scope"), "must include openid"));
    }
    Ok(scope.join(" "))
}

/// `token_endpoint_auth_method`.
fn client_auth(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<ClientAuth, ConfigError> {
    Ok(match raw.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") => ClientAuth::Basic,
        Some("client_secret_post") => ClientAuth::Post,
        Some(other) => {
            return Err(ConfigError::new(
                at("token_endpoint_auth_method"),
                format!("\"{other}\" is not client_secret_basic or client_secret_post"),
            ))
        }
    })
}

/// Only OpenID Connect providers (Higress `provider`).
fn check_provider_kind(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    match raw.provider.as_deref() {
        None | Some("oidc") => {}
        Some(other) => {
            return Err(ConfigError::new(
                at("provider"),
                format!("\"{other}\" is not supported: only OpenID Connect providers (\"oidc\"), whose ID tokens can be verified"),
            ))
        }
    }
    Ok(())
}

/// The IdP call timeout; `cookie_csrf_expire` against the login lifetime.
fn timeouts(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<u64, ConfigError> {
    let call_timeout_ms = raw
        .oidc_verifier_request_timeout
        .unwrap_or(super::DEFAULT_CALL_TIMEOUT_MS);
    if !CALL_TIMEOUT_RANGE_MS.contains(&call_timeout_ms) {
        return Err(ConfigError::new(
            at("oidc_verifier_request_timeout"),
            format!(
                "must be between {} and {} milliseconds",
                CALL_TIMEOUT_RANGE_MS.start(),
                CALL_TIMEOUT_RANGE_MS.end()
            ),
        ));
    }
    // A login must finish within LOGIN_TTL_SECONDS whatever is configured
    // (Higress' default 15m is longer: logins time out earlier here, which
    // only ever shortens a CSRF cookie's life). 0 would be no login at all.
    if raw.cookie_csrf_expire.is_some_and(|d| d.0 == 0) {
        return Err(ConfigError::new(
            at("cookie_csrf_expire"),
            format!("must be above 0 (logins may take up to {LOGIN_TTL_SECONDS}s)"),
        ));
    }
    Ok(call_timeout_ms)
}

/// Which token goes upstream in `Authorization`.
fn pass_token(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<PassToken, ConfigError> {
    Ok(match &raw.pass_authorization_header {
        _ if raw.set_access_token_header_enabled == Some(true) => {
            if matches!(
                raw.pass_authorization_header,
                Some(PassAuthorization::Flag(false)) | Some(PassAuthorization::Which(_))
            ) {
                return Err(ConfigError::new(
                    at("set_access_token_header_enabled"),
                    "conflicts with pass_authorization_header",
                ));
            }
            PassToken::AccessToken
        }
        None | Some(PassAuthorization::Flag(true)) => PassToken::IdToken,
        Some(PassAuthorization::Flag(false)) => PassToken::None,
        Some(PassAuthorization::Which(w)) if w == "id_token" => PassToken::IdToken,
        Some(PassAuthorization::Which(w)) if w == "access_token" => PassToken::AccessToken,
        Some(PassAuthorization::Which(w)) => {
            return Err(ConfigError::new(
                at("pass_authorization_header"),
                format!("\"{w}\" is not true, false, id_token or access_token"),
            ))
        }
    })
}

/// The IdP's end-session endpoint, when configured rather than discovered.
fn end_session_endpoint(
    raw: &RawOidc,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<String>, ConfigError> {
    raw.end_session_endpoint
        .as_ref()
        .map(|u| {
            parse_absolute(u)
                .map(|url| url.to_string())
                .map_err(|reason| ConfigError::new(at("end_session_endpoint"), reason))
        })
        .transpose()
}

/// Hosts a login or sign-out may send the browser to besides this one.
fn allowed_redirect_domains(
    raw: &RawOidc,
    at: &dyn Fn(&str) -> String,
) -> Result<Vec<String>, ConfigError> {
    raw.allowed_redirect_domains
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, domain)| {
            redirect_domain(domain, &format!("{}[{i}]", at("allowed_redirect_domains")))
        })
        .collect()
}

/// Where the browser goes after sign-out.
fn post_logout_redirect(
    raw: &RawOidc,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<String>, ConfigError> {
    Ok(
        match (
            &raw.post_logout_redirect_uri,
            &raw.redirect_after_logout_uri,
        ) {
            (Some(a), Some(b)) if a != b => {
                return Err(ConfigError::new(
                    at("redirect_after_logout_uri"),
                    "conflicts with post_logout_redirect_uri",
                ))
            }
            (Some(a), _) => Some(after_logout(a, &at("post_logout_redirect_uri"))?),
            (None, Some(a)) => Some(after_logout(a, &at("redirect_after_logout_uri"))?),
            (None, None) => None,
        },
    )
}

/// Huawei APIG policy fields that map onto this plugin's behaviour only in
/// their secure setting.
fn check_apig_fields(raw: &RawOidc, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if raw.jwks_enabled == Some(false) || raw.public_key.is_some() {
        return Err(ConfigError::new(
            at(if raw.public_key.is_some() { "public_key" } else { "jwks_enabled" }),
            "ID tokens are verified against the IdP's JWKS (from discovery); a static public_key is not supported",
        ));
    }
    if raw.jwt_cache_enabled == Some(false) {
        return Err(ConfigError::new(
            at("jwt_cache_enabled"),
            "verified tokens are always cached until they expire; set token_cache_size at the top level instead",
        ));
    }
    if let Some(name) = &raw.auth_header_name {
        if !name.eq_ignore_ascii_case("authorization") {
            return Err(ConfigError::new(
                at("auth_header_name"),
                "bearer tokens of an oidc block are read from Authorization; set auth_header_name at the top level for gateway tokens",
            ));
        }
    }
    Ok(())
}
