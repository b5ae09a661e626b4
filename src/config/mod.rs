//! Configuration: parsed and validated once, in `on_configure`, into the
//! compiled structures the request path uses.

mod compile;
mod raw;

pub use compile::{
    compile, compile_json, parse, AllowList, Config, ConfigError, Consumer, Consumers,
    DomainPattern, Matcher, Rule, Scope, ServicePattern,
};
