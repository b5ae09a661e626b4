"""global_credentials: false -- tokens are scoped to the route that issued them (aud)."""

from __future__ import annotations

import pytest

import jose_forge as jf
from common import (
    C1,
    C2,
    REALM_HOST,
    assert_forbidden,
    assert_passed,
    assert_unauthorized,
    consumers,
    forged,
    issue_token,
    probe,
    upstream_saw,
)

CONFIG = {"consumers": consumers(C1, C2), "global_credentials": False}

ROUTES = {"/a": "route-a", "/b": "route-b", "/svc": "route-svc", "": "route-default"}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


@pytest.fixture(scope="module")
def route_tokens(gw):
    """prefix -> token issued by that route's token endpoint (audience checked)."""
    return {prefix: issue_token(gw, C1, path=f"{prefix}/oauth2/token", aud=route) for prefix, route in ROUTES.items()}


@pytest.mark.parametrize("issued_at", sorted(ROUTES), ids=lambda p: ROUTES[p])
@pytest.mark.parametrize("used_at", sorted(ROUTES), ids=lambda p: ROUTES[p])
def test_token_only_valid_on_its_route(gw, route_tokens, echo, issued_at, used_at):
    path = f"{used_at}/items/1"
    p = probe()
    r = gw.get(path, headers=[("Authorization", f"Bearer {route_tokens[issued_at]}"), p])
    if issued_at == used_at:
        assert_passed(r, C1, "GET", path)
    else:
        assert_forbidden(r)
        assert upstream_saw(echo, p) == []
        # Positive control: the route's own token passes on the same path.
        p = probe()
        r = gw.get(path, headers=[("Authorization", f"Bearer {route_tokens[used_at]}"), p])
        assert_passed(r, C1, "GET", path)
        assert len(upstream_saw(echo, p)) == 1


def test_a_token_works_on_a_and_is_denied_on_b(gw):
    token = issue_token(gw, C2, path="/a/v1/oauth2/token", aud="route-a")
    assert_passed(gw.get("/a/v1/orders", headers={"Authorization": f"Bearer {token}"}), C2, "GET", "/a/v1/orders")
    assert_forbidden(gw.get("/b/v1/orders", headers={"Authorization": f"Bearer {token}"}))


def test_default_audience_token_is_denied(gw, route_tokens):
    token = jf.mse_token(C1.name, C1.client_id, C1.client_secret)  # aud "default"
    for prefix in ("/a", "/b", ""):
        path = f"{prefix}/x"
        assert_forbidden(gw.get(path, headers={"Authorization": f"Bearer {token}"}))
        # Positive control: that route's own token passes.
        assert_passed(gw.get(path, headers={"Authorization": f"Bearer {route_tokens[prefix]}"}), C1, "GET", path)


def test_forged_route_audience_token_is_accepted(gw):
    token = forged(C2, aud="route-b")
    assert_passed(gw.get("/b/x", headers={"Authorization": f"Bearer {token}"}), C2, "GET", "/b/x")
    assert_forbidden(gw.get("/a/x", headers={"Authorization": f"Bearer {token}"}))


def test_invalid_token_is_still_401(gw, route_tokens):
    token = forged(C1, aud="route-a", secret=C2.client_secret)
    r = gw.get("/a/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {token}"})
    assert_unauthorized(r, "/a/x", token_present=True, description="signature verification failed")
    assert_unauthorized(gw.get("/a/x", headers={"Host": REALM_HOST}), "/a/x", token_present=False)
    # Positive control: the same claims signed with the right secret pass.
    assert_passed(gw.get("/a/x", headers={"Authorization": f"Bearer {forged(C1, aud='route-a')}"}), C1, "GET", "/a/x")
