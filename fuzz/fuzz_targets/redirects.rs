#![no_main]
//! Any redirect target: accepted ones must be same-host paths or allowed
//! hosts, never protocol-relative.
use edge_auth::oidc::redirect::safe_redirect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let allowed = vec![".example.com".to_string()];
    if let Some(ok) = safe_redirect(target, "gw.example.org", &allowed) {
        assert!(
            !ok.starts_with("//") && !ok.contains('\\'),
            "unsafe target accepted: {ok:?}"
        );
        assert!(
            ok.starts_with('/') || ok.starts_with("http://") || ok.starts_with("https://"),
            "odd target accepted: {ok:?}"
        );
    }
});
