#![no_main]
//! Any Cookie header: joining split parts and opening sealed values.
use edge_auth::session::cookie;
use edge_auth::session::seal::SealKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let key = SealKey::derive(b"fuzz-secret-0123456789abcdef0123456789", "session");
    if let Some(value) = cookie::read(header, "s") {
        let _ = key.open(&value, "s");
    }
    let _ = key.open(header, "s");
    let _ = cookie::present(header, "s");
    let _ = cookie::without(header, |n| n.starts_with('s'));
});
