"""The real IdP (``e2e/idp``, oidc-provider) behind a :class:`FaultProxy`,
for single sign-on tests that need what the IdP will not do on demand: hold
its token answers while the gateway's call is out, or pad them past the
answer size limit.

The browser talks to the IdP directly (its login and consent pages); the
gateway's back channel (cluster ``idp``: discovery, keys, the token
endpoint) goes through the proxy, so every answer the gateway reads is the
IdP's own, delayed or lengthened by the test.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

import harness
from fault_proxy import FaultProxy
from idp_control import APP1, Idp
from sso_browser import Browser

CALLBACK_PATH = "/oauth2/callback"  # the plugin's default redirect_url


class ProxiedIdp:
    """``with ProxiedIdp(name, gateway_port) as idp:`` a started IdP that
    accepts the gateway's callback on ``gateway_port``, and ``idp.proxy`` in
    front of it. ``access_token_ttl`` is the IdP's access-token lifetime
    (seconds), which is when the gateway refreshes a session."""

    def __init__(self, name: str, gateway_port: int, access_token_ttl: int | None = None) -> None:
        self.gateway_port = gateway_port
        self.callback = f"http://{harness.LOCALHOST}:{gateway_port}{CALLBACK_PATH}"
        self.idp = Idp(name=name, redirect_uris=[self.callback], access_token_ttl=access_token_ttl)
        self.proxy: FaultProxy | None = None
        self.token_path = ""

    @property
    def issuer(self) -> str:
        return self.idp.issuer

    def token_requests(self) -> int:
        """Token-endpoint calls the gateway made (code exchanges, refreshes)."""
        assert self.proxy is not None
        return self.proxy.seen(self.token_path)

    def hold_token_answers(self) -> None:
        """The IdP's token answers wait in the proxy until :meth:`release`."""
        assert self.proxy is not None
        self.proxy.hold(self.token_path)

    def token_answer_held(self, timeout: float) -> bool:
        assert self.proxy is not None
        return self.proxy.wait_held(self.token_path, timeout)

    def release(self) -> None:
        assert self.proxy is not None
        self.proxy.release(self.token_path)

    def pad_token_answers(self, extra_bytes: int) -> None:
        """Append ``extra_bytes`` spaces to the IdP's token answers (0: none)."""
        assert self.proxy is not None
        self.proxy.pad(self.token_path, extra_bytes)

    def __enter__(self) -> "ProxiedIdp":
        self.idp.start()
        try:
            self.token_path = urlsplit(self.idp.discovery()["token_endpoint"]).path
            self.proxy = FaultProxy(self.idp.port).__enter__()
        except BaseException:
            self.idp.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proxy is not None:
            self.proxy.release(self.token_path)
            self.proxy.__exit__(*exc)
        self.idp.stop()


def sso_gateway(idp: ProxiedIdp, upstream_port: int, wasm, name: str, cookie_name: str,
                cookie_secret: str, envoy_args: tuple[str, ...] = (), **oidc: object) -> harness.Envoy:
    """A started Envoy on ``idp.gateway_port`` whose edge-auth signs browsers
    in at ``idp`` (cluster ``idp`` through the proxy), with ``oidc`` added
    to the SSO settings (``envoy_args``: more Envoy command-line arguments)."""
    listener, admin = idp.gateway_port, harness.free_port()
    config = {"oidc": {
        "issuer": idp.issuer,
        "client_id": APP1.client_id,
        "client_secret": APP1.client_secret,
        "cluster": "idp",
        "cookie_secret": cookie_secret,
        "cookie_secure": False,
        "cookie_name": cookie_name,
        # offline_access: the IdP issues refresh tokens (sessions refresh).
        "scope": "openid email profile offline_access",
        **oidc,
    }}
    bootstrap = harness.build_bootstrap(listener_port=listener, admin_port=admin, upstream_port=upstream_port,
                                        http_filters=harness.gateway_filters(config, wasm))
    assert idp.proxy is not None
    bootstrap["static_resources"]["clusters"].append(harness.static_cluster("idp", idp.proxy.port))
    gw = harness.Envoy(bootstrap, listener, admin, name=name, extra_args=envoy_args)
    gw.start()
    return gw


def sso_site_fixtures(name: str, cookie_name: str, cookie_secret: str, access_token_ttl: int | None = None,
                      **oidc: object):
    """A test module's two fixtures, ``idp`` (a :class:`ProxiedIdp`) and
    ``site`` (an :func:`sso_gateway` signing browsers in at it, upstream
    the ``echo`` server): ``idp, site = sso_site_fixtures(...)``."""

    @pytest.fixture(scope="module")
    def idp():
        with ProxiedIdp(name, harness.free_port(), access_token_ttl=access_token_ttl) as server:
            yield server

    @pytest.fixture(scope="module")
    def site(idp, echo, wasm):
        gw = sso_gateway(idp, echo.port, wasm, f"test_{name}", cookie_name, cookie_secret, **oidc)
        yield gw
        gw.stop()

    return idp, site


def base_url(gw: harness.Envoy) -> str:
    return f"http://{harness.LOCALHOST}:{gw.listener_port}"


def sign_in_until_callback(gw: harness.Envoy, idp: ProxiedIdp, browser: Browser, path: str = "/app/page") -> str:
    """Goes to ``path`` (once single sign-on is ready: 503 until the IdP's
    discovery and keys are in), signs in at the IdP and stops where the IdP
    sends the browser back: returns that callback URL (code and state),
    not yet requested."""
    deadline = time.monotonic() + 30
    while True:
        r = browser.request("GET", base_url(gw) + path)
        if r.status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status == 302 and (r.location or "").startswith(idp.issuer + "/"), (r, gw.log_tail(30))
    page = browser.navigate(r.location, stop_at=lambda url: url.split("?", 1)[0] == idp.callback)
    callback = page.final.location
    assert page.final.status in (302, 303) and callback and callback.split("?", 1)[0] == idp.callback, page
    return callback
