#![no_main]
//! Any `:path` and `:authority`: the canonical view is idempotent, has no
//! dot segment or doubled slash, and equivalent spellings agree; a canonical
//! host is lower case with no port and no trailing dot.
use edge_auth::canonical::{canonical_host, canonical_path, split_target, CanonicalPath};
use libfuzzer_sys::fuzz_target;

fn check_path(target: &str) {
    let (path, _query) = split_target(target);
    let CanonicalPath::Safe(out) = canonical_path(path) else {
        return;
    };
    // Idempotent.
    assert_eq!(
        canonical_path(&out),
        CanonicalPath::Safe(out.clone()),
        "{path:?}"
    );
    if out == "*" {
        return;
    }
    assert!(out.starts_with('/'), "{path:?} -> {out:?}");
    assert!(!out.contains("//"), "{path:?} -> {out:?}");
    assert!(
        !out.contains("/./") && !out.contains("/../"),
        "{path:?} -> {out:?}"
    );
    assert!(
        !out.ends_with("/.") && !out.ends_with("/.."),
        "{path:?} -> {out:?}"
    );
    assert!(
        out.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'\\' && b != b'#' && b != b'?'),
        "{path:?} -> {out:?}"
    );
    // Equivalent spellings agree: a dot segment, a detour and a doubled
    // slash added in front; the query does not count.
    for respelled in [
        format!("/.{out}"),
        format!("/x/..{out}"),
        format!("/{out}"),
        format!("{out}?{target}"),
    ] {
        let (p, _) = split_target(&respelled);
        assert_eq!(
            canonical_path(p),
            CanonicalPath::Safe(out.clone()),
            "{respelled:?}"
        );
    }
}

fn check_host(authority: &str) {
    let Ok(host) = canonical_host(authority) else {
        return;
    };
    assert_eq!(
        canonical_host(&host).as_deref(),
        Ok(host.as_str()),
        "{authority:?}"
    );
    assert!(
        !host.is_empty() && !host.ends_with('.'),
        "{authority:?} -> {host:?}"
    );
    assert_eq!(host, host.to_ascii_lowercase(), "{authority:?}");
    if !host.starts_with('[') {
        assert!(!host.contains(':'), "{authority:?} -> {host:?}");
    }
    for respelled in [host.to_ascii_uppercase(), format!("{host}:8080")] {
        assert_eq!(
            canonical_host(&respelled).as_deref(),
            Ok(host.as_str()),
            "{respelled:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // One input feeds both: up to the first newline is the authority.
    let (authority, target) = text.split_once('\n').unwrap_or(("", text));
    check_path(target);
    check_host(authority);
    check_host(target);
});
