#!/usr/bin/env python3
"""Build the plugin's OCI image as an OCI image layout on disk, the way the
Higress Wasm plugin image spec (https://higress.cn/docs/latest/user/wasm-image-spec)
and Higress's own build (``hgctl plugin build``, the
``build-and-push-wasm-plugin-image`` workflow) lay it out: one file per layer,

    1. spec.yaml      application/vnd.module.wasm.spec.v1+yaml   (scripts/higress_spec.py)
    2. README.md      application/vnd.module.wasm.doc.v1+markdown
    3. README_ZH.md   application/vnd.module.wasm.doc.v1.ZH+markdown   (docs/README_ZH.md)
    4. plugin.tar.gz  application/vnd.oci.image.layer.v1.tar+gzip  (a tar holding plugin.wasm)

``plugin.wasm`` is last because Higress and Istio take the Wasm module from
the image's last layer. The config blob is ``{}`` with oras's default media
type, as ``oras push`` writes it. No container engine is needed and the
output is byte-for-byte reproducible (fixed tar/gzip times, no creation
time), so the digest names the content.

Output (default ``target/oci``):

    target/oci/layout/   oci-layout, index.json, blobs/sha256/*   (tag = Cargo.toml version)
    target/oci/files/    the four files, as ``oras push`` takes them

Push the layout as it is:     oras cp --from-oci-layout target/oci/layout:<version> <registry>/edge-auth:<version>
or the files (same layers):   see ``push_command()`` (printed at the end).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import higress_spec  # noqa: E402

ROOT = higress_spec.ROOT
DEFAULT_WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "edge_auth.wasm"
README_ZH = ROOT / "docs" / "README_ZH.md"

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.unknown.config.v1+json"  # oras push's default
SPEC_MEDIA_TYPE = "application/vnd.module.wasm.spec.v1+yaml"
README_MEDIA_TYPE = "application/vnd.module.wasm.doc.v1+markdown"
README_ZH_MEDIA_TYPE = "application/vnd.module.wasm.doc.v1.ZH+markdown"
PLUGIN_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
TITLE = "org.opencontainers.image.title"
REPOSITORY = "edge-auth"


@dataclass
class Layer:
    name: str
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data),
                "annotations": {TITLE: self.name}}


def plugin_tar_gz(wasm: bytes) -> bytes:
    """``plugin.wasm`` in a gzipped tar, with nothing that changes between
    builds (mtime 0, root owner, no gzip name or time)."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size = len(wasm)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(wasm))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(tar_bytes.getvalue())
    return out.getvalue()


def layers(wasm: Path) -> list[Layer]:
    return [
        Layer("spec.yaml", SPEC_MEDIA_TYPE, higress_spec.spec_yaml().encode()),
        Layer("README.md", README_MEDIA_TYPE, (ROOT / "README.md").read_bytes()),
        Layer("README_ZH.md", README_ZH_MEDIA_TYPE, README_ZH.read_bytes()),
        Layer("plugin.tar.gz", PLUGIN_MEDIA_TYPE, plugin_tar_gz(wasm.read_bytes())),
    ]


def canonical_json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def push_command(version: str, registry: str = "<registry>/<namespace>") -> str:
    """The ``oras push`` (oras >= 1.0) that makes the same manifest from
    ``target/oci/files`` (run there)."""
    parts = [f"oras push {registry}/{REPOSITORY}:{version}",
             f"--annotation org.opencontainers.image.version={version}"]
    for name, media in (("spec.yaml", SPEC_MEDIA_TYPE), ("README.md", README_MEDIA_TYPE),
                        ("README_ZH.md", README_ZH_MEDIA_TYPE), ("plugin.tar.gz", PLUGIN_MEDIA_TYPE)):
        parts.append(f"./{name}:{media}")
    return " \\\n  ".join(parts)


def build(out_dir: Path, wasm: Path) -> dict:
    """Write the layout and the files; returns a summary (tag, digests)."""
    version = higress_spec.cargo_version()
    if not wasm.is_file():
        raise SystemExit(f"oci_image: {wasm} not found; run `make build` first")
    image_layers = layers(wasm)
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                   "size": len(config)},
        "layers": [layer.descriptor() for layer in image_layers],
        "annotations": {"org.opencontainers.image.version": version},
    }
    manifest_bytes = canonical_json(manifest)
    manifest_digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()

    layout = out_dir / "layout"
    files = out_dir / "files"
    for d in (layout, files):
        if d.exists():
            shutil.rmtree(d)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    files.mkdir(parents=True)
    for data in [config, manifest_bytes, *(layer.data for layer in image_layers)]:
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": MANIFEST_MEDIA_TYPE, "digest": manifest_digest, "size": len(manifest_bytes),
                       "annotations": {"org.opencontainers.image.ref.name": version}}],
    }
    (layout / "index.json").write_bytes(canonical_json(index))
    for layer in image_layers:
        (files / layer.name).write_bytes(layer.data)
    return {"version": version, "tag": f"{REPOSITORY}:{version}", "manifest_digest": manifest_digest,
            "layers": [(layer.name, layer.media_type, layer.digest) for layer in image_layers]}


def main() -> int:
    ap = argparse.ArgumentParser(description="Build the Higress-spec OCI image layout of edge-auth.")
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "oci")
    ap.add_argument("--wasm", type=Path, default=DEFAULT_WASM)
    args = ap.parse_args()
    summary = build(args.out, args.wasm)
    print(f"OCI image layout: {args.out / 'layout'} (tag {summary['version']}, manifest {summary['manifest_digest']})")
    for name, media, digest in summary["layers"]:
        print(f"  {name:14} {media:50} {digest}")
    print("Push it:")
    print(f"  oras cp --from-oci-layout {args.out / 'layout'}:{summary['version']} "
          f"<registry>/<namespace>/{summary['tag']}")
    print(f"or, from {args.out / 'files'}:")
    print("  " + push_command(summary["version"]).replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
