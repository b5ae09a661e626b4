//! Configuration: parsed and validated once, in `on_configure`, into the
//! compiled structures the request path uses.

mod claim_headers;
mod compile;
mod consumer;
pub mod oidc;
mod raw;

pub use compile::{
    compile, compile_json, parse, AllowList, Config, ConfigError, DomainPattern, Matcher,
    OidcScope, Rule, Scope, ServicePattern, DEFAULT_CALL_TIMEOUT_MS,
};
pub use consumer::{ClaimHeader, Consumer, Consumers, JwtConsumer, KeySource, TokenLocation};
