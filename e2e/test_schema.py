"""plugin-config-schema.json and the plugin's own parser agree on the
configurations we ship (demo, deploy manifests, README examples)."""

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


BAD_CONFIGS = [
    {"consumers": [{"name": "a", "client_id": "b"}]},
    {"unknown": 1},
    {"_rules_": [{"allow": ["a"]}]},
    {"token_ttl": 0},
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
