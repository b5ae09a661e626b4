#![no_main]
//! Any query string, form body or Authorization header value. Oracles where
//! the format defines one: encode -> decode gives the text back (component,
//! `name=value` pairs, Basic credentials), and `path_only`/`query` split a
//! path consistently.
use base64::Engine;
use edge_auth::form;
use edge_auth::http_url::{form_encode, form_encode_component};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Anything a client sends: no panic.
    let _ = form::pick(text, ["grant_type", "client_id", "client_secret", "scope"]);
    let _ = form::first(text, "access_token");
    let _ = form::decode_component(text);
    let _ = form::basic_credentials(text);
    let _ = form::query(text);
    let _ = edge_auth::token::bearer::parse_bearer(Some(text));

    // encode -> decode.
    let encoded = form_encode_component(text);
    assert_eq!(
        form::decode_component(&encoded).as_deref(),
        Ok(text),
        "component"
    );
    let body = form_encode(&[("grant_type", "client_credentials"), ("scope", text)]);
    let [grant, scope] = form::pick(&body, ["grant_type", "scope"]).expect("pick");
    assert_eq!(grant.as_deref(), Some("client_credentials"));
    assert_eq!(scope.as_deref(), (!text.is_empty()).then_some(text), "pick");
    assert_eq!(form::first(&body, "scope").as_deref(), Some(text), "first");

    // Basic credentials (RFC 6749 §2.3.1), the text split in two.
    let cut = (0..=text.len() / 2)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let (id, secret) = text.split_at(cut);
    let pair = format!(
        "{}:{}",
        form_encode_component(id),
        form_encode_component(secret)
    );
    let header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    let creds = form::basic_credentials(&header)
        .expect("basic")
        .expect("decodes");
    assert_eq!(
        (creds.client_id.as_str(), creds.client_secret.as_str()),
        (id, secret)
    );

    // path_only / query: the path never keeps a query or fragment, and a
    // path with a query splits around the first `?`.
    let path = form::path_only(text);
    assert!(!path.contains(['?', '#']), "path_only kept {path:?}");
    assert_eq!(form::path_only(path), path, "path_only twice");
    let with_query = format!("/p?{encoded}#frag");
    assert_eq!(form::query(&with_query), Some(encoded.as_str()), "query");
});
