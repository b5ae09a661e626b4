"""Header values that are not UTF-8 (obs-text bytes, which Envoy's HTTP/1
codec lets through) never abort the plugin's VM.

The SDK's header read panicked on them: one unauthenticated request with
``Content-Type: \\xff`` to the token endpoint killed the VM, and every later
request on that worker got a 503 until Envoy restarted the plugin. Each case
sends the bad value, checks the answer to it, then checks that the gateway
still serves a valid token and that Envoy logged no panic.

On a single sign-on route the plugin takes its own cookies out of the
request before it goes upstream. It used to rebuild the ``Cookie`` header
from its text view, so another application's cookie with a byte that is not
UTF-8 reached the upstream as U+FFFD, and only the first ``Cookie`` line was
looked at; the other cookies now pass byte for byte, from every line.
"""

from __future__ import annotations

import json

import pytest

import harness
from common import C1, assert_passed, assert_unauthorized, consumers, issue_token, probe
from proxied_idp import base_url, sign_in_until_callback, sso_site_fixtures
from sso_browser import Browser

BAD = "\xff\xfe"  # sent as the bytes 0xff 0xfe (latin-1)


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway({"consumers": consumers(C1)})


def raw(gw, method: str, path: str, headers: list[tuple[str, str]]) -> harness.Response:
    """Sends the head byte for byte (``SlowRequest`` writes latin-1)."""
    with harness.SlowRequest(gw.listener_port, method, path, [*headers, ("Content-Length", "0")]) as req:
        return req.response(timeout=10)


def assert_still_serving(gw) -> None:
    token = issue_token(gw, C1)
    assert_passed(gw.get("/after", headers={"Authorization": f"Bearer {token}"}), C1, "GET", "/after")
    assert "panicked" not in gw.log_text(), gw.log_tail(20)


@pytest.mark.parametrize("name, value", [
    ("Content-Type", BAD),
    # Other spellings: the name in lower case, a valid type with one
    # obs-text byte after it, a lone continuation byte.
    ("content-type", "application/x-www-form-urlencoded\xff"),
    ("CONTENT-TYPE", "\x80"),
])
def test_content_type_on_the_token_endpoint(gw, name, value):
    r = raw(gw, "POST", "/oauth2/token", [(name, value)])
    assert r.status == 400, (r.status, r.body)
    assert json.loads(r.body)["error"] == "invalid_request", r.body
    assert_still_serving(gw)


def test_authorization_value(gw):
    r = raw(gw, "GET", "/a/x", [("Authorization", f"Bearer {BAD}")])
    assert_unauthorized(r, "/a/x", host=f"127.0.0.1:{gw.listener_port}")
    assert_still_serving(gw)


def test_identity_header_value_is_still_scrubbed(gw):
    token = issue_token(gw, C1)
    r = raw(gw, "GET", "/a/x", [("Authorization", f"Bearer {token}"), ("X-Mse-Consumer", BAD)])
    echo = assert_passed(r, C1, "GET", "/a/x")
    assert echo["headers"]["x-mse-consumer"] == C1.name, echo
    assert_still_serving(gw)


def test_cookie_and_other_values(gw):
    token = issue_token(gw, C1)
    r = raw(gw, "GET", "/a/x", [("Authorization", f"Bearer {token}"), ("Cookie", f"a={BAD}"),
                                ("User-Agent", BAD)])
    assert_passed(r, C1, "GET", "/a/x")
    assert_still_serving(gw)


SSO_COOKIE = "_edge_auth_obs"


idp, site = sso_site_fixtures("obs_text", SSO_COOKIE, "edge-auth-e2e-cookie-secret-O-0123456789abcdef01")


def session_cookies(site, idp) -> str:
    """A signed-in browser's session cookies, as one Cookie value (the
    IdP's own cookies, on the same host, left out)."""
    browser = Browser(name="obs-text")
    r = browser.request("GET", sign_in_until_callback(site, idp, browser, "/app"))
    assert r.status == 302, (r, site.log_tail(30))
    cookies = browser.jar.header_for(base_url(site) + "/app/page") or ""
    ours = [c for c in cookies.split("; ") if c.startswith(SSO_COOKIE)]
    assert ours, cookies
    return "; ".join(ours)


def upstream_cookie(site, echo, cookie_lines: list[str]):
    p = probe()
    r = raw(site, "GET", "/app/page", [*(("Cookie", c) for c in cookie_lines), p])
    assert r.status == 200, (r.status, r.body, site.log_tail(20))
    seen = echo.requests_seen(p[1])
    assert len(seen) == 1 and seen[0]["headers"]["x-mse-consumer"] == "alice", seen
    return seen[0]["headers"].get("cookie")


def test_other_cookies_reach_the_upstream_byte_for_byte(site, idp, echo):
    ours = session_cookies(site, idp)
    # The echo server reads header bytes as latin-1: "\xe9" is the byte 0xe9.
    got = upstream_cookie(site, echo, [f"legacy=caf\xe9; {ours}; n\xff=1; plain=2"])
    assert got == "legacy=caf\xe9; n\xff=1; plain=2", got
    assert "\ufffd" not in got and "\xef\xbf\xbd" not in got


def test_our_cookies_are_taken_out_of_every_cookie_line(site, idp, echo):
    ours = session_cookies(site, idp)
    # A forged login cookie of ours in a second Cookie line, next to another
    # application's cookie: ours never reaches the upstream, theirs does.
    got = upstream_cookie(site, echo, [ours, f"{SSO_COOKIE}_csrf_x=forged; other=2"])
    assert got is not None and SSO_COOKIE not in got, got
    assert "other=2" in got, got
