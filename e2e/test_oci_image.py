"""The OCI image `make oci` builds (scripts/oci_image.py), read back from the
OCI image layout as a registry client would: the Higress Wasm plugin image
layout (media types, layer order, plugin.wasm last), every digest and size,
spec.yaml equal to the generator's output from plugin-config-schema.json,
and one version everywhere (Cargo.toml, image tag, manifests, READMEs)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import jsonschema
import pytest
import yaml

import harness

ROOT = harness.REPO_ROOT
sys.path.insert(0, str(ROOT / "scripts"))
import higress_spec  # noqa: E402
import oci_image  # noqa: E402

EXPECTED_LAYERS = [
    ("spec.yaml", "application/vnd.module.wasm.spec.v1+yaml"),
    ("README.md", "application/vnd.module.wasm.doc.v1+markdown"),
    ("README_ZH.md", "application/vnd.module.wasm.doc.v1.ZH+markdown"),
    ("plugin.tar.gz", "application/vnd.oci.image.layer.v1.tar+gzip"),
]
VERSION = higress_spec.cargo_version()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    """An OCI image layout on disk, every read checked against its digest."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def blob(self, descriptor: dict) -> bytes:
        algo, _, hexdigest = descriptor["digest"].partition(":")
        assert algo == "sha256" and re.fullmatch(r"[0-9a-f]{64}", hexdigest), descriptor
        data = (self.path / "blobs" / "sha256" / hexdigest).read_bytes()
        assert sha256(data) == descriptor["digest"], descriptor
        assert len(data) == descriptor["size"], descriptor
        return data

    def manifest(self, tag: str) -> dict:
        assert json.loads((self.path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads((self.path / "index.json").read_text())
        assert index["schemaVersion"] == 2
        found = [m for m in index["manifests"]
                 if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
        assert len(found) == 1, index
        assert found[0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        return json.loads(self.blob(found[0]))


@pytest.fixture(scope="module")
def built(wasm, tmp_path_factory) -> tuple[Layout, dict, Path]:
    out = tmp_path_factory.mktemp("oci")
    summary = oci_image.build(out, wasm)
    return Layout(out / "layout"), summary, out


def test_layers_follow_the_higress_image_spec(built, wasm):
    layout, summary, out = built
    manifest = layout.manifest(VERSION)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"]["org.opencontainers.image.version"] == VERSION
    assert json.loads(layout.blob(manifest["config"])) == {}
    got = [(d["annotations"]["org.opencontainers.image.title"], d["mediaType"]) for d in manifest["layers"]]
    assert got == EXPECTED_LAYERS
    blobs = {name: layout.blob(d) for (name, _), d in zip(got, manifest["layers"])}

    assert blobs["README.md"] == (ROOT / "README.md").read_bytes()
    zh = blobs["README_ZH.md"].decode()
    assert zh == (ROOT / "docs" / "README_ZH.md").read_text()
    assert len(re.findall(r"[\u4e00-\u9fff]", zh)) > 500, "README_ZH.md is not Chinese"

    # The last layer is a tar+gzip holding only plugin.wasm, the built module.
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blobs["plugin.tar.gz"]))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"] and members[0].isfile()
        module = tar.extractfile(members[0]).read()
    assert module == wasm.read_bytes() and module[:4] == b"\0asm"

    # The files oras push takes are the same bytes as the layers.
    for name, data in blobs.items():
        assert (out / "files" / name).read_bytes() == data, name
    assert summary["manifest_digest"] == sha256((layout.path / "blobs" / "sha256" /
                                                 summary["manifest_digest"].split(":")[1]).read_bytes())


def test_spec_yaml_is_generated_from_the_schema(built):
    layout, _, _ = built
    manifest = layout.manifest(VERSION)
    spec_text = layout.blob(manifest["layers"][0]).decode()
    assert spec_text == higress_spec.spec_yaml()
    spec = yaml.safe_load(spec_text)
    assert spec["apiVersion"] == "1.0.0"
    assert spec["info"]["version"] == VERSION
    assert spec["info"]["category"] == "auth" and spec["info"]["name"] == "edge-auth/v1"
    manifest_spec = yaml.safe_load((ROOT / "deploy" / "higress-wasmplugin.yaml").read_text())["spec"]
    assert (spec["spec"]["phase"], spec["spec"]["priority"]) == (manifest_spec["phase"], manifest_spec["priority"])
    openapi = spec["spec"]["configSchema"]["openAPIV3Schema"]
    assert openapi == higress_spec.openapi_schema()
    # OpenAPI 3.0 form: nothing of JSON Schema 2020-12 is left in it.
    text = json.dumps(openapi)
    for keyword in ('"$ref"', '"$defs"', '"$schema"', '"const"', '"if"', '"then"'):
        assert keyword not in text, keyword
    # The schema's top-level keys are all there (a new key cannot be missed).
    schema = json.loads((ROOT / "plugin-config-schema.json").read_text())
    assert set(openapi["properties"]) == set(schema["properties"])


def test_spec_schema_accepts_and_refuses_what_the_json_schema_does():
    """The OpenAPI translation keeps every constraint: read as a Draft 4
    schema (OpenAPI 3.0's base) it agrees with plugin-config-schema.json
    on good and bad configurations."""
    import test_schema

    schema = json.loads((ROOT / "plugin-config-schema.json").read_text())
    openapi = jsonschema.Draft4Validator(higress_spec.openapi_schema())
    original = jsonschema.Draft202012Validator(schema)
    good = test_schema.readme_configs()
    assert good
    for config in good:
        assert not list(original.iter_errors(config))
        assert not list(openapi.iter_errors(config)), config
    for bad in test_schema.BAD_CONFIGS:
        assert list(original.iter_errors(bad)), bad
        assert list(openapi.iter_errors(bad)), bad


def test_generator_refuses_keywords_it_cannot_translate():
    with pytest.raises(higress_spec.SchemaError, match="patternProperties"):
        higress_spec.to_openapi({"type": "object", "patternProperties": {"^x": {}}}, {})
    with pytest.raises(higress_spec.SchemaError, match="unsupported \\$ref"):
        higress_spec.to_openapi({"$ref": "#/$defs/missing"}, {})
    # Translations that keep the constraint.
    assert higress_spec.to_openapi({"const": 1}, {}) == {"enum": [1]}
    assert higress_spec.to_openapi({"if": {"required": ["a"]}, "then": {"required": ["b"]}}, {}) == {
        "allOf": [{"anyOf": [{"not": {"required": ["a"]}}, {"required": ["b"]}]}]}
    assert higress_spec.to_openapi({"type": ["string", "integer"], "minLength": 1, "minimum": 0,
                                    "description": "d"}, {}) == {
        "description": "d", "anyOf": [{"type": "string", "minLength": 1}, {"type": "integer", "minimum": 0}]}


def test_build_is_reproducible(built, wasm, tmp_path):
    _, first, _ = built
    again = oci_image.build(tmp_path, wasm)
    assert again["manifest_digest"] == first["manifest_digest"]


def test_make_oci_builds_the_layout_under_target():
    dry = subprocess.run(["make", "-n", "oci"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "scripts/oci_image.py --out target/oci" in dry.stdout, dry.stdout


# ---------------------------------------------------------------------------
# One version
# ---------------------------------------------------------------------------


def test_one_version_everywhere():
    cargo = VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+", cargo)
    make = subprocess.run(["make", "-s", "--no-print-directory", "-f", "Makefile",
                                         "--eval", "print-version: ; @echo $(VERSION)", "print-version"],
                                        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert make.stdout.strip() == cargo, make
    texts = {p: (ROOT / p).read_text() for p in
             ("README.md", "docs/README_ZH.md", "deploy/higress-wasmplugin.yaml", "deploy/istio-wasmplugin.yaml")}
    for path, text in texts.items():
        tags = re.findall(r"edge-auth:(\d+\.\d+\.\d+)", text) + re.findall(r"layout:(\d+\.\d+\.\d+)", text)
        assert tags, path
        assert set(tags) == {cargo}, (path, tags)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[Unreleased\]$", changelog, re.M)
    assert "keepachangelog.com" in changelog


def test_manifests_always_pull_or_pin_a_digest():
    for path in ("deploy/higress-wasmplugin.yaml", "deploy/istio-wasmplugin.yaml"):
        for doc in yaml.safe_load_all((ROOT / path).read_text()):
            spec = doc["spec"]
            assert spec["url"].startswith("oci://")
            assert spec.get("imagePullPolicy") == "Always" or "@sha256:" in spec["url"], (path, spec)
        assert re.search(r"#.*(tag|digest)", (ROOT / path).read_text()), f"{path}: say why"
