//! The request facts single sign-on reads, gathered once by the caller.

use crate::canonical::CanonicalPath;
use crate::decision::realm;

/// The request facts SSO needs, read once by the caller.
pub struct SsoRequest<'r> {
    pub method: &'r str,
    /// `:path` as sent, with query: the page to return to after a login,
    /// and where query parameters are read. Never compared: decisions read
    /// `canonical_path`.
    pub path: &'r str,
    /// The canonical path (without query) every path decision reads.
    pub canonical_path: &'r CanonicalPath,
    /// `:authority` as sent (for URLs the browser is sent to).
    pub authority: &'r str,
    /// The canonical host match lists read.
    pub host: &'r str,
    pub scheme: &'r str,
    pub cookie: Option<&'r str>,
    pub accept: Option<&'r str>,
    pub requested_with: Option<&'r str>,
    pub authorization: Option<&'r str>,
}

impl SsoRequest<'_> {
    /// `scheme://host`, escaped and bounded, for a `WWW-Authenticate` challenge.
    pub(super) fn realm(&self) -> String {
        realm(self.scheme, self.authority, "")
    }

    /// A browser navigating (gets a login redirect) rather than an API call
    /// or XHR (gets 401).
    pub fn is_navigation(&self) -> bool {
        matches!(self.method, "GET" | "HEAD")
            && self.requested_with.is_none()
            && self.accept.is_some_and(|a| a.contains("text/html"))
    }
}
