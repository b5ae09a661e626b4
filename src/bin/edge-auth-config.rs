//! edge-auth-config: checks a plugin configuration with the plugin's own
//! parser, before it reaches a gateway.
//!
//!   edge-auth-config [--print] [--strict] FILE...
//!
//! A FILE may be the plugin configuration (JSON or YAML), or a Higress or
//! Istio `WasmPlugin` manifest (YAML, several documents allowed): Higress
//! `defaultConfig` + `matchRules` are turned into `_rules_` the way Higress
//! does; Istio's `pluginConfig` is taken as it is. Exit status 0 when every
//! configuration is valid, 1 otherwise, 2 on usage or read errors. Every
//! error is printed with its path (the compiler collects them all, see
//! `config::compile_json_all`).
//! `--print` also prints each configuration as the plugin receives it (JSON,
//! one line each, after its OK line), e.g. to check it against
//! plugin-config-schema.json. The plugin warns about keys it does not know
//! and ignores them; `--strict` makes them errors here.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let print = args.iter().any(|a| a == "--print");
    let strict = args.iter().any(|a| a == "--strict");
    let files: Vec<&String> = args
        .iter()
        .filter(|a| *a != "--print" && *a != "--strict")
        .collect();
    if files.is_empty() || files.iter().any(|f| *f == "-h" || *f == "--help") {
        eprintln!("usage: edge-auth-config [--print] [--strict] FILE...  (plugin config JSON/YAML, or a Higress/Istio WasmPlugin)");
        std::process::exit(2);
    }
    let mut failed = false;
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{file}: cannot read: {e}");
                std::process::exit(2);
            }
        };
        match check::configs_in(&text) {
            Err(e) => {
                println!("{file}: {e}");
                failed = true;
            }
            Ok(configs) => {
                for (label, json) in configs {
                    match edge_auth::config::compile_json_all(json.as_bytes()) {
                        Ok(config) if strict && !config.unknown_keys.is_empty() => {
                            for path in &config.unknown_keys {
                                println!("{file}{label}: {path}: unknown key (--strict)");
                            }
                            failed = true;
                        }
                        Ok(config) => {
                            println!("{file}{label}: OK");
                            if print {
                                println!("{json}");
                            }
                            for warning in &config.warnings {
                                println!("{file}{label}: warning: {warning}");
                            }
                        }
                        Err(all) => {
                            for e in &all.errors {
                                println!("{file}{label}: {e}");
                            }
                            if !all.complete {
                                println!(
                                    "{file}{label}: (more errors may follow once these are fixed)"
                                );
                            }
                            failed = true;
                        }
                    }
                }
            }
        }
    }
    std::process::exit(i32::from(failed));
}

#[cfg(not(target_arch = "wasm32"))]
mod check {
    use serde::Deserialize;
    use serde_json::{Map, Value};

    /// The plugin configurations a file holds, each with a label saying
    /// where it came from (empty for a bare configuration).
    pub fn configs_in(text: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(document).map_err(|e| format!("not YAML/JSON: {e}"))?;
            if value.is_null() {
                continue;
            }
            let label = |kind: &str| format!(" (document {}, {kind})", i + 1);
            match value.get("spec") {
                Some(spec) if spec.get("pluginConfig").is_some() => {
                    let config = spec.get("pluginConfig").cloned().unwrap_or_default();
                    out.push((label("Istio pluginConfig"), config.to_string()));
                }
                Some(spec) => match higress(spec)? {
                    Some(config) => out.push((
                        label("Higress defaultConfig + matchRules"),
                        config.to_string(),
                    )),
                    // Nothing reaches a gateway: nothing to check.
                    None => println!(
                        "{}: the plugin is not applied (defaultConfigDisable and no match rule)",
                        label("Higress").trim_start()
                    ),
                },
                None => out.push((String::new(), value.to_string())),
            }
        }
        Ok(out)
    }

    /// What the Higress controller (`pkg/ingress/config/ingress_config.go`)
    /// sends the plugin: `defaultConfig` unless `defaultConfigDisable`; each
    /// matchRule becomes a `_rules_` entry, its `config` plus every non-empty
    /// selector (`ingress` -> `_match_route_`, `service` -> `_match_service_`,
    /// `domain` -> `_match_domain_`, several in one rule when it names
    /// several); a rule with `configDisable: true` is dropped; a rule with no
    /// selector is an error. `None`: the plugin is not applied at all
    /// (`defaultConfigDisable` and no rule left).
    pub fn higress(spec: &Value) -> Result<Option<Value>, String> {
        let default_disabled =
            spec.get("defaultConfigDisable").and_then(Value::as_bool) == Some(true);
        let mut config: Map<String, Value> = match spec.get("defaultConfig") {
            _ if default_disabled => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err("spec.defaultConfig must be a mapping".into()),
        };
        let mut rules = Vec::new();
        for (j, rule) in spec
            .get("matchRules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if rule.get("configDisable").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let mut entry = match rule.get("config") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            let mut selectors = 0;
            for (key, target) in [
                ("ingress", "_match_route_"),
                ("service", "_match_service_"),
                ("domain", "_match_domain_"),
            ] {
                match rule.get(key).and_then(Value::as_array) {
                    Some(list) if !list.is_empty() => {
                        entry.insert(target.into(), Value::Array(list.clone()));
                        selectors += 1;
                    }
                    _ => {}
                }
            }
            if selectors == 0 {
                return Err(format!(
                    "spec.matchRules[{j}]: invalid match rule has no match condition (ingress, domain or service)"
                ));
            }
            rules.push(Value::Object(entry));
        }
        if rules.is_empty() && default_disabled {
            return Ok(None);
        }
        if !rules.is_empty() {
            config.insert("_rules_".into(), Value::Array(rules));
        }
        Ok(Some(Value::Object(config)))
    }
}
