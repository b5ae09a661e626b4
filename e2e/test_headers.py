"""keep_token, auth_header_name (custom header) and its alias auth_header."""

from __future__ import annotations

import pytest

from common import (
    C1,
    C2,
    REALM_HOST,
    assert_passed,
    assert_unauthorized,
    consumers,
    issue_token,
)

BASE = {"consumers": consumers(C1, C2)}
CONFIGS = {
    "keep-false": {**BASE, "keep_token": False},
    "keep-true": {**BASE, "keep_token": True},
    "x-token": {**BASE, "auth_header_name": "X-Token"},
    "x-token-drop": {**BASE, "auth_header_name": "X-Token", "keep_token": False},
    "alias": {**BASE, "auth_header": "X-Api-Token"},
}


@pytest.fixture(scope="module")
def gws(lazy_gateways):
    return lazy_gateways(CONFIGS)


def test_keep_token_false_removes_authorization(gws):
    gw = gws["keep-false"]
    token = issue_token(gw, C1)
    r = gw.get("/a/x", headers={"Authorization": f"Bearer {token}", "X-Other": "kept"})
    echo = assert_passed(r, C1, "GET", "/a/x")
    assert "authorization" not in echo["headers"], echo
    assert echo["headers"]["x-other"] == "kept", echo


def test_keep_token_true_keeps_authorization(gws):
    gw = gws["keep-true"]
    token = issue_token(gw, C2)
    echo = assert_passed(gw.get("/a/x", headers={"Authorization": f"Bearer {token}"}), C2, "GET", "/a/x")
    assert echo["headers"]["authorization"] == f"Bearer {token}", echo


def test_custom_header_carries_token(gws):
    gw = gws["x-token"]
    token = issue_token(gw, C1)
    r = gw.get("/b/x", headers={"X-Token": f"Bearer {token}"})
    echo = assert_passed(r, C1, "GET", "/b/x")
    assert echo["headers"]["x-token"] == f"Bearer {token}", echo
    r = gw.get("/b/x", headers={"x-token": f"bearer {token}"})
    assert_passed(r, C1, "GET", "/b/x")


def test_custom_header_authorization_is_not_read(gws):
    gw = gws["x-token"]
    token = issue_token(gw, C1)
    r = gw.get("/b/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {token}"})
    assert_unauthorized(r, "/b/x", token_present=False)
    r = gw.get("/b/x", headers={"Host": REALM_HOST, "X-Token": "Bearer garbage"})
    assert_unauthorized(r, "/b/x", token_present=True, description="malformed token")
    assert_unauthorized(gw.get("/b/x", headers={"Host": REALM_HOST}), "/b/x", token_present=False)
    # Positive control: the same token in X-Token passes on the same gateway.
    assert_passed(gw.get("/b/x", headers={"Host": REALM_HOST, "X-Token": f"Bearer {token}"}), C1, "GET", "/b/x")


def test_custom_header_keep_token_false(gws):
    gw = gws["x-token-drop"]
    token = issue_token(gw, C2)
    r = gw.get("/a/x", headers={"X-Token": f"Bearer {token}", "Authorization": "Basic dXNlcjpwYXNz"})
    echo = assert_passed(r, C2, "GET", "/a/x")
    assert "x-token" not in echo["headers"], echo
    # only the configured auth header is removed
    assert echo["headers"]["authorization"] == "Basic dXNlcjpwYXNz", echo


def test_auth_header_alias(gws):
    gw = gws["alias"]
    token = issue_token(gw, C1)
    r = gw.get("/a/x", headers={"X-Api-Token": f"Bearer {token}"})
    echo = assert_passed(r, C1, "GET", "/a/x")
    assert echo["headers"]["x-api-token"] == f"Bearer {token}", echo
    r = gw.get("/a/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {token}"})
    assert_unauthorized(r, "/a/x", token_present=False)
