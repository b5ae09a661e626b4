#![no_main]
//! Any redirect target, against a few request hosts. Oracle: every accepted
//! target, read as a browser reads it (the `url` crate, WHATWG, joined to
//! the request's origin), stays on the request's host or an allowed domain,
//! over http(s), without user info; and what we send resolves to the same
//! place as what we were given.
use edge_auth::oidc::redirect::safe_redirect;
use libfuzzer_sys::fuzz_target;
use url::Url;

const HOSTS: [&str; 3] = ["gw.example.org", "gw.example.org:8443", "127.0.0.1:10000"];

/// The allowed-domain rule, written again here independently of the code
/// under test: `.d` is d and its subdomains, `d` is d only.
fn allowed(host: &str, request_host: &str, domains: &[String]) -> bool {
    host == request_host
        || domains.iter().any(|d| match d.strip_prefix('.') {
            Some(base) => host == base || host.ends_with(d.as_str()),
            None => host == d,
        })
}

fn check(target: &str, request_authority: &str, domains: &[String], sent: &str) {
    assert!(
        !sent.starts_with("//") && !sent.contains('\\'),
        "unsafe target accepted: {target:?} -> {sent:?}"
    );
    for scheme in ["https", "http"] {
        let origin = Url::parse(&format!("{scheme}://{request_authority}/")).expect("origin");
        let request_host = origin.host_str().expect("host").to_string();
        for (what, text) in [("given", target), ("sent", sent)] {
            let url = origin
                .join(text)
                .unwrap_or_else(|e| panic!("accepted {what} {text:?} does not parse: {e}"));
            assert!(
                matches!(url.scheme(), "http" | "https"),
                "{what} {text:?} -> scheme {}",
                url.scheme()
            );
            assert!(
                url.username().is_empty() && url.password().is_none(),
                "{what} {text:?} carries user info"
            );
            let host = url.host_str().unwrap_or("");
            assert!(
                allowed(host, &request_host, domains),
                "{what} {text:?} leaves for {host:?} (request host {request_host:?})"
            );
        }
        let given = origin.join(target).expect("given");
        let sent = origin.join(sent).expect("sent");
        assert_eq!(
            given.as_str(),
            sent.as_str(),
            "sent is not what was checked"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let domains = vec![".example.com".to_string(), "partner.net".to_string()];
    for request_host in HOSTS {
        if let Some(sent) = safe_redirect(target, request_host, &domains) {
            check(target, request_host, &domains, &sent);
        }
    }
});
