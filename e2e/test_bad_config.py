"""Invalid plugin configurations: Envoy must refuse to serve, and the log must
name the offending field in an ``edge-auth: invalid configuration:`` line."""

from __future__ import annotations

import pytest

import harness
from common import C1, C2, consumers, probe, upstream_saw

PREFIX = "edge-auth: invalid configuration:"

C1_CFG = C1.config()
C2_CFG = C2.config()
RULE_OK = {"_match_route_": ["route-a"], "allow": ["consumer1"]}


def with_(base: dict, **kw) -> dict:
    d = dict(base)
    d.update(kw)
    return d


def without(base: dict, key: str) -> dict:
    return {k: v for k, v in base.items() if k != key}


# id -> (plugin configuration (dict, or raw text), substrings the log line must contain)
BAD = {
    "token-ttl-string": ({"consumers": consumers(C1), "token_ttl": "7200"}, ["token_ttl"]),
    "token-ttl-negative": ({"consumers": consumers(C1), "token_ttl": -1}, ["token_ttl"]),
    "global-auth-string": ({"consumers": consumers(C1), "global_auth": "yes"}, ["global_auth"]),
    "keep-token-number": ({"consumers": consumers(C1), "keep_token": 1}, ["keep_token"]),
    "issuer-number": ({"consumers": consumers(C1), "issuer": 7}, ["issuer"]),
    "consumers-object": ({"consumers": {}}, ["consumers"]),
    "rules-object": ({"consumers": consumers(C1), "_rules_": {}}, ["_rules_"]),
    "consumer-missing-client-id": ({"consumers": [C1_CFG, without(C2_CFG, "client_id")]}, ["consumers[1]", "client_id"]),
    "consumer-missing-name": ({"consumers": [without(C1_CFG, "name")]}, ["consumers[0]", "name"]),
    "consumer-missing-secret": ({"consumers": [C1_CFG, without(C2_CFG, "client_secret")]}, ["consumers[1]", "client_secret"]),
    "consumer-secret-number": ({"consumers": [with_(C1_CFG, client_secret=123456)]}, ["consumers[0]", "client_secret"]),
    "duplicate-name": ({"consumers": [C1_CFG, with_(C2_CFG, name=C1.name)]}, ["consumers[1]", "name"]),
    "duplicate-client-id": ({"consumers": [C1_CFG, with_(C2_CFG, client_id=C1.client_id)]}, ["consumers[1]", "client_id"]),
    "empty-client-secret": ({"consumers": [with_(C1_CFG, client_secret=""), C2_CFG]}, ["consumers[0]", "client_secret"]),
    "rule-without-matcher": ({"consumers": consumers(C1), "_rules_": [{"allow": ["consumer1"]}]}, ["_rules_[0]"]),
    "rule-with-an-empty-selector": ({"consumers": consumers(C1), "_rules_": [
        RULE_OK, {"_match_route_": ["route-b"], "_match_domain_": []}]}, ["_rules_[1]._match_domain_"]),
    "allow-unknown-consumer": ({"consumers": consumers(C1), "_rules_": [{"_match_route_": ["route-a"], "allow": ["nobody"]}]},
                               ["_rules_[0]", "allow"]),
    "matcher-not-a-list": ({"consumers": consumers(C1), "_rules_": [{"_match_route_": "route-a"}]},
                           ["_rules_[0]", "_match_route_"]),
    "rule-token-ttl-string": ({"consumers": consumers(C1), "_rules_": [{"_match_route_": ["route-a"], "token_ttl": "60"}]},
                              ["_rules_[0]", "token_ttl"]),
    "rule-disable-string": ({"consumers": consumers(C1), "_rules_": [{"_match_route_": ["route-a"], "_disable_": "true"}]},
                            ["_rules_[0]", "_disable_"]),
    "rule-consumer-missing-secret": ({"consumers": consumers(C1), "_rules_": [
        {"_match_route_": ["route-a"], "consumers": [{"name": "p", "client_id": "p-id"}]}]},
        ["_rules_[0]", "consumers[0]", "client_secret"]),
    "invalid-json": ('{"consumers": [', []),
    "not-an-object": ('["consumers"]', []),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_refused(case, echo, wasm):
    config, fields = BAD[case]
    gw = harness.gateway(config, echo.port, name=f"bad-{case}", wasm=wasm)
    gw.spawn()
    try:
        try:
            gw.wait_ready(timeout=60)
            ready = True
        except harness.EnvoyError:
            ready = False
        if ready:
            # Still up: it must not serve anything through the listener.
            p = probe()
            try:
                r = gw.get("/a/x", headers=[p])
                served = r.status == 200
            except OSError:
                served = False
            assert not served and upstream_saw(echo, p) == [], "envoy served requests with an invalid plugin config"
        else:
            rc = gw.wait_exit(30)
            assert rc is not None, "envoy neither became ready nor exited\n" + gw.log_tail()
            assert rc != 0, "envoy exited 0 on an invalid plugin config\n" + gw.log_tail()
        lines = gw.wait_log(PREFIX, timeout=10)
        assert lines, f"no log line with {PREFIX!r}\n" + gw.log_tail()
        line = lines[0]
        missing = [f for f in fields if f not in line.split(PREFIX, 1)[1]]
        assert not missing, f"the line does not name {missing}: {line}"
    finally:
        gw.stop()


def test_valid_config_counterpart_serves(echo, wasm):
    """The same harness path with a valid config does serve (guards the test above)."""
    gw = harness.gateway({"consumers": consumers(C1), "_rules_": [RULE_OK]}, echo.port, name="good", wasm=wasm)
    with gw:
        assert PREFIX not in gw.log_text()
        r = gw.get("/b/x")
        assert r.status == 200 and r.json()["path"] == "/b/x", r
