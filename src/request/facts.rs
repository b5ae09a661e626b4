//! The host facts a request's rule match and checks read: its canonical
//! host, and Envoy's route and cluster names, each fetched once on first use.

use crate::config::{Config, Matcher};
use crate::host::Host;
use crate::rules::Facts;

/// Request attributes fetched from the host on first use, then cached; the
/// host comes from the request's canonical view.
pub(super) struct HostFacts<'h, H: Host> {
    pub(super) host: &'h H,
    host_name: &'h str,
    route: Option<String>,
    cluster: Option<String>,
}

impl<'h, H: Host> HostFacts<'h, H> {
    pub(super) fn new(host: &'h H, host_name: &'h str) -> Self {
        HostFacts {
            host,
            host_name,
            route: None,
            cluster: None,
        }
    }
}

fn property_string<H: Host>(host: &H, names: &[&[&str]]) -> String {
    names
        .iter()
        .find_map(|path| host.property(path))
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}

impl<H: Host> Facts for HostFacts<'_, H> {
    fn canonical_host(&mut self) -> &str {
        self.host_name
    }
    fn route_name(&mut self) -> &str {
        let host = self.host;
        self.route.get_or_insert_with(|| {
            property_string(host, &[&["route_name"], &["xds", "route_name"]])
        })
    }
    fn cluster_name(&mut self) -> &str {
        let host = self.host;
        self.cluster.get_or_insert_with(|| {
            property_string(host, &[&["cluster_name"], &["xds", "cluster_name"]])
        })
    }
}

/// The configured route name of this request: Envoy's `route_name` when a
/// `_match_route_` lists it. Envoy is asked only when some rule matches on
/// route names (and then usually was asked already by the rule match).
pub(super) fn configured_route<H: Host>(
    config: &Config,
    facts: &mut HostFacts<'_, H>,
) -> Option<String> {
    let route_lists = || {
        config
            .rules
            .iter()
            .flat_map(|r| &r.matchers)
            .filter_map(|m| match m {
                Matcher::Route(routes) => Some(routes),
                _ => None,
            })
    };
    route_lists().next()?;
    let route = facts.route_name();
    route_lists()
        .any(|routes| routes.iter().any(|r| r == route))
        .then(|| route.to_string())
}
