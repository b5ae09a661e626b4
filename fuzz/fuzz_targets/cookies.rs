#![no_main]
//! Any Cookie header and any session bytes. Oracles: seal -> open gives the
//! bytes back (and nothing under another context or after a change), a
//! value split across cookies joins back to itself, and `without_family`
//! takes out every cookie of the family and keeps the others byte for
//! byte, in order (any bytes, not only UTF-8).
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

    // without_family(): the family's cookies out, the others kept as sent.
    let pieces = |bytes: &[u8]| -> Vec<Vec<u8>> {
        bytes
            .split(|b| *b == b';')
            .map(|p| p.trim_ascii().to_vec())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let in_family = |piece: &[u8]| {
        let name = piece.split(|b| *b == b'=').next().unwrap_or(piece);
        std::str::from_utf8(name.trim_ascii()).is_ok_and(|n| cookie::in_family("s", n))
    };
    let sent = pieces(data);
    let others: Vec<Vec<u8>> = sent.iter().filter(|p| !in_family(p)).cloned().collect();
    match cookie::without_family(&[data.to_vec()], "s") {
        None => assert_eq!(others.len(), sent.len(), "missed a cookie of the family"),
        Some(rest) => {
            assert!(
                others.len() < sent.len(),
                "took out a cookie not of the family"
            );
            assert_eq!(pieces(&rest), others, "the others, byte for byte, in order");
        }
    }

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
});
