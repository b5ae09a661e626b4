//! Reading the answer to an HTTP call (a key fetch or a call to the IdP).

use crate::host::{CallBody, Host, LogLevel};
use crate::keys::remote::MAX_DOCUMENT_BYTES;

/// The status and body of the answer to an HTTP call being delivered: one
/// reader, one limit (`MAX_DOCUMENT_BYTES`) for key fetches and single
/// sign-on alike. An oversize answer is logged and handed on with an empty
/// body, so it fails like any unusable answer (never truncated).
pub(super) fn read_call_answer<H: Host>(host: &H, body_size: usize) -> (Option<u32>, Vec<u8>) {
    let status = host.call_response_status();
    let body = CallBody::read(body_size, MAX_DOCUMENT_BYTES, |n| {
        host.call_response_body(n)
    });
    if let CallBody::TooLarge(size) = body {
        host.log(
            LogLevel::Warn,
            &format!(
                "edge-auth: an answer of {size} bytes from an identity provider or key server \
                 is over the {MAX_DOCUMENT_BYTES}-byte limit; refused"
            ),
        );
    }
    (status, body.into_usable())
}
