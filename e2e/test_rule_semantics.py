"""Higress/MSE drop-in: the configs Higress writes, loaded unchanged in a real
Envoy, behave as the C++ RouteRuleMatcher (auth mode) defines them. The
global_auth x rule-kind matrix itself is in test_global_auth.py."""

from __future__ import annotations

import pytest

from common import (
    C1,
    C2,
    REALM_HOST,
    TOKEN_PATH,
    assert_forbidden,
    assert_passed,
    assert_token_response,
    assert_unauthorized,
    consumers,
    cred_params,
    forged,
    probe,
    query,
    upstream_saw,
    with_probe,
)

# What Higress writes when a user enables the plugin on one route only: no
# top-level keys at all, one rule with its own consumers.
ROUTE_ONLY = {"_rules_": [{"_match_route_": ["route-a"], "consumers": consumers(C1)}]}

# One matchRule naming an ingress and a domain becomes one rule with both
# selectors: both must match.
MULTI_SELECTOR = {
    "consumers": consumers(C1, C2),
    "global_auth": False,
    "_rules_": [{"_match_route_": ["route-a"], "_match_domain_": ["api.example.com"], "allow": ["consumer1"]}],
}

# Keys a control plane adds, or a newer plugin version knows.
WITH_UNKNOWN_KEYS = {
    "_plugin_id_": "edge-auth-1",
    "some_future_option": {"x": 1},
    "consumers": [dict(C1.config(), tier="gold")],
    "_rules_": [{"_match_route_": ["route-a"], "allow": ["consumer1"], "_rule_id_": 7}],
    "global_auth": True,
}

CONFIGS = {"route-only": ROUTE_ONLY, "multi": MULTI_SELECTOR, "unknown": WITH_UNKNOWN_KEYS}


@pytest.fixture(scope="module")
def gws(lazy_gateways):
    return lazy_gateways(CONFIGS)


def bearer_for(c) -> dict:
    return {"Host": REALM_HOST, "Authorization": f"Bearer {forged(c)}"}


def test_route_only_config_leaves_other_routes_untouched(gws, echo):
    gw = gws["route-only"]
    # Another route: passes untouched, no token needed, no identity added.
    p = probe()
    r = gw.get("/b/r", headers=with_probe({"Host": REALM_HOST}, p))
    seen = assert_passed(r, None, "GET", "/b/r")
    assert seen["headers"].get(p[0].lower()) == p[1]
    # The configured route: its own consumers only.
    p = probe()
    assert_unauthorized(gw.get("/a/r", headers=with_probe({"Host": REALM_HOST}, p)), "/a/r", token_present=False)
    assert upstream_saw(echo, p) == []
    assert_passed(gw.get("/a/r", headers=bearer_for(C1)), C1, "GET", "/a/r")
    p = probe()
    assert_unauthorized(gw.get("/a/r", headers=with_probe(bearer_for(C2), p)), "/a/r")
    assert upstream_saw(echo, p) == []


def test_route_only_config_token_endpoint_only_on_its_route(gws, echo):
    gw = gws["route-only"]
    assert_token_response(gw.get(query("/a" + TOKEN_PATH, cred_params(C1))), C1)
    # Elsewhere /oauth2/token belongs to the upstream (e.g. Spring
    # Authorization Server): it gets the request, the plugin does not answer.
    p = probe()
    r = gw.get(query(TOKEN_PATH, cred_params(C1)), headers=with_probe({}, p))
    assert r.status == 200, r
    assert r.json()["path"].startswith(TOKEN_PATH + "?"), r
    assert len(upstream_saw(echo, p)) == 1


@pytest.mark.parametrize(
    "path,host,guarded",
    [
        ("/a/r", "api.example.com", True),
        ("/a/r", "API.example.com:8080", True),
        ("/a/r", "other.example.com", False),
        ("/b/r", "api.example.com", False),
    ],
)
def test_every_selector_of_a_rule_must_match(gws, echo, path, host, guarded):
    gw = gws["multi"]
    p = probe()
    r = gw.get(path, headers=with_probe({"Host": host}, p))
    if guarded:
        assert_unauthorized(r, path, host=host, token_present=False)
        assert upstream_saw(echo, p) == []
        # Positive control on the same gateway: the allowed consumer passes...
        assert_passed(gw.get(path, headers={"Host": host, "Authorization": f"Bearer {forged(C1)}"}), C1, "GET", path)
        # ...and another valid consumer is refused by the allow list.
        assert_forbidden(gw.get(path, headers={"Host": host, "Authorization": f"Bearer {forged(C2)}"}))
    else:
        assert_passed(r, None, "GET", path)
        assert len(upstream_saw(echo, p)) == 1


def test_unknown_keys_are_warned_about_and_ignored(gws):
    gw = gws["unknown"]
    # The plugin loaded and enforces the config it understood.
    assert_passed(gw.get("/a/r", headers=bearer_for(C1)), C1, "GET", "/a/r")
    assert_unauthorized(gw.get("/b/r", headers={"Host": REALM_HOST}), "/b/r", token_present=False)
    for path in ("_plugin_id_", "some_future_option", "consumers[0].tier", "_rules_[0]._rule_id_"):
        lines = gw.wait_log(f"edge-auth: {path}: unknown key, ignored")
        assert len(lines) >= 1, path
        assert "[warning]" in lines[0], lines[0]
