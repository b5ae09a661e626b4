#![no_main]
//! Any bytes as the plugin configuration: an error or a config, never a
//! panic. Oracles: compiling is deterministic (the same bytes give the same
//! error, or configs that agree), and no accepted config writes a claim
//! into a reserved header or names an SSO URL a browser would read
//! differently.
use edge_auth::config::{compile_json, Config};
use libfuzzer_sys::fuzz_target;

/// Written again here, independently of config/claim_headers.rs.
const NEVER_FROM_A_CLAIM: [&str; 6] = [
    "authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
];

fn summary(cfg: &Config) -> String {
    let mut ids: Vec<&str> = cfg.remote_sources.iter().map(|s| s.id.as_str()).collect();
    ids.sort_unstable();
    format!(
        "{:?} {:?} {} {:?} {} {} {:?} {}",
        cfg.identity_headers,
        cfg.warnings,
        cfg.rules.len(),
        cfg.global_auth,
        cfg.max_token_bytes,
        cfg.token_cache_size,
        ids,
        cfg.global.auth_header,
    )
}

fn check_accepted(cfg: &Config) {
    let scopes = std::iter::once(&cfg.global).chain(cfg.rules.iter().map(|r| &r.scope));
    for scope in scopes.clone() {
        let from_consumers = scope
            .consumers
            .jwt
            .iter()
            .flat_map(|c| &c.claims_to_headers);
        let from_sso = scope.oidc.iter().flat_map(|o| &o.config.claims_to_headers);
        for claim in from_consumers.chain(from_sso) {
            let folded = claim.header.replace('_', "-");
            assert_ne!(folded, "x-mse-consumer", "claim into {}", claim.header);
            assert_ne!(
                folded,
                scope.auth_header.replace('_', "-"),
                "claim into {}",
                claim.header
            );
            assert!(
                !NEVER_FROM_A_CLAIM.contains(&folded.as_str()),
                "claim into {}",
                claim.header
            );
            assert!(
                !folded.starts_with(':') && !folded.starts_with("x-envoy-"),
                "claim into {}",
                claim.header
            );
        }
    }
    let scopes = std::iter::once(&cfg.global).chain(cfg.rules.iter().map(|r| &r.scope));
    for scope in scopes {
        let Some(sso) = scope.oidc.as_ref() else {
            continue;
        };
        let oidc = &sso.config;
        let urls = [
            oidc.end_session_endpoint.as_deref(),
            oidc.post_logout_redirect_uri
                .as_deref()
                .filter(|u| !u.starts_with('/')),
        ];
        for url in urls.into_iter().flatten() {
            let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url:?}: {e}"));
            assert!(matches!(parsed.scheme(), "http" | "https"), "{url:?}");
            assert!(
                parsed.username().is_empty() && parsed.password().is_none(),
                "{url:?}"
            );
        }
        assert!(!oidc.discovery_authority.is_empty() || oidc.cluster.starts_with("outbound|"));
        assert!(
            oidc.discovery_path.starts_with('/'),
            "{:?}",
            oidc.discovery_path
        );
        for domain in &oidc.allowed_redirect_domains {
            assert!(!domain.contains(['/', ':', '@', ' ']), "{domain:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let first = compile_json(data);
    let second = compile_json(data);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(summary(a), summary(b), "two compiles disagree");
            check_accepted(a);
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "two compiles disagree"),
        _ => panic!("one compile failed, the other did not"),
    }
});
