//! Native tests of whole request flows through the core with a fake host.

mod config_errors;
mod flows;
mod jose;
mod sso;
mod sso_config;
mod third_party;
mod verification;

use crate::config::{compile_json, Config};

pub const SECRET1: &str = "secret-one-0123456789abcdefghijklmnop";
pub const SECRET2: &str = "secret-two-0123456789abcdefghijklmnop";
pub const NOW: u64 = 1_700_000_000;

pub fn consumers_json() -> String {
    format!(
        r#""consumers":[
            {{"name":"consumer1","client_id":"id1","client_secret":"{SECRET1}"}},
            {{"name":"consumer2","client_id":"id2","client_secret":"{SECRET2}"}}]"#
    )
}

/// A config with the two test consumers plus `extra` top-level keys.
pub fn config(extra: &str) -> Config {
    let json = format!("{{{}{extra}}}", consumers_json());
    compile_json(json.as_bytes()).unwrap()
}
