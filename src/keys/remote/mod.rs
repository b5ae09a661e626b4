//! Remote key sets: a JWKS URL or an OpenID discovery document, fetched
//! through an Envoy cluster from the worker's tick, shared across workers
//! through shared data, and swapped in without touching the request path.
//! `source` holds a source's state and shared records, `fetcher` drives the
//! calls, `discovery` reads discovery documents, `idp_backoff` remembers an
//! OpenID provider's token endpoint not answering (single sign-on refreshes).

pub mod discovery;
pub mod fetcher;
pub mod idp_backoff;
pub mod source;

pub use crate::http_url::split_url;
pub use discovery::ProviderMetadata;
pub use fetcher::{
    jwks_fetch_failed, jwks_request, Changes, JwksRequest, KeyFetcher, Outstanding, Stage,
    MAX_DOCUMENT_BYTES,
};
pub use source::{accept_jwks, adopt_published_keys, KeyLocation, RemoteKeySource};
