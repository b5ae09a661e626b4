"""The demo gateway /work/main/envoy.yaml: validates and behaves as documented.

The file is served as written except for its three fixed ports (listener
10000, admin 9901, echo 18080), replaced by free ones, and the wasm path when
EDGE_AUTH_WASM is set."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

import harness
from common import (
    Consumer,
    assert_forbidden,
    assert_passed,
    assert_unauthorized,
    cred_params,
    issue_token,
    query,
)

DEMO = harness.REPO_ROOT / "envoy.yaml"
WASM_REL = "target/wasm32-wasip1/release/edge_auth.wasm"


def demo_plugin_config(text: str) -> dict:
    """The plugin JSON embedded as the block scalar ``value: |``."""
    m = re.search(r"^( *)value: \|\n((?:\1  .*\n|\s*\n)+)", text, re.M)
    assert m, "plugin configuration block not found in envoy.yaml"
    return json.loads(m.group(2))


def demo_text(listener: int, admin: int, upstream: int) -> str:
    text = DEMO.read_text()
    for old, new in (("port_value: 10000", listener), ("port_value: 9901", admin), ("port_value: 18080", upstream)):
        assert text.count(old) == 1, f"expected exactly one {old!r} in envoy.yaml"
        text = text.replace(old, f"port_value: {new}")
    wasm = harness.wasm_path()
    if wasm != harness.REPO_ROOT / WASM_REL:
        text = text.replace(f"filename: {WASM_REL}", f"filename: {wasm}")
    return text


def test_demo_config_shape():
    text = DEMO.read_text()
    assert f"filename: {WASM_REL}" in text
    cfg = demo_plugin_config(text)
    names = [c["name"] for c in cfg["consumers"]]
    assert names == ["consumer1", "consumer2"]
    for c in cfg["consumers"]:
        assert len(c["client_id"]) >= 32 and len(c["client_secret"]) >= 32, c
    assert cfg["_rules_"][:2] == [
        {"_match_route_": ["api-public"], "_disable_": True},
        {"_match_route_": ["api-orders"], "allow": ["consumer1"]},
    ]
    sso = cfg["_rules_"][2]
    assert sso["_match_route_"] == ["app", "sso-callback", "sso-sign-out"]
    assert sso["oidc"]["issuer"] == "http://127.0.0.1:9000" and sso["oidc"]["cluster"] == "idp"
    for route in ("api-public", "api-orders", "app", "sso-callback", "sso-sign-out", "default"):
        assert f"- name: {route}\n" in text, route


def test_demo_config_validates(wasm):
    cmd = harness.envoy_command() + ["--mode", "validate", "-c", str(DEMO), "--disable-hot-restart", "-l", "error"]
    p = subprocess.run(cmd, cwd=harness.REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OK" in p.stdout + p.stderr


@pytest.fixture(scope="module")
def demo(echo, wasm):
    listener, admin = harness.free_port(), harness.free_port()
    while admin == listener:
        admin = harness.free_port()
    gw = harness.Envoy(demo_text(listener, admin, echo.port), listener, admin, name="demo")
    with gw:
        yield gw


@pytest.fixture(scope="module")
def demo_consumers():
    cfg = demo_plugin_config(DEMO.read_text())
    return {c["name"]: Consumer(c["name"], c["client_id"], c["client_secret"]) for c in cfg["consumers"]}


def test_demo_public_route_is_open(demo):
    assert_passed(demo.get("/public/status"), None, "GET", "/public/status")
    path = query("/public/oauth2/token", cred_params(Consumer("x", "y", "z")))
    assert_passed(demo.get(path), None, "GET", path)


def test_demo_orders_route_allows_consumer1_only(demo, demo_consumers):
    c1, c2 = demo_consumers["consumer1"], demo_consumers["consumer2"]
    t1, t2 = issue_token(demo, c1), issue_token(demo, c2)
    assert_passed(demo.get("/orders/1", headers={"Authorization": f"Bearer {t1}"}), c1, "GET", "/orders/1")
    assert_forbidden(demo.get("/orders/1", headers={"Authorization": f"Bearer {t2}"}))
    r = demo.get("/orders/1", headers={"Host": "demo.local"})
    assert_unauthorized(r, "/orders/1", host="demo.local", token_present=False)


def test_demo_default_route_needs_any_valid_token(demo, demo_consumers):
    c2 = demo_consumers["consumer2"]
    t2 = issue_token(demo, c2, path="/orders/oauth2/token")
    assert_passed(demo.get("/", headers={"Authorization": f"Bearer {t2}"}), c2, "GET", "/")
    assert_unauthorized(demo.get("/", headers={"Host": "demo.local"}), "/", host="demo.local", token_present=False)
