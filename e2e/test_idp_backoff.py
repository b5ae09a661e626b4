"""A session refresh the IdP does not answer (README "Single sign-on"):
a 503 with ``Retry-After`` that keeps the session, and for the backoff
that follows the worker makes no refresh call at all: requests due for one
are answered 503 at once instead of each holding its stream and a
connection to the IdP for the whole call timeout. Once the IdP answers
again, the same session refreshes and is served.

The IdP is the real one behind a fault proxy (``proxied_idp.py``) that
answers its token endpoint 503 on demand (an overloaded IdP); access
tokens live 1 s, so the session needs a refresh right after sign-in.
(That a refusal, e.g. ``invalid_grant``, still ends the session is checked
on the fake host: ``src/tests/sso_promises.rs``.)
"""

from __future__ import annotations

import time

import pytest

import harness
from proxied_idp import ProxiedIdp, base_url, sign_in_until_callback, sso_gateway
from sso_browser import Browser

COOKIE = "_edge_auth_backoff"
XHR = [("X-Requested-With", "XMLHttpRequest")]


@pytest.fixture(scope="module")
def idp():
    with ProxiedIdp("idp-backoff", harness.free_port(), access_token_ttl=1) as server:
        yield server


@pytest.fixture(scope="module")
def site(idp, echo, wasm):
    gw = sso_gateway(idp, echo.port, wasm, "test_idp_backoff", COOKIE,
                     "edge-auth-e2e-cookie-secret-B-0123456789abcdef01")
    yield gw
    gw.stop()


def signed_in_and_expired(gw: harness.Envoy, idp: ProxiedIdp, name: str) -> Browser:
    """A browser signed in as alice whose access token has expired."""
    browser = Browser(name=name)
    r = browser.request("GET", sign_in_until_callback(gw, idp, browser))
    assert r.status == 302 and browser.jar.get(COOKIE) is not None, (r, gw.log_tail(30))
    signed_in = int(time.time())
    while int(time.time()) < signed_in + 2:  # the access token (1 s) has expired
        time.sleep(0.05)
    return browser


def assert_refused_keeping_the_session(r, navigation: bool) -> None:
    assert r.status == 503, r
    assert (r.headers.get("Retry-After") or "").isdigit(), r
    assert not any(line.startswith(COOKIE) for line in r.set_cookies), r.set_cookies
    if navigation:
        assert "Sign-in is unavailable" in r.text, r.text[:300]
    else:
        assert r.headers.get("Content-Type") == "text/plain", r


def test_refreshes_back_off_while_the_idp_does_not_answer_and_the_session_survives(site, idp, echo):
    browser = signed_in_and_expired(site, idp, "backoff")
    url = base_url(site) + "/app/page"
    idp.proxy.refuse(idp.token_path)
    try:
        calls = idp.token_requests()
        # Due for a refresh: the call is made and the IdP answers 503.
        first = browser.request("GET", url)
        assert_refused_keeping_the_session(first, navigation=True)
        assert idp.token_requests() == calls + 1, "one refresh call, not retried"
        # The next requests of the session (a navigation, an XHR) are
        # answered at once, without a call to the IdP.
        deferred_before = site.plugin_counter("sso_refresh_deferred")
        assert_refused_keeping_the_session(browser.request("GET", url), navigation=True)
        assert_refused_keeping_the_session(browser.request("GET", url, headers=XHR, accept="application/json"),
                                           navigation=False)
        assert idp.token_requests() == calls + 1, "a refresh call during the backoff"
        assert site.plugin_counter("sso_refresh_deferred") == deferred_before + 2
    finally:
        idp.proxy.allow(idp.token_path)
    # The IdP answers again: once the backoff is over, the same session
    # refreshes (its refresh token was never spent) and is served as alice.
    deadline = time.monotonic() + 30
    while True:
        r = browser.request("GET", url)
        if r.status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status == 200, (r, site.log_tail(30))
    assert r.json()["headers"].get("x-mse-consumer") == "alice", r.text[:300]
    assert any(line.startswith(COOKIE + "=") and "Max-Age=0" not in line for line in r.set_cookies), r.set_cookies
    assert idp.proxy.seen(idp.token_path, 200) >= 1

