"""The compiled module's shell (src/plugin/) under a real Envoy: every
callback it translates, once each, so a shell regression fails here quickly
(the native tests drive src/stream/ directly and never run the shell or
its host adapter, src/host/wasm.rs).

* request body: with the headers in one frame, in two pieces, chunked and
  ended by trailers (on_http_request_body / on_http_request_trailers);
* a call answer for a held request (on_http_call_response on the stream)
  and the resume after it, on a session refresh;
* response headers: the refreshed session's Set-Cookie added to the
  upstream's answer (on_http_response_headers).

The IdP is the real one behind a fault proxy (``proxied_idp.py``, as in
test_held_requests.py); its access tokens live 1 s, so the session needs a
refresh right after sign-in.
"""

from __future__ import annotations

import time

import pytest

import harness
from common import C1, FORM, assert_token_response, consumers, cred_params, probe
from harness import SlowRequest, form
from proxied_idp import ProxiedIdp, base_url, sign_in_until_callback, sso_gateway
from sso_browser import Browser

BODY = form(cred_params(C1)).encode()
COOKIE = "_edge_auth_shell"


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway({"consumers": consumers(C1), "global_auth": True}, name="token")


@pytest.fixture(scope="module")
def idp():
    with ProxiedIdp("shell", harness.free_port(), access_token_ttl=1) as server:
        yield server


@pytest.fixture(scope="module")
def site(idp, echo, wasm):
    gw = sso_gateway(idp, echo.port, wasm, "test_shell", COOKIE,
                     "edge-auth-e2e-cookie-secret-S-0123456789abcdef01")
    yield gw
    gw.stop()


def token_post(gw: harness.Envoy, chunked: bool = False) -> SlowRequest:
    headers = [("Content-Type", FORM)]
    if not chunked:
        headers.append(("Content-Length", str(len(BODY))))
    return SlowRequest(gw.listener_port, "POST", "/oauth2/token", headers, chunked=chunked)


def test_token_body_in_the_same_frame_as_the_headers(gw):
    r = gw.post("/oauth2/token", BODY, headers=[("Content-Type", FORM)])
    assert_token_response(r, C1)


def test_token_body_in_two_pieces(gw):
    with token_post(gw) as req:
        req.send(BODY[:7])
        req.send(BODY[7:])
        assert_token_response(req.response(), C1)


def test_token_body_chunked_and_ended_by_trailers(gw):
    with token_post(gw, chunked=True) as req:
        req.send(BODY[:7])
        req.send(BODY[7:])
        # The last chunk with a trailer: the body ends at the trailers.
        req.sock.sendall(b"0\r\nx-checksum: abc\r\n\r\n")
        assert_token_response(req.response(), C1)


def test_a_refresh_answer_resumes_the_held_request_and_sets_the_new_cookie(site, idp, echo):
    browser = Browser(name="shell-refresh")
    base = base_url(site)
    # The code exchange: a held request answered after the IdP's answer.
    r = browser.request("GET", sign_in_until_callback(site, idp, browser, "/app"))
    assert r.status == 302, (r, site.log_tail(30))
    assert any(c.startswith(COOKIE + "=") for c in r.headers.get_all("Set-Cookie") or []), r
    before = idp.token_requests()
    signed_in = int(time.time())
    while int(time.time()) < signed_in + 2:  # the access token has expired
        time.sleep(0.05)

    p = probe()
    r = browser.request("GET", base + "/app/page", headers=[p])
    # Refreshed first (one more token request), then forwarded upstream.
    assert r.status == 200, (r, site.log_tail(30))
    assert idp.token_requests() == before + 1
    seen = echo.requests_seen(p[1])
    assert len(seen) == 1 and seen[0]["headers"].get("x-mse-consumer") == "alice", seen
    # The upstream's answer carries the refreshed session cookie.
    cookies = r.headers.get_all("Set-Cookie") or []
    assert any(c.startswith(COOKIE + "=") and "Max-Age=0" not in c for c in cookies), r
