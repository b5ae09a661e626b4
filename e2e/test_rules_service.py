"""Service-level rules (_match_service_) against the Envoy cluster name
``outbound|8080||echo.default.svc.cluster.local`` (route-svc, /svc)."""

from __future__ import annotations

import pytest

from common import (
    C1,
    C2,
    REALM_HOST,
    assert_forbidden,
    assert_passed,
    assert_unauthorized,
    consumers,
    issue_token,
)

# service pattern -> does it match the cluster of route-svc?
PATTERNS = {
    "echo.default.svc.cluster.local": True,
    "echo.default.svc.cluster.local:8080": True,
    "echo.default.svc.cluster.local:9090": False,
    "other.default.svc.cluster.local": False,
}


@pytest.fixture(scope="module", params=sorted(PATTERNS))
def svc(request, start_gateway):
    pattern = request.param
    config = {
        "consumers": consumers(C1, C2),
        "global_auth": True,
        "_rules_": [{"_match_service_": [pattern], "allow": ["consumer2"]}],
    }
    gw = start_gateway(config, name=pattern.replace(":", "-"))
    tokens = {c.name: issue_token(gw, c) for c in (C1, C2)}
    yield gw, tokens, PATTERNS[pattern]
    gw.stop()


def test_service_rule_on_service_route(svc):
    gw, tokens, matches = svc
    r = gw.get("/svc/orders", headers={"Authorization": f"Bearer {tokens['consumer2']}"})
    assert_passed(r, C2, "GET", "/svc/orders")
    r = gw.get("/svc/orders", headers={"Authorization": f"Bearer {tokens['consumer1']}"})
    if matches:
        assert_forbidden(r)
    else:
        assert_passed(r, C1, "GET", "/svc/orders")


def test_service_rule_does_not_apply_to_other_clusters(svc):
    gw, tokens, _ = svc
    for path in ("/a/orders", "/b/orders", "/orders"):
        r = gw.get(path, headers={"Authorization": f"Bearer {tokens['consumer1']}"})
        assert_passed(r, C1, "GET", path)


def test_service_route_needs_a_token(svc):
    gw, tokens, _ = svc
    assert_unauthorized(gw.get("/svc/orders", headers={"Host": REALM_HOST}), "/svc/orders", token_present=False)
    r = gw.get("/svc/orders", headers={"Host": REALM_HOST, "Authorization": "Bearer x.y.z"})
    assert_unauthorized(r, "/svc/orders", token_present=True, description="malformed token")
    # Positive control: consumer2 (allowed wherever the rule matches) passes.
    assert_passed(gw.get("/svc/orders", headers={"Authorization": f"Bearer {tokens['consumer2']}"}), C2, "GET",
                  "/svc/orders")
