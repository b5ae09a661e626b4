//! edge-auth-config: checks a plugin configuration with the plugin's own
//! parser, before it reaches a gateway.
//!
//!   edge-auth-config FILE...
//!
//! A FILE may be the plugin configuration (JSON or YAML), or a Higress or
//! Istio `WasmPlugin` manifest (YAML, several documents allowed): Higress
//! `defaultConfig` + `matchRules` are turned into `_rules_` the way Higress
//! does; Istio's `pluginConfig` is taken as it is. Exit status 0 when every
//! configuration is valid, 1 otherwise, 2 on usage or read errors.
//! `--print` also prints each configuration as the plugin receives it (JSON,
//! one line each, after its OK line), e.g. to check it against
//! plugin-config-schema.json.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let print = args.iter().any(|a| a == "--print");
    let files: Vec<&String> = args.iter().filter(|a| *a != "--print").collect();
    if files.is_empty() || files.iter().any(|f| *f == "-h" || *f == "--help") {
        eprintln!("usage: edge-auth-config [--print] FILE...  (plugin config JSON/YAML, or a Higress/Istio WasmPlugin)");
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
                    match edge_auth::config::compile_json(json.as_bytes()) {
                        Ok(config) => {
                            println!("{file}{label}: OK");
                            if print {
                                println!("{json}");
                            }
                            for warning in &config.warnings {
                                println!("{file}{label}: warning: {warning}");
                            }
                        }
                        Err(e) => {
                            println!("{file}{label}: {e}");
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
    use serde_json::{json, Map, Value};

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
                Some(spec) => out.push((
                    label("Higress defaultConfig + matchRules"),
                    higress(spec)?.to_string(),
                )),
                None => out.push((String::new(), value.to_string())),
            }
        }
        Ok(out)
    }

    /// Higress turns each matchRule into a `_rules_` entry: its `config`
    /// plus `_match_route_` (ingress), `_match_domain_` (domain) or
    /// `_match_service_` (service).
    fn higress(spec: &Value) -> Result<Value, String> {
        let mut config: Map<String, Value> = match spec.get("defaultConfig") {
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
            let mut entry = match rule.get("config") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            for (key, target) in [
                ("ingress", "_match_route_"),
                ("domain", "_match_domain_"),
                ("service", "_match_service_"),
            ] {
                if let Some(list) = rule.get(key) {
                    entry.insert(target.into(), list.clone());
                }
            }
            if rule.get("configDisable").and_then(Value::as_bool) == Some(true) {
                entry.insert("_disable_".into(), json!(true));
            }
            if entry.keys().all(|k| !k.starts_with("_match_")) {
                return Err(format!(
                    "spec.matchRules[{j}]: needs ingress, domain or service"
                ));
            }
            rules.push(Value::Object(entry));
        }
        if !rules.is_empty() {
            config.insert("_rules_".into(), Value::Array(rules));
        }
        Ok(Value::Object(config))
    }
}
