//! The audit trail: one record per request saying what the plugin decided and
//! about whom, written once (by `stream`, when a decision is carried out) as
//! Envoy filter state for the access log, plus the per-route and
//! per-consumer counter. Features only say what they decided ([`Verdict`] on
//! a reply, the identity on a forward); this module turns that into the
//! record, so its format lives in one place.
//!
//! The record is one filter-state value, `wasm.edge_auth` in Envoy
//! (`%FILTER_STATE(wasm.edge_auth:PLAIN)%`), of space-separated `key=value`
//! pairs in a fixed order; absent values are `-`. One host call per request.

use crate::host::Host;

/// The filter-state name (Envoy prefixes `wasm.`).
pub const FILTER_STATE_NAME: &str = "edge_auth";

/// Longest value written for one field; longer values are cut (a `sub` or
/// `jti` is the token issuer's choice).
pub const MAX_FIELD_BYTES: usize = 128;

/// The label for a route or consumer that is not named in the configuration
/// (bounds the metric cardinality).
pub const OTHER: &str = "-";

/// Which kind of consumer a request was identified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerKind {
    /// A token this gateway issued (a `consumers` entry with a secret).
    Gateway,
    /// A third-party JWT (a consumer with an `issuer` and keys).
    Jwt,
    /// A single sign-on session or IdP bearer token.
    Oidc,
}

impl ConsumerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerKind::Gateway => "gateway",
            ConsumerKind::Jwt => "jwt",
            ConsumerKind::Oidc => "oidc",
        }
    }
}

/// What a local reply stands for: a decision (`denied`, `token_issued`,
/// `sso_login`, ...) and, for refusals, the stable reason code (the codes
/// of `token::TokenError`, `token_endpoint::TokenError` and the request
/// layer's refusals). Both are fixed identifiers, never request text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub decision: &'static str,
    /// Empty when the decision needs no reason.
    pub reason: &'static str,
}

impl Verdict {
    pub const fn new(decision: &'static str, reason: &'static str) -> Self {
        Verdict { decision, reason }
    }

    /// Envoy's response code details: `edge_auth_<decision>{<reason>}`
    /// (Envoy's own style, as `jwt_authn_access_denied{...}`), or
    /// `edge_auth_<decision>` without a reason. No whitespace, as Envoy
    /// requires.
    pub fn details(&self) -> String {
        if self.reason.is_empty() {
            format!("edge_auth_{}", self.decision)
        } else {
            format!("edge_auth_{}{{{}}}", self.decision, self.reason)
        }
    }
}

/// Forwarded with an identity.
pub const ALLOWED: Verdict = Verdict::new("allowed", "");
/// Forwarded without one: no authentication applies (open or disabled).
pub const OPEN: Verdict = Verdict::new("open", "");
/// The plugin failed (no configuration, a host call refused).
pub const fn error(reason: &'static str) -> Verdict {
    Verdict::new("error", reason)
}
pub const fn denied(reason: &'static str) -> Verdict {
    Verdict::new("denied", reason)
}

/// Where a request fell in the configuration: the matched `_rules_` entry
/// (its index) and the route name when the configuration names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub rule: Option<usize>,
    /// Envoy's `route_name`, only when a rule's `_match_route_` lists it.
    pub route: Option<String>,
}

/// Who a decision was about. Consumer names of gateway and JWT consumers
/// come from the configuration; `sub`, `jti` and an SSO consumer come from a
/// verified token.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub consumer: Option<&'a str>,
    pub kind: Option<ConsumerKind>,
    pub sub: Option<&'a str>,
    pub jti: Option<&'a str>,
}

/// An identity a local reply is about (the consumer a token was issued
/// to), owned because it outlives the deciding function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub consumer: String,
    pub kind: ConsumerKind,
    pub sub: Option<String>,
    pub jti: Option<String>,
}

impl Who {
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            consumer: Some(&self.consumer),
            kind: Some(self.kind),
            sub: self.sub.as_deref(),
            jti: self.jti.as_deref(),
        }
    }
}

/// Writes the record and counts the decision. Failures are ignored: the
/// audit trail must never change a request's fate.
pub fn record<H: Host>(
    host: &mut H,
    verdict: Verdict,
    placement: &Placement,
    subject: &Subject<'_>,
) {
    let mut line = String::with_capacity(160);
    let rule = placement.rule.map(|i| i.to_string());
    let fields = [
        ("decision", Some(verdict.decision)),
        ("reason", Some(verdict.reason).filter(|r| !r.is_empty())),
        ("rule", rule.as_deref()),
        ("consumer", subject.consumer),
        ("kind", subject.kind.map(ConsumerKind::as_str)),
        ("sub", subject.sub),
        ("jti", subject.jti),
    ];
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(key);
        line.push('=');
        push_field(&mut line, value.unwrap_or(OTHER));
    }
    let _ = host.set_filter_state(FILTER_STATE_NAME, &line);
    host.count_metric(&metric_name(verdict, placement, subject));
}

/// `route.<route>.consumer.<consumer>.metric.edge_auth_<decision>`, the
/// Higress custom-metric style (as `ai-statistics`'s
/// `route.<r>.upstream.<c>.model.<m>.consumer.<c>.metric.<name>`). Only
/// configured names appear: a route not listed in `_match_route_` and a
/// consumer that is not a configured gateway or JWT consumer are `-`.
pub fn metric_name(verdict: Verdict, placement: &Placement, subject: &Subject<'_>) -> String {
    let route = placement.route.as_deref().unwrap_or(OTHER);
    let consumer = match subject.kind {
        Some(ConsumerKind::Gateway | ConsumerKind::Jwt) => subject.consumer.unwrap_or(OTHER),
        // An SSO consumer is a claim value: unbounded, so not a label.
        Some(ConsumerKind::Oidc) | None => OTHER,
    };
    let mut name = String::with_capacity(64);
    name.push_str("route.");
    push_label(&mut name, route);
    name.push_str(".consumer.");
    push_label(&mut name, consumer);
    name.push_str(".metric.edge_auth_");
    name.push_str(verdict.decision);
    name
}

/// A value as it may appear in the record: printable ASCII except space,
/// `"` and `\` (an access log line cannot be split or forged by a `sub`),
/// other characters as `?`, cut at [`MAX_FIELD_BYTES`]. Empty becomes `-`.
fn push_field(out: &mut String, value: &str) {
    if value.is_empty() {
        out.push_str(OTHER);
        return;
    }
    let kept = |c: char| c.is_ascii_graphic() && c != '"' && c != '\\';
    push_mapped(out, value, kept, '?');
}

/// `value`'s first [`MAX_FIELD_BYTES`] characters, each kept or replaced by
/// `other`. Written per request, so a value that needs no replacing (the
/// usual consumer, `sub`, `jti`) is copied whole rather than by character.
fn push_mapped(out: &mut String, value: &str, kept: impl Fn(char) -> bool, other: char) {
    let head = value.get(..value.len().min(MAX_FIELD_BYTES));
    if let Some(head) = head.filter(|h| h.bytes().all(|b| kept(char::from(b)))) {
        // Every byte is a kept ASCII character: bytes and characters agree.
        out.push_str(head);
        return;
    }
    for c in value.chars().take(MAX_FIELD_BYTES) {
        out.push(if kept(c) { c } else { other });
    }
}

/// A metric label: `.` separates Envoy's stat name segments, so only
/// letters, digits, `_` and `-` are kept (others become `_`).
fn push_label(out: &mut String, value: &str) {
    let kept = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    push_mapped(out, value, kept, '_');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_host::FakeHost;

    #[test]
    fn details_have_no_whitespace_and_name_the_reason() {
        assert_eq!(
            denied("bad_signature").details(),
            "edge_auth_denied{bad_signature}"
        );
        assert_eq!(ALLOWED.details(), "edge_auth_allowed");
    }

    #[test]
    fn the_record_has_every_field_in_order_and_token_values_cannot_forge_a_line() {
        let mut host = FakeHost::new(0);
        let placement = Placement {
            rule: Some(2),
            route: Some("api".into()),
        };
        let subject = Subject {
            consumer: Some("alice"),
            kind: Some(ConsumerKind::Jwt),
            sub: Some("a b\n\"x\"\\"),
            jti: Some(&"j".repeat(300)),
        };
        record(&mut host, ALLOWED, &placement, &subject);
        let line = host
            .filter_state
            .get("edge_auth")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            line,
            format!(
                "decision=allowed reason=- rule=2 consumer=alice kind=jwt sub=a?b??x?? jti={}",
                "j".repeat(MAX_FIELD_BYTES)
            )
        );
        assert_eq!(
            host.counter_exact("route.api.consumer.alice.metric.edge_auth_allowed"),
            1
        );
    }

    /// The whole-copy shortcut writes what the character walk writes: at
    /// the cut, across it, with a character to replace before or after it.
    #[test]
    fn fields_and_labels_read_the_same_with_or_without_the_shortcut() {
        let walk = |value: &str, kept: &dyn Fn(char) -> bool, other: char| -> String {
            value
                .chars()
                .take(MAX_FIELD_BYTES)
                .map(|c| if kept(c) { c } else { other })
                .collect()
        };
        let field = |c: char| c.is_ascii_graphic() && c != '"' && c != '\\';
        let label = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let j = |n: usize| "j".repeat(n);
        for value in [
            "alice".to_string(),
            j(MAX_FIELD_BYTES),
            j(MAX_FIELD_BYTES + 5),
            format!("{}é", j(MAX_FIELD_BYTES - 1)),
            format!("{}é", j(MAX_FIELD_BYTES)),
            format!("é{}", j(MAX_FIELD_BYTES)),
            format!("{}\"x", j(MAX_FIELD_BYTES - 1)),
            "a.b c".to_string(),
            "中文".to_string(),
        ] {
            let mut out = String::new();
            push_field(&mut out, &value);
            assert_eq!(out, walk(&value, &field, '?'), "field {value:?}");
            let mut out = String::new();
            push_label(&mut out, &value);
            assert_eq!(out, walk(&value, &label, '_'), "label {value:?}");
        }
    }

    #[test]
    fn metric_labels_are_bounded_by_the_configuration() {
        let sso = Subject {
            consumer: Some("someone@example.org"),
            kind: Some(ConsumerKind::Oidc),
            ..Subject::default()
        };
        assert_eq!(
            metric_name(ALLOWED, &Placement::default(), &sso),
            "route.-.consumer.-.metric.edge_auth_allowed"
        );
        let dotted = Subject {
            consumer: Some("a.b"),
            kind: Some(ConsumerKind::Gateway),
            ..Subject::default()
        };
        assert_eq!(
            metric_name(denied("x"), &Placement::default(), &dotted),
            "route.-.consumer.a_b.metric.edge_auth_denied"
        );
    }
}
