"""The compiled module's shell (src/plugin/) under a real Envoy: every
callback it translates, once each, so a shell regression fails here quickly
(the native tests drive src/stream/ directly and never run the shell or
its host adapter, src/host/wasm.rs).

* request body: with the headers in one frame, in two pieces, chunked and
  ended by trailers (on_http_request_body / on_http_request_trailers);
* a call answer for a held request (on_http_call_response on the stream)
  and the resume after it, on a session refresh;
* response headers: the refreshed session's Set-Cookie added to the
  upstream's answer (on_http_response_headers);
* a call's answer for a stream Envoy already ended (the shell routes
  answers to the context that made the call; this one is gone);
* the module's exports: only the callbacks the plugin acts on, so Envoy
  never enters the VM for response bodies, the log phase or on_done.

The IdP is the real one behind a fault proxy (``proxied_idp.py``, as in
test_held_requests.py); its access tokens live 1 s, so the session needs a
refresh right after sign-in.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

import harness
from common import C1, FORM, assert_token_response, consumers, cred_params, probe
from harness import SlowRequest, form
from proxied_idp import base_url, sign_in_until_callback, sso_site_fixtures
from sso_browser import Browser

BODY = form(cred_params(C1)).encode()
COOKIE = "_edge_auth_shell"


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway({"consumers": consumers(C1), "global_auth": True}, name="token")


idp, site = sso_site_fixtures("shell", COOKIE, "edge-auth-e2e-cookie-secret-S-0123456789abcdef01",
                              access_token_ttl=1)


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


def test_an_answer_for_a_stream_that_ended_is_dropped_and_the_gateway_serves_on(site, idp, echo):
    browser = Browser(name="shell-gone")
    callback = sign_in_until_callback(site, idp, browser, "/app")
    target = callback.split(base_url(site), 1)[1]
    idp.hold_token_answers()
    try:
        with socket.create_connection((harness.LOCALHOST, site.listener_port), timeout=10) as sock:
            sock.sendall((f"GET {target} HTTP/1.1\r\nHost: {harness.LOCALHOST}:{site.listener_port}\r\n"
                          f"Cookie: {browser.jar.header_for(callback)}\r\n\r\n").encode())
            # The code exchange is in flight, the callback held in Envoy ...
            assert idp.token_answer_held(10), site.log_tail(30)
        # ... and the browser has gone: Envoy ends the stream.
    finally:
        idp.release()
    # The answer reached the plugin for a context that is gone; a new sign-in
    # on the same worker goes all the way through.
    again = Browser(name="shell-after")
    r = again.request("GET", sign_in_until_callback(site, idp, again, "/app"))
    assert r.status == 302, (r, site.log_tail(30))
    p = probe()
    r = again.request("GET", base_url(site) + "/app/page", headers=[p])
    assert r.status == 200, (r, site.log_tail(30))
    assert len(echo.requests_seen(p[1])) == 1
    assert "panicked" not in site.log_text() and "unknown HTTP context" not in site.log_text()


# What Envoy may call. proxy-wasm-cpp-host calls a callback only if the
# module exports it; every one missing here is a VM entry saved per request.
EXPORTED_CALLBACKS = {
    "proxy_on_context_create", "proxy_on_configure", "proxy_on_tick",
    "proxy_on_request_headers", "proxy_on_request_body", "proxy_on_request_trailers",
    "proxy_on_response_headers", "proxy_on_http_call_response", "proxy_on_delete",
}


def wasm_exports(path: Path) -> set[str]:
    """The export section's names (WebAssembly binary format, section 7)."""
    data = path.read_bytes()
    assert data[:4] == b"\0asm", path

    def leb(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[pos]
            value |= (byte & 0x7F) << shift
            pos += 1
            if byte < 0x80:
                return value, pos
            shift += 7

    pos = 8
    while pos < len(data):
        section, pos = data[pos], pos + 1
        size, pos = leb(pos)
        if section == 7:
            count, at = leb(pos)
            names = set()
            for _ in range(count):
                length, at = leb(at)
                names.add(data[at:at + length].decode())
                at += length + 1  # the kind byte
                _, at = leb(at)  # the index
            return names
        pos += size
    return set()


def test_the_module_exports_only_the_callbacks_the_plugin_acts_on(wasm):
    callbacks = {name for name in wasm_exports(wasm) if name.startswith("proxy_on_")}
    assert callbacks == EXPORTED_CALLBACKS | {"proxy_on_memory_allocate"}, sorted(callbacks)
