//! The request facts single sign-on reads, copied out of the host once.

use crate::canonical::RequestView;
use crate::host::Host;
use crate::oidc::flow::SsoRequest;

/// Owned copies of the request headers single sign-on looks at, and the
/// request's canonical view.
pub struct SsoFacts {
    method: String,
    authority: String,
    scheme: String,
    cookie: Option<String>,
    accept: Option<String>,
    requested_with: Option<String>,
    authorization: Option<String>,
    view: RequestView,
}

impl SsoFacts {
    /// Reads the headers and computes the canonical view (a request whose
    /// `:authority` does not parse gets a view that matches nothing and needs
    /// authentication everywhere; on the request path it was answered 400
    /// before this point).
    pub fn read<H: Host>(host: &H) -> Self {
        let path = host.request_header(":path").unwrap_or_default();
        let authority = host.request_header(":authority").unwrap_or_default();
        let view = RequestView::new(&path, &authority).unwrap_or_else(|_| RequestView::unusable());
        Self::with_view(host, view)
    }

    /// Reads the headers; the view was computed already.
    pub fn with_view<H: Host>(host: &H, view: RequestView) -> Self {
        SsoFacts {
            method: host.request_header(":method").unwrap_or_default(),
            authority: host.request_header(":authority").unwrap_or_default(),
            scheme: host
                .request_header(":scheme")
                .unwrap_or_else(|| "http".into()),
            cookie: host.request_header("cookie"),
            accept: host.request_header("accept"),
            requested_with: host.request_header("x-requested-with"),
            authorization: host.request_header("authorization"),
            view,
        }
    }

    pub fn request<'a>(&'a self, path: &'a str) -> SsoRequest<'a> {
        SsoRequest {
            method: &self.method,
            path,
            canonical_path: &self.view.path,
            authority: &self.authority,
            host: &self.view.host,
            scheme: &self.scheme,
            cookie: self.cookie.as_deref(),
            accept: self.accept.as_deref(),
            requested_with: self.requested_with.as_deref(),
            authorization: self.authorization.as_deref(),
        }
    }
}
