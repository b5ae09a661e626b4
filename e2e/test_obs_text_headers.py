"""Header values that are not UTF-8 (obs-text bytes, which Envoy's HTTP/1
codec lets through) never abort the plugin's VM.

The SDK's header read panicked on them: one unauthenticated request with
``Content-Type: \\xff`` to the token endpoint killed the VM, and every later
request on that worker got a 503 until Envoy restarted the plugin. Each case
sends the bad value, checks the answer to it, then checks that the gateway
still serves a valid token and that Envoy logged no panic.
"""

from __future__ import annotations

import json

import pytest

import harness
from common import C1, assert_passed, assert_unauthorized, consumers, issue_token

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
