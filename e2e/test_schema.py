"""plugin-config-schema.json and the plugin's own parser agree on the
configurations we ship (demo, deploy manifests, every README example) and on
the mistakes they refuse; where JSON Schema cannot say what the parser
checks, the gap is listed (PARSER_ONLY) and tested as a gap."""

from __future__ import annotations

import json
import re
import subprocess

import jsonschema
import pytest

import harness
from test_demo_config import DEMO, demo_plugin_config

ROOT = harness.REPO_ROOT
SCHEMA = json.loads((ROOT / "plugin-config-schema.json").read_text())


@pytest.fixture(scope="module")
def checker() -> str:
    subprocess.run(["cargo", "build", "--quiet", "--bin", "edge-auth-config"], cwd=ROOT, check=True, timeout=600)
    return str(ROOT / "target" / "debug" / "edge-auth-config")


def plugin_view(checker: str, path) -> list[dict]:
    """Every configuration in ``path`` as the plugin receives it; the
    checker must also accept each."""
    p = subprocess.run([checker, "--print", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def readme_configs() -> list[dict]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    configs = [json.loads(b) for b in blocks if b.lstrip().startswith("{")]
    return [c for c in configs if "consumers" in c or "oidc" in c]


def test_schema_is_a_valid_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("manifest", ["deploy/higress-wasmplugin.yaml", "deploy/istio-wasmplugin.yaml"])
def test_deploy_manifests_match_the_schema(checker, manifest):
    configs = plugin_view(checker, ROOT / manifest)
    assert configs
    for config in configs:
        jsonschema.validate(config, SCHEMA)


def test_demo_config_matches_the_schema(checker, tmp_path):
    config = demo_plugin_config(DEMO.read_text())
    jsonschema.validate(config, SCHEMA)
    f = tmp_path / "demo.json"
    f.write_text(json.dumps(config))
    assert plugin_view(checker, f) == [config]


def test_readme_examples_match_the_schema_and_the_parser(checker, tmp_path):
    configs = readme_configs()
    assert len(configs) >= 2
    for i, config in enumerate(configs):
        jsonschema.validate(config, SCHEMA)
        f = tmp_path / f"readme-{i}.json"
        f.write_text(json.dumps(config))
        plugin_view(checker, f)


JWT = {"name": "idp", "issuer": "https://idp.example.com", "jwks_uri": "https://idp.example.com/jwks",
       "cluster": "idp"}
# An ES256 public key (inline JWKS consumers).
JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "k1",
                  "x": "Jc2tJ3zO_GXwg3Hd4pwu104WSftr68slDkvyZULIaXY",
                  "y": "B7EeMVpZSqXl4EDwPinb1WiBTam9kIO-SinlUMwDiZc"}]}
OIDC = {"issuer": "https://sso.example.com", "cluster": "sso", "client_id": "gateway",
        "client_secret": "gateway-client-secret-0123456789abcdef", "cookie_secret": "c" * 32}


def without(d: dict, *keys: str, **extra) -> dict:
    return {**{k: v for k, v in d.items() if k not in keys}, **extra}


BAD_CONFIGS = [
    {"consumers": [{"name": "a", "client_id": "b"}]},
    {"unknown": 1},
    {"_rules_": [{"allow": ["a"]}]},
    {"token_ttl": 0},
    # JWT consumers: issuer unless oidc_issuer gives it; remote keys need
    # exactly one way to reach the IdP.
    {"consumers": [without(JWT, "issuer")]},
    {"consumers": [{"name": "k", "jwks": JWKS}]},
    {"consumers": [without(JWT, "cluster")]},
    {"consumers": [without(JWT, service_name="idp.svc")]},
    {"consumers": [{"name": "d", "oidc_issuer": "https://idp.example.com"}]},
    {"consumers": [{"name": "d", "oidc_issuer": "https://idp.example.com", "cluster": "idp",
                    "service_name": "idp.svc"}]},
    # oidc: a cluster (one way), openid in scope, a 32-byte cookie secret.
    {"oidc": without(OIDC, "cluster")},
    {"oidc": without(OIDC, service_name="sso.svc")},
    {"oidc": without(OIDC, scope="email profile")},
    {"oidc": without(OIDC, scope="openidx email")},
    {"oidc": without(OIDC, cookie_secret="c" * 15)},
    # 17-31 characters: neither raw key lengths nor base64 of one.
    {"oidc": without(OIDC, cookie_secret="c" * 20)},
    {"oidc": without(OIDC, cookie_secret="c" * 31)},
    {"oidc": without(OIDC, "issuer")},
]

# What JSON Schema cannot say (it does not compare two values): the schema
# accepts these, the parser refuses them. A schema that learns to refuse
# one makes its test fail: move it to BAD_CONFIGS then.
PARSER_ONLY = [
    ({"oidc": without(OIDC, cookie_refresh="2h", cookie_expire="1h")}, "cookie_refresh: must be below cookie_expire"),
    ({"oidc": without(OIDC, cookie_refresh=3600, cookie_expire="1h")}, "cookie_refresh: must be below cookie_expire"),
]

# Accepted by both: the counterparts of the refusals above.
GOOD_CONFIGS = [
    {"consumers": [JWT]},
    {"consumers": [without(JWT, "cluster", service_name="idp.svc", service_port=8443)]},
    {"consumers": [{"name": "k", "issuer": "https://idp.example.com", "jwks": JWKS}]},
    {"consumers": [{"name": "d", "oidc_issuer": "https://idp.example.com", "cluster": "idp"}]},
    {"oidc": OIDC},
    {"oidc": without(OIDC, "cluster", service_name="sso.svc")},
    {"oidc": without(OIDC, scope="email;openid,profile")},
    {"oidc": without(OIDC, cookie_refresh="30m", cookie_expire="1h")},
    {"oidc": without(OIDC, cookie_refresh=0, cookie_expire=0)},
    {"oidc": without(OIDC, cookie_secret="c" * 16)},
    {"oidc": without(OIDC, cookie_secret="c" * 24)},
    {"oidc": without(OIDC, cookie_secret="AAECAwQFBgcICQoLDA0ODw")},  # unpadded base64 of 16 bytes
]


@pytest.mark.parametrize("bad", BAD_CONFIGS)
def test_schema_and_parser_both_refuse(checker, tmp_path, bad):
    # The schema is as strict as `edge-auth-config --strict` (unknown keys
    # are errors there; the plugin itself warns and ignores them).
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    p = subprocess.run([checker, "--strict", str(f)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout


def check(checker: str, tmp_path, config: dict, name: str = "c") -> subprocess.CompletedProcess:
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps(config))
    return subprocess.run([checker, "--strict", str(f)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("good", GOOD_CONFIGS)
def test_schema_and_parser_both_accept(checker, tmp_path, good):
    jsonschema.validate(good, SCHEMA)
    p = check(checker, tmp_path, good)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("config,error", PARSER_ONLY)
def test_what_only_the_parser_refuses(checker, tmp_path, config, error):
    jsonschema.validate(config, SCHEMA)
    p = check(checker, tmp_path, config)
    assert p.returncode == 1 and error in p.stdout + p.stderr, p.stdout + p.stderr


# ---------------------------------------------------------------------------
# Every example the README shows
# ---------------------------------------------------------------------------


def readme_manifests() -> list[str]:
    """The README's Higress and Istio WasmPlugin manifests (YAML blocks)."""
    text = (ROOT / "README.md").read_text()
    return [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: WasmPlugin" in b]


def readme_envoy_values() -> list[dict]:
    """Plugin configurations inlined in the README's Envoy YAML (``value: '{...}'``)."""
    text = (ROOT / "README.md").read_text()
    return [json.loads(v) for v in re.findall(r"^\s*value: '(\{.*\})'$", text, re.M)]


def secrets_of(config: dict) -> list[tuple[str, bytes]]:
    """(path, key bytes) of every secret in a configuration."""
    import base64

    out = []
    scopes = [("", config)] + [(f"_rules_[{i}].", r) for i, r in enumerate(config.get("_rules_", []))]
    for at, scope in scopes:
        for j, c in enumerate(scope.get("consumers", [])):
            if "client_secret" in c:
                out.append((f"{at}consumers[{j}].client_secret", c["client_secret"].encode()))
        oidc = scope.get("oidc")
        if oidc:
            out.append((f"{at}oidc.client_secret", oidc["client_secret"].encode()))
            raw = oidc["cookie_secret"]
            try:
                decoded = base64.b64decode(raw, validate=True)
            except ValueError:
                decoded = b""
            out.append((f"{at}oidc.cookie_secret", max(decoded, raw.encode(), key=len)))
    return out


def test_every_readme_example_passes_schema_parser_and_secret_length(checker, tmp_path):
    configs = readme_configs() + readme_envoy_values()
    for i, manifest in enumerate(readme_manifests()):
        f = tmp_path / f"manifest-{i}.yaml"
        f.write_text(manifest)
        configs += plugin_view(checker, f)
    assert len(readme_manifests()) >= 2 and readme_envoy_values()
    for i, config in enumerate(configs):
        jsonschema.validate(config, SCHEMA)
        p = check(checker, tmp_path, config, f"example-{i}")
        assert p.returncode == 0 and "warning" not in p.stdout + p.stderr, (config, p.stdout + p.stderr)
        for at, secret in secrets_of(config):
            assert len(secret) >= 32, (f"README example {i}: {at} has {len(secret)} bytes, want >= 32", config)


def test_readme_says_how_to_make_a_cookie_secret():
    text = (ROOT / "README.md").read_text()
    assert "openssl rand -base64 32" in text
