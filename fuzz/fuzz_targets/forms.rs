#![no_main]
//! Any query string, form body or Authorization header value.
use edge_auth::form;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = form::pick(text, ["grant_type", "client_id", "client_secret", "scope"]);
    let _ = form::first(text, "access_token");
    let _ = form::decode_component(text);
    let _ = form::basic_credentials(text);
    let _ = form::query(text);
    let _ = form::path_only(text);
    let _ = edge_auth::token::bearer::parse_bearer(Some(text));
});
