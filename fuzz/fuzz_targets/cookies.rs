#![no_main]
//! Any Cookie header and any session bytes. Oracles: seal -> open gives the
//! bytes back (and nothing under another context or after a change), a
//! value split across cookies joins back to itself, and `without` leaves
//! none of the cookies it was asked to remove.
use edge_auth::cookie::jar::{self as cookie, CookieAttributes, SameSite};
use edge_auth::cookie::seal::{SealKey, NONCE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = SealKey::derive(b"fuzz-secret-0123456789abcdef0123456789", "session");

    // seal -> open round trip, for any plaintext.
    let mut nonce = [0u8; NONCE_LEN];
    for (slot, byte) in nonce.iter_mut().zip(data.iter().rev()) {
        *slot = *byte;
    }
    let sealed = key.seal(data, "s", nonce);
    assert_eq!(key.open(&sealed, "s").as_deref(), Some(data), "seal/open");
    assert_eq!(key.open(&sealed, "t"), None, "opened under another context");
    let mut tampered = sealed.clone().into_bytes();
    if let Some(first) = tampered.first_mut() {
        *first = if *first == b'A' { b'B' } else { b'A' };
    }
    let tampered = String::from_utf8(tampered).expect("ascii");
    assert_eq!(key.open(&tampered, "s"), None, "opened a changed value");

    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    // Anything a client sends: no panic.
    if let Some(value) = cookie::read(header, "s") {
        let _ = key.open(&value, "s");
    }
    let _ = key.open(header, "s");

    // split -> join round trip, next to whatever else the header holds.
    let attrs = CookieAttributes {
        domain: None,
        path: "/".into(),
        secure: true,
        same_site: SameSite::Lax,
    };
    if cookie::present(header, "s").is_empty() {
        let big = sealed.repeat(1 + 5000 / sealed.len().max(1));
        for value in [sealed.as_str(), big.as_str()] {
            if let Some(lines) = cookie::write("s", value, &attrs, Some(60), &[]) {
                let ours: Vec<&str> = lines
                    .iter()
                    .map(|l| l.split(';').next().unwrap_or(""))
                    .collect();
                let sent = format!("{}; {header}", ours.join("; "));
                assert_eq!(
                    cookie::read(&sent, "s").as_deref(),
                    Some(value),
                    "split/join"
                );
            }
        }
    }

    // without() removes every cookie it picks.
    let is_ours = |n: &str| n.starts_with('s');
    if let Some(rest) = cookie::without(header, is_ours) {
        assert!(
            cookie::pairs(&rest).all(|(name, _)| !is_ours(name)),
            "left one of ours in {rest:?}"
        );
        assert!(!rest.is_empty());
    }
});
