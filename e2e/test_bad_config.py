"""Invalid plugin configurations: the plugin refuses to start and Envoy with
it. The proof is what Envoy 1.40 itself reports for a wasm plugin whose
``on_configure`` failed: ``Wasm VM failed Failed to configure base Wasm
plugin``, ``Plugin edge_auth failed to load`` and (the filter is fail-closed)
``Unable to create Wasm plugin edge_auth``, then exit status 1 before the
admin endpoint ever said ``LIVE``; and exactly one error-level log line from
edge-auth, ``edge-auth: invalid configuration: ...``, naming the field."""

from __future__ import annotations

import re

import pytest

import harness
from common import C1, C2, CONFIG_ERROR_PREFIX as PREFIX, consumers, probe, upstream_saw

# Envoy's own lines for a plugin that failed on_configure (source/extensions/common/wasm/wasm.cc, server.cc).
ENVOY_REFUSAL = (
    "][error][wasm]", "Wasm VM failed Failed to configure base Wasm plugin",
    "][critical][wasm]", "Plugin edge_auth failed to load",
    "][critical][main]", "Unable to create Wasm plugin edge_auth",
)
# Every line the plugin logs goes through proxy_log: "[<time>][<tid>][<level>][wasm] ... wasm log edge_auth: <msg>".
PLUGIN_LINE = re.compile(r"^\[[^]]*\]\[[^]]*\]\[(?P<level>[a-z]+)\]\[wasm\] .*? wasm log edge_auth: (?P<msg>.*)$")

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


def plugin_lines(log: str, level: str) -> list[str]:
    """The messages edge-auth logged at ``level``."""
    return [m.group("msg") for m in map(PLUGIN_LINE.match, log.splitlines()) if m and m.group("level") == level]


def envoy_refusal_lines(log: str) -> list[str]:
    """Envoy's three lines saying the plugin failed to load, in order (as many as were found)."""
    lines = log.splitlines()
    found, at = [], 0
    for level, text in zip(ENVOY_REFUSAL[::2], ENVOY_REFUSAL[1::2]):
        hit = next((i for i in range(at, len(lines)) if level in lines[i] and text in lines[i]), None)
        if hit is None:
            break
        found.append(lines[hit])
        at = hit + 1
    return found


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_refused(case, echo, wasm):
    config, fields = BAD[case]
    gw = harness.gateway(config, echo.port, name=f"bad-{case}", wasm=wasm)
    gw.spawn()
    try:
        with pytest.raises(harness.EnvoyError, match="exited with 1 before becoming ready"):
            gw.wait_ready(timeout=60)
        assert gw.returncode == 1, gw.log_tail()
        log = gw.log_text()
        refusal = envoy_refusal_lines(log)
        assert len(refusal) == 3, (f"Envoy did not report the plugin failed to load (found {refusal})\n"
                                   + gw.log_tail())
        errors = plugin_lines(log, "error")
        assert len(errors) == 1, (errors, gw.log_tail())
        assert errors[0].startswith(PREFIX + " "), errors
        reason = errors[0][len(PREFIX):].strip()
        missing = [f for f in fields if f not in reason]
        assert not missing, f"the line does not name {missing}: {errors[0]}"
        # "<field path>: <why>": the first expected name is (part of) the path.
        assert not fields or fields[0] in reason.split(": ", 1)[0], errors[0]
        assert plugin_lines(log, "critical") == [], gw.log_tail()
    finally:
        gw.stop()


def test_valid_config_counterpart_serves(echo, wasm):
    """The same harness path with a valid config does serve (guards the test
    above: none of its refusal evidence appears)."""
    gw = harness.gateway({"consumers": consumers(C1), "_rules_": [RULE_OK]}, echo.port, name="good", wasm=wasm)
    with gw:
        p = probe()
        r = gw.get("/b/x", headers=[p])
        assert r.status == 200 and r.json()["path"] == "/b/x", r
        assert len(upstream_saw(echo, p)) == 1
        log = gw.log_text()
        assert envoy_refusal_lines(log) == [], gw.log_tail()
        assert plugin_lines(log, "error") == [] and plugin_lines(log, "critical") == [], gw.log_tail()
        assert gw.running()
