//! Configuration: parsed and validated once, in `on_configure`, into the
//! compiled structures the request path uses.

mod compile;
mod consumer;
pub mod oidc;
mod raw;

pub use compile::{
    compile, compile_json, parse, DEFAULT_CALL_TIMEOUT_MS, AllowList, Config, ConfigError, DomainPattern, Matcher, Rule,
    OidcScope, Scope, ServicePattern,
};
pub use consumer::{ClaimHeader, Consumer, Consumers, JwtConsumer, KeySource, TokenLocation};
