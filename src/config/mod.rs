//! Configuration: parsed and validated once, in `on_configure`, into the
//! compiled structures the request path uses. `compile` orchestrates: the
//! raw (serde) types are in `raw`, errors in `error`, the compiled model in
//! `model` (and `oidc`, `consumer`), patterns and names in `patterns`.

mod check;
mod claim_headers;
mod compile;
mod consumer;
mod error;
mod higress_flat;
mod jwks;
mod model;
pub mod oidc;
mod oidc_compile;
mod oidc_cookies;
mod oidc_match;
mod patterns;
mod raw;
mod rule;
mod scope;

pub use check::{compile_json_all, AllErrors};
pub use compile::{compile, compile_all, compile_json, parse};
pub use consumer::{ClaimHeader, Consumer, Consumers, JwtConsumer, KeySource, TokenLocation};
pub use error::ConfigError;
pub use model::{AllowList, Config, Matcher, OidcScope, Rule, Scope, DEFAULT_CALL_TIMEOUT_MS};
pub use patterns::{DomainPattern, ServicePattern};
