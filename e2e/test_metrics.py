"""Counters on Envoy's /stats move with what the plugin does."""

from __future__ import annotations

import urllib.request

import pytest

from common import C1, C2, consumers, issue_token

CONFIG = {"consumers": consumers(C1, C2), "_rules_": [{"_match_route_": ["route-b"], "allow": ["consumer2"]}], "global_auth": True}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


def counters(gw) -> dict[str, int]:
    url = f"http://127.0.0.1:{gw.admin_port}/stats?filter=edge_auth"
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith("wasmcustom.edge_auth_") and value.strip().isdigit():
            out[name.removeprefix("wasmcustom.edge_auth_")] = int(value)
    return out


def test_counters_move(gw):
    before = counters(gw)
    token = issue_token(gw, C1)
    assert gw.get("/a/x", headers={"Authorization": f"Bearer {token}"}).status == 200
    assert gw.get("/a/x", headers={"Authorization": f"Bearer {token}"}).status == 200
    assert gw.get("/a/x").status == 401
    assert gw.get("/a/x", headers={"Authorization": "Bearer not.a.jwt"}).status == 401
    assert gw.get("/b/x", headers={"Authorization": f"Bearer {token}"}).status == 403
    assert gw.get("/oauth2/token?grant_type=password").status == 400
    big = "grant_type=client_credentials&pad=" + "x" * 17000
    assert gw.post("/oauth2/token", big, headers={"Content-Type": "application/x-www-form-urlencoded"}).status == 413
    assert gw.request("PUT", "/oauth2/token").status == 405
    after = counters(gw)

    def delta(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    assert delta("tokens_issued") == 1, after
    assert delta("requests_allowed") == 2, after
    assert delta("denied_401_no_bearer_token") == 1, after
    assert delta("denied_401_malformed_token") == 1, after
    assert delta("denied_403_consumer_not_in_allow_list") == 1, after
    assert delta("token_endpoint_errors_unsupported_grant_type") == 1, after
    # Errors found while reading the body, and the method, are counted too.
    assert delta("token_endpoint_errors_body_too_large") == 1, after
    assert delta("token_endpoint_errors_method_not_allowed") == 1, after
    assert delta("token_body_waits") == 1, after
    # The second request with the same token is answered from the cache; the
    # malformed token and the same token under route-b's rule (another scope)
    # are misses.
    assert delta("cache_hits") == 1 and delta("cache_misses") == 3, after
