//! Configuration errors: the JSON path of the offending field and why.
//! Secret values never appear in a reason.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending field, e.g. `_rules_[0].allow[1]`.
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// Every error the compiler meets, in the order it meets them: the first is
/// the one the plugin logs (the one it would have stopped at), the CLI
/// prints them all. Each step records its error here and goes on with a
/// stand-in value, so independent mistakes are all found in one run.
#[derive(Debug, Default)]
pub(super) struct Errors {
    list: Vec<ConfigError>,
    /// Consumers that did not compile, as (list path, name): an `allow`
    /// naming one is not a second mistake.
    broken_consumers: Vec<(String, String)>,
    /// Scopes (by prefix) whose `oidc` block did not compile: their `allow`
    /// lists name claim values, not consumers.
    broken_oidc: Vec<String>,
}

impl Errors {
    pub fn push(&mut self, error: ConfigError) {
        self.list.push(error);
    }

    /// The value, or `None` with its error recorded.
    pub fn take<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(error);
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.list
    }

    pub fn broken_consumer(&mut self, list: &str, name: &str) {
        self.broken_consumers
            .push((list.to_string(), name.to_string()));
    }

    pub fn broken_oidc(&mut self, prefix: &str) {
        self.broken_oidc.push(prefix.to_string());
    }

    pub fn is_broken_oidc(&self, prefix: &str) -> bool {
        self.broken_oidc.iter().any(|p| p == prefix)
    }

    pub fn is_broken_consumer(&self, list: &str, name: &str) -> bool {
        self.broken_consumers
            .iter()
            .any(|(l, n)| l == list && n == name)
    }
}
