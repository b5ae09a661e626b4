#![no_main]
//! Any bytes as the plugin configuration: an error or a config, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edge_auth::config::compile_json(data);
});
