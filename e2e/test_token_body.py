"""The token endpoint never forwards a request, whatever its body does.

A ``POST <...>/oauth2/token`` is answered by the plugin itself. Its form body
may arrive with the headers, later, in pieces, chunked, never, or too big; in
none of these cases may the request (or any part of it) reach the upstream,
nor an upstream answer reach the client.

The leak detector is the echo upstream, which records a request as soon as
its headers arrive and also records requests reset before their body is
complete (``echo.requests_seen(probe)``); the first test is its positive
control, on an Envoy without the plugin.

Readiness without sleeps: after sending the headers, a test waits until the
plugin says it holds them (its ``token_body_waits`` counter) or, on a build
that forwards them, until the upstream has seen them (then the test fails on
the spot).
"""

from __future__ import annotations

import threading
import time

import pytest

import harness
from common import C1, FORM, assert_token_error, assert_token_response, basic, consumers, cred_params, probe
from harness import SlowRequest, form

BODY = form(cred_params(C1)).encode()
IDP_CLUSTER = "idp"
# Every gateway here: route-b is a disabled rule, the open path a barrier
# request takes to the upstream (see assert_never_reached).
BARRIER_RULE = {"_match_route_": ["route-b"], "_disable_": True}
CONFIG = {"consumers": consumers(C1), "global_auth": True, "_rules_": [BARRIER_RULE]}
# The second is under /a: on the SSO gateway, in the single sign-on scope.
TOKEN_PATHS = ["/oauth2/token", "/a/internal/admin/oauth2/token"]
TIMEOUT_DESCRIPTION_HINTS = ("allow_on_headers_stop_iteration", "Basic")


def sso_config(issuer: str) -> dict:
    """route-a (every path under /a) has browser single sign-on, with an IdP
    that is never asked: the token endpoint comes before single sign-on."""
    oidc = {
        "issuer": issuer,
        "client_id": "edge-auth-e2e-app",
        "client_secret": "edge-auth-e2e-app-secret-0123456789abcdef",
        "cluster": IDP_CLUSTER,
        "cookie_secret": "edge-auth-e2e-cookie-secret-T-0123456789abcdef01",
        "cookie_secure": False,
    }
    return {
        "consumers": consumers(C1),
        "global_auth": True,
        "_rules_": [{"_match_route_": ["route-a"], "oidc": oidc}, BARRIER_RULE],
    }


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG, name="flag")


@pytest.fixture(scope="module")
def gw_no_flag(start_gateway):
    return start_gateway(CONFIG, name="no-flag", allow_on_headers_stop_iteration=False)


@pytest.fixture(scope="module")
def gw_sso(echo, wasm):
    idp_port = harness.free_port()  # nothing listens there
    listener, admin = harness.free_port(), harness.free_port()
    bootstrap = harness.build_bootstrap(
        listener_port=listener, admin_port=admin, upstream_port=echo.port,
        http_filters=harness.gateway_filters(sso_config(f"http://127.0.0.1:{idp_port}"), wasm))
    bootstrap["static_resources"]["clusters"].append(harness.static_cluster(IDP_CLUSTER, idp_port))
    envoy = harness.Envoy(bootstrap, listener, admin, name="test_token_body-sso")
    envoy.start()
    yield envoy
    envoy.stop()


@pytest.fixture
def gateways(gw, gw_sso):
    return {"flag": gw, "sso": gw_sso}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def token_post(gw: harness.Envoy, path: str, p, *, chunked: bool = False,
               length: int | None = len(BODY)) -> SlowRequest:
    """Sends only the request line and headers of a form POST."""
    headers = [("Content-Type", FORM), p]
    if not chunked and length is not None:
        headers.append(("Content-Length", str(length)))
    return SlowRequest(gw.listener_port, "POST", path, headers, chunked=chunked)


def wait_held(gw: harness.Envoy, echo, probes: list[str], before: int, timeout: float = 15.0) -> None:
    """Readiness: the plugin holds the headers of ``len(probes)`` more token
    requests. Fails at once if the upstream saw any of them instead."""
    deadline = time.monotonic() + timeout
    while True:
        leaked = [r for pid in probes for r in echo.requests_seen(pid)]
        assert leaked == [], f"token request forwarded to the upstream: {leaked}"
        if gw.plugin_counter("token_body_waits") >= before + len(probes):
            return
        assert time.monotonic() < deadline, f"the plugin did not hold the token request\n{gw.log_tail(30)}"
        time.sleep(0.02)


def assert_never_reached(gw: harness.Envoy, echo, probes: list[str]) -> None:
    """No request with these probes reached the upstream. A barrier request
    through the same gateway, sent after them, must have arrived first (a
    leaked request would have been sent upstream before it)."""
    barrier = probe()
    r = gw.get("/b/barrier", headers=[barrier])
    assert r.status == 200, r
    assert echo.wait_seen(barrier[1]), "barrier request never reached the upstream"
    leaked = [r for pid in probes for r in echo.requests_seen(pid)]
    assert leaked == [], f"token request reached the upstream: {leaked}"


def pieces(data: bytes, n: int) -> list[bytes]:
    step = max(1, len(data) // n)
    return [data[i:i + step] for i in range(0, len(data), step)]


def assert_body_timeout(r: harness.Response) -> None:
    body = assert_token_error(r, 400, "invalid_request")
    for hint in TIMEOUT_DESCRIPTION_HINTS:
        assert hint in body["error_description"], body


# ---------------------------------------------------------------------------
# The leak detector can see a leak (positive control)
# ---------------------------------------------------------------------------


def test_detector_sees_a_forwarded_request_whose_body_never_comes(echo):
    """Envoy without the plugin forwards the headers of a POST at once: the
    echo upstream records the request before its body, and records the reset
    when the client goes away."""
    plain = harness.Envoy.with_filters([harness.router_filter()], echo.port, name="test_token_body-plain")
    with plain:
        p = probe()
        with token_post(plain, "/oauth2/token", p) as req:
            req.send(BODY[:5])
            seen = echo.wait_seen(p[1])
            assert len(seen) == 1 and seen[0]["state"] == "headers", seen
            assert seen[0]["method"] == "POST" and seen[0]["path"] == "/oauth2/token", seen
        deadline = time.monotonic() + 10
        while echo.requests_seen(p[1])[0]["state"] != "aborted" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert echo.requests_seen(p[1])[0]["state"] == "aborted", echo.requests_seen(p[1])


# ---------------------------------------------------------------------------
# A body that arrives late, in pieces, chunked: answered locally
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", TOKEN_PATHS)
@pytest.mark.parametrize("which", ["flag", "sso"])
def test_late_body_in_pieces_gets_a_token_and_never_reaches_upstream(gateways, echo, which, path, chunked):
    gw = gateways[which]
    p = probe()
    before = gw.plugin_counter("token_body_waits")
    with token_post(gw, path, p, chunked=chunked) as req:
        wait_held(gw, echo, [p[1]], before)
        parts = pieces(BODY, 3)
        for i, part in enumerate(parts):
            req.send(part, last=i == len(parts) - 1)
        r = req.response()
    assert_token_response(r, C1)
    assert_never_reached(gw, echo, [p[1]])


@pytest.mark.parametrize("which", ["flag", "sso"])
def test_body_never_finished_is_answered_by_the_timeout(gateways, echo, which):
    gw = gateways[which]
    p = probe()
    before = gw.plugin_counter("token_body_waits")
    errors_before = gw.plugin_counter("token_endpoint_errors_body_not_received")
    with token_post(gw, "/a/internal/admin/oauth2/token", p) as req:
        wait_held(gw, echo, [p[1]], before)
        req.send(BODY[:10])
        r = req.response()
    assert_body_timeout(r)
    assert gw.plugin_counter("token_endpoint_errors_body_not_received") == errors_before + 1
    assert_never_reached(gw, echo, [p[1]])


def test_twenty_unfinished_bodies_none_reaches_upstream(gw, echo):
    before = gw.plugin_counter("token_body_waits")
    probes = [probe() for _ in range(20)]
    reqs = [token_post(gw, "/oauth2/token", p, chunked=i % 2 == 1) for i, p in enumerate(probes)]
    try:
        wait_held(gw, echo, [p[1] for p in probes], before)
        for req in reqs:
            req.send(BODY[:7])
        answers: list = [None] * len(reqs)

        def read(i: int) -> None:
            answers[i] = reqs[i].response()

        threads = [threading.Thread(target=read, args=(i,)) for i in range(len(reqs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for req in reqs:
            req.close()
    for r in answers:
        assert r is not None
        assert_body_timeout(r)
    assert_never_reached(gw, echo, [p[1] for p in probes])


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("which", ["flag", "sso"])
def test_oversize_body_is_413_and_never_reaches_upstream(gateways, echo, which, chunked):
    gw = gateways[which]
    p = probe()
    big = b"grant_type=client_credentials&pad=" + b"x" * 20000
    before = gw.plugin_counter("token_body_waits")
    errors_before = gw.plugin_counter("token_endpoint_errors_body_too_large")
    with token_post(gw, "/a/x/oauth2/token", p, chunked=chunked, length=len(big)) as req:
        wait_held(gw, echo, [p[1]], before)
        try:
            for part in pieces(big, 4):
                req.send(part)
        except OSError:
            pass  # Envoy may close the connection after its answer
        r = req.response()
    assert_token_error(r, 413, "invalid_request", "request body too large")
    assert gw.plugin_counter("token_endpoint_errors_body_too_large") == errors_before + 1
    assert_never_reached(gw, echo, [p[1]])


def test_expect_100_continue_then_body(gw, echo):
    """What curl does for larger bodies: headers with Expect, the body only
    after Envoy's 100 Continue."""
    p = probe()
    headers = [("Content-Type", FORM), ("Content-Length", str(len(BODY))), ("Expect", "100-continue"), p]
    with SlowRequest(gw.listener_port, "POST", "/oauth2/token", headers) as req:
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = req.sock.recv(1)
            assert chunk, interim
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        req.send(BODY)
        r = req.response()
    assert_token_response(r, C1)
    assert_never_reached(gw, echo, [p[1]])


def test_body_with_the_headers_still_works(gateways, echo):
    """The ordinary case: the whole request in one write."""
    for gw in gateways.values():
        p = probe()
        r = gw.post_form("/oauth2/token", cred_params(C1), headers=[p])
        assert_token_response(r, C1)
        assert_never_reached(gw, echo, [p[1]])


# ---------------------------------------------------------------------------
# Envoy without allow_on_headers_stop_iteration: the body never reaches the
# plugin, so the request is refused (never forwarded) with a hint.
# ---------------------------------------------------------------------------


def test_without_the_flag_a_posted_body_gets_the_rfc6749_error(gw_no_flag, echo):
    gw = gw_no_flag
    # Positive control: the same gateway issues tokens on GET and Basic.
    r = gw.get("/oauth2/token?grant_type=client_credentials", headers={"Authorization": basic(C1.client_id, C1.client_secret)})
    assert_token_response(r, C1)
    p = probe()
    before = gw.plugin_counter("token_body_waits")
    with token_post(gw, "/a/internal/admin/oauth2/token", p) as req:
        wait_held(gw, echo, [p[1]], before)
        req.send(BODY, last=True)
        r = req.response()
    assert_body_timeout(r)
    assert_never_reached(gw, echo, [p[1]])
