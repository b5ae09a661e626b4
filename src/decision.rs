//! What the core decides for a request, and how a decision is carried out
//! through the host. The shell only calls [`apply`].

use crate::host::{Host, LogLevel};

/// The header the backend learns the caller from (MSE/Higress convention).
pub const CONSUMER_HEADER: &str = "x-mse-consumer";

/// A local answer; the request never reaches the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Let the request through, after these header edits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forward<'c> {
    /// Announced upstream as `X-Mse-Consumer`; `None` on open routes.
    pub consumer: Option<&'c str>,
    /// The header that carried the token, removed when `keep_token` is false.
    pub strip_header: Option<&'c str>,
}

#[derive(Debug)]
pub enum Decision<'c> {
    Forward(Forward<'c>),
    Reply(Reply),
    /// A token request whose parameters are in the body: wait for it.
    ReadBody(crate::token_endpoint::PendingTokenRequest),
}

/// Whether Envoy should go on with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Carries out a forward or a reply. A client-sent `X-Mse-Consumer` is
/// removed before anything else, so it can never reach the backend; if Envoy
/// refuses that edit the request is stopped rather than forwarded.
pub fn apply<H: Host>(host: &mut H, decision: Decision<'_>) -> Flow {
    match decision {
        Decision::Forward(forward) => {
            let edits = host
                .remove_request_header(CONSUMER_HEADER)
                .and_then(|()| match forward.strip_header {
                    Some(name) => host.remove_request_header(name),
                    None => Ok(()),
                })
                .and_then(|()| match forward.consumer {
                    Some(name) => host.set_request_header(CONSUMER_HEADER, name),
                    None => Ok(()),
                });
            match edits {
                Ok(()) => Flow::Continue,
                Err(e) => {
                    host.log(
                        LogLevel::Error,
                        &format!("edge-auth: header edit failed ({}); request refused", e.0),
                    );
                    send(host, &server_error())
                }
            }
        }
        Decision::Reply(reply) => send(host, &reply),
        // The shell keeps the pending request and waits for the body; the
        // request must not move on meanwhile.
        Decision::ReadBody(_) => Flow::Stop,
    }
}

fn send<H: Host>(host: &mut H, reply: &Reply) -> Flow {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    if let Err(e) = host.send_reply(reply.status, &headers, reply.body.as_bytes()) {
        host.log(
            LogLevel::Error,
            &format!("edge-auth: local reply failed ({})", e.0),
        );
    }
    Flow::Stop
}

pub fn server_error() -> Reply {
    Reply {
        status: 500,
        headers: vec![("content-type", "text/plain".into())],
        body: "Internal Server Error.".into(),
    }
}
