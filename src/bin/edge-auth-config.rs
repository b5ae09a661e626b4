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
//! error is printed with its path (see `every_error`).
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
                    match edge_auth::config::compile_json(json.as_bytes()) {
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
                        Err(first) => {
                            let (errors, complete) = every_error::collect(first, &json);
                            for e in errors {
                                println!("{file}{label}: {e}");
                            }
                            if !complete {
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

/// The plugin stops at the first error; a person fixing a file wants them
/// all. After each error the offending value is taken out of the config
/// and the rest is checked again, so independent mistakes are all listed.
#[cfg(not(target_arch = "wasm32"))]
mod every_error {
    use edge_auth::config::{compile_json, ConfigError};
    use serde_json::{json, Value};

    /// At most this many errors per configuration.
    const LIMIT: usize = 50;

    /// Every error found, and whether the list is known to be complete.
    pub fn collect(first: ConfigError, json: &str) -> (Vec<ConfigError>, bool) {
        let Ok(mut value) = serde_json::from_str::<Value>(json) else {
            return (vec![first], true);
        };
        // Fields as the pruned config names them (to prune next), and as
        // the user's file does (to report).
        let mut current = vec![first.field.clone()];
        let mut reported = vec![first];
        let mut removals: Vec<(String, usize)> = Vec::new();
        // How many levels above the last error the next removal is.
        let mut level = 0;
        while reported.len() < LIMIT {
            let Some(last) = current.last() else { break };
            let segments = parse_path(last);
            // A value that is still wrong after removal (e.g. now missing)
            // is taken out one level higher, without reporting it twice.
            let Some(path) = segments.len().checked_sub(level).filter(|n| *n > 0) else {
                return (reported, false);
            };
            match prune(&mut value, &segments[..path]) {
                Pruned::Nothing => return (reported, false),
                Pruned::Element(array, index) => removals.push((array, index)),
                Pruned::InPlace => {}
            }
            match compile_json(value.to_string().as_bytes()) {
                Ok(_) => return (reported, true),
                Err(next) if follows_from(&next.field, &current) => level += 1,
                Err(next) => {
                    level = 0;
                    current.push(next.field.clone());
                    let field = original_field(&next.field, &removals);
                    reported.push(ConfigError { field, ..next });
                }
            }
        }
        (reported, false)
    }

    /// Undoes the index shifts of removed array elements, latest first.
    fn original_field(field: &str, removals: &[(String, usize)]) -> String {
        let mut field = field.to_string();
        for (array, removed) in removals.iter().rev() {
            let prefix = format!("{array}[");
            let Some(rest) = field.strip_prefix(prefix.as_str()) else {
                continue;
            };
            let Some((index, tail)) = rest.split_once(']') else {
                continue;
            };
            match index.parse::<usize>() {
                Ok(i) if i >= *removed => field = format!("{prefix}{}]{tail}", i + 1),
                _ => {}
            }
        }
        field
    }

    /// An error on a reported field, inside it, or on what contains it (a
    /// rule left without its only matcher) follows from the removal.
    fn follows_from(field: &str, earlier: &[String]) -> bool {
        earlier
            .iter()
            .any(|e| field == e || within(field, e) || within(e, field))
    }

    fn within(inner: &str, outer: &str) -> bool {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Segment {
        Key(String),
        Index(usize),
    }

    /// `_rules_[0].allow[1]` → `_rules_`, 0, `allow`, 1.
    fn parse_path(field: &str) -> Vec<Segment> {
        let mut out = Vec::new();
        for part in field.split('.').filter(|p| !p.is_empty()) {
            let mut pieces = part.split('[');
            if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
                out.push(Segment::Key(key.to_string()));
            }
            for index in pieces {
                match index.trim_end_matches(']').parse() {
                    Ok(i) => out.push(Segment::Index(i)),
                    Err(_) => return Vec::new(),
                }
            }
        }
        out
    }

    enum Pruned {
        Nothing,
        /// Replaced or removed without moving anything else.
        InPlace,
        /// An element of the array at this path was removed: the later
        /// ones moved down by one.
        Element(String, usize),
    }

    /// Takes the value at `path` out. Consumers and rules are replaced
    /// instead, so indices stay as the user wrote them: a consumer by a
    /// valid stand-in of the same name (the allow lists naming it stay
    /// right), a rule by a disabled one.
    fn prune(root: &mut Value, path: &[Segment]) -> Pruned {
        let Some((last, parents)) = path.split_last() else {
            return Pruned::Nothing;
        };
        let mut node = &mut *root;
        for segment in parents {
            let next = match segment {
                Segment::Key(k) => node.get_mut(k.as_str()),
                Segment::Index(i) => node.get_mut(*i),
            };
            let Some(next) = next else {
                return Pruned::Nothing;
            };
            node = next;
        }
        let array_key = match parents.last() {
            Some(Segment::Key(k)) => k.as_str(),
            _ => "",
        };
        match (node, last) {
            (Value::Array(items), Segment::Index(i)) if *i < items.len() => {
                match array_key {
                    "consumers" => items[*i] = stand_in(items, *i),
                    "_rules_" => {
                        items[*i] = json!({"_match_route_": [STAND_IN], "_disable_": true})
                    }
                    _ => {
                        items.remove(*i);
                        return Pruned::Element(render_path(parents), *i);
                    }
                }
                Pruned::InPlace
            }
            (Value::Object(map), Segment::Key(k)) => match map.remove(k.as_str()) {
                Some(_) => Pruned::InPlace,
                None => Pruned::Nothing,
            },
            _ => Pruned::Nothing,
        }
    }

    const STAND_IN: &str = "edge-auth-config-stand-in";

    fn render_path(segments: &[Segment]) -> String {
        let mut out = String::new();
        for segment in segments {
            match segment {
                Segment::Key(k) if out.is_empty() => out.push_str(k),
                Segment::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// A valid consumer keeping the name and client_id, unless one is the
    /// problem (missing, or already used by an earlier consumer): then a value
    /// nobody uses, so the other consumer's duplicate is still reported.
    fn stand_in(consumers: &[Value], index: usize) -> Value {
        let unique = format!("{STAND_IN}-{index}");
        let keep = |key: &str| -> String {
            let value = consumers.get(index).and_then(|c| c.get(key));
            // The plugin reports a duplicate on the later consumer.
            let shared = consumers.iter().take(index).any(|c| c.get(key) == value);
            match value {
                Some(Value::String(v)) if !v.is_empty() && !shared => v.clone(),
                _ => unique.clone(),
            }
        };
        json!({"name": keep("name"), "client_id": keep("client_id"), "client_secret": STAND_IN})
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn errors(json: Value) -> (Vec<String>, bool) {
            let text = json.to_string();
            let Err(first) = compile_json(text.as_bytes()) else {
                return (vec![], true);
            };
            let plugin_says = first.to_string();
            let (all, complete) = collect(first, &text);
            let all: Vec<String> = all.iter().map(ToString::to_string).collect();
            assert_eq!(
                all.first(),
                Some(&plugin_says),
                "the plugin's error comes first"
            );
            (all, complete)
        }

        #[test]
        fn independent_mistakes_are_all_listed_once() {
            let (all, complete) = errors(json!({
                "consumers": [
                    {"name": "a", "client_id": "x", "client_secret": ""},
                    {"name": "b", "client_id": "y", "client_secret": "s"}
                ],
                "token_ttl": "long",
                "issuer": 7,
                "_rules_": [
                    {"_match_route_": ["r"], "allow": ["a", "ghost"]},
                    {"_match_route_": ["q"], "alow": ["b"]},
                    {"_match_domain_": [], "allow": ["b"]}
                ]
            }));
            assert!(complete, "{all:#?}");
            // "alow" is an unknown key: a warning (an error with --strict).
            assert_eq!(all.len(), 5, "{all:#?}");
            assert!(all.iter().any(|e| e.starts_with("issuer")), "{all:#?}");
            assert!(
                all.iter()
                    .any(|e| e.starts_with("_rules_[2]._match_domain_")),
                "{all:#?}"
            );
            assert!(
                all.iter()
                    .any(|e| e.starts_with("consumers[0].client_secret")),
                "{all:#?}"
            );
            assert!(all.iter().any(|e| e.starts_with("token_ttl")), "{all:#?}");
            assert!(all.iter().any(|e| e.contains("ghost")), "{all:#?}");
        }

        #[test]
        fn a_broken_consumer_does_not_make_its_allow_lists_wrong() {
            let (all, _) = errors(json!({
                "consumers": [{"name": "a", "client_id": "x"}],
                "_rules_": [{"_match_route_": ["r"], "allow": ["a"]}]
            }));
            assert_eq!(all.len(), 1, "{all:#?}");
        }

        #[test]
        fn a_duplicate_behind_a_broken_consumer_is_reported() {
            let (all, complete) = errors(json!({
                "consumers": [
                    {"name": "a", "client_id": "x", "client_secret": ""},
                    {"name": "b", "client_id": "x", "client_secret": "s"}
                ]
            }));
            assert!(complete, "{all:#?}");
            assert_eq!(all.len(), 2, "{all:#?}");
            assert!(all[1].starts_with("consumers[1]"), "{all:#?}");
        }

        #[test]
        fn indices_are_the_ones_in_the_file() {
            let (all, complete) = errors(json!({
                "consumers": [{"name": "a", "client_id": "x", "client_secret": "s"}],
                "_rules_": [
                    {"_match_route_": [""], "allow": ["a"]},
                    {"_match_route_": ["r"], "allow": ["ghost", "a", "phantom"]}
                ]
            }));
            assert!(complete, "{all:#?}");
            assert!(
                all.iter()
                    .any(|e| e.starts_with("_rules_[0]._match_route_")),
                "{all:#?}"
            );
            assert!(
                all.iter().any(|e| e.starts_with("_rules_[1].allow[0]:")),
                "{all:#?}"
            );
            assert!(
                all.iter().any(|e| e.starts_with("_rules_[1].allow[2]:")),
                "{all:#?}"
            );
            assert_eq!(all.len(), 3, "{all:#?}");
        }

        #[test]
        fn paths_parse() {
            assert_eq!(
                parse_path("_rules_[0].allow[1]"),
                vec![
                    Segment::Key("_rules_".into()),
                    Segment::Index(0),
                    Segment::Key("allow".into()),
                    Segment::Index(1)
                ]
            );
            assert_eq!(parse_path("a[x]"), vec![]);
        }
    }
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
