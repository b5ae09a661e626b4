"""`make dist`: the release files, and edge-auth-config as a static binary
that runs without a Rust toolchain or shared libraries."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import harness

ROOT = harness.REPO_ROOT
DIST = ROOT / "target" / "dist"
PT_INTERP = 3  # the program header naming the dynamic loader


@pytest.fixture(scope="module")
def dist() -> None:
    p = subprocess.run(["make", "dist"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]


def program_header_types(elf: bytes) -> list[int]:
    """p_type of every ELF64 little-endian program header."""
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and elf[5] == 1, "not an ELF64 LE file"
    e_phoff, = struct.unpack_from("<Q", elf, 0x20)
    e_phentsize, e_phnum = struct.unpack_from("<HH", elf, 0x36)
    return [struct.unpack_from("<I", elf, e_phoff + i * e_phentsize)[0] for i in range(e_phnum)]


def test_dist_holds_the_files_and_their_checksums(dist):
    assert sorted(p.name for p in DIST.iterdir()) == ["SHA256SUMS", "edge-auth-config", "plugin.wasm"]
    sums = {}
    for line in (DIST / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.lstrip("*")] = digest
    assert set(sums) == {"edge-auth-config", "plugin.wasm"}
    for name, digest in sums.items():
        assert hashlib.sha256((DIST / name).read_bytes()).hexdigest() == digest, name
    assert (DIST / "plugin.wasm").read_bytes() == harness.wasm_path().read_bytes()


def test_config_checker_is_static(dist):
    binary = DIST / "edge-auth-config"
    types = program_header_types(binary.read_bytes())
    # No dynamic loader (a static-pie keeps PT_DYNAMIC, for relocating itself only).
    assert types and PT_INTERP not in types, types
    # Control: the check sees the loader of an ordinary dynamic executable.
    assert PT_INTERP in program_header_types(Path(shutil.which("sh")).read_bytes())
    if shutil.which("file"):  # not on every minimal Debian; the ELF check above does not need it
        described = subprocess.run(["file", "-b", str(binary)], capture_output=True, text=True, timeout=30).stdout
        assert "statically linked" in described or "static-pie linked" in described, described
    ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    assert "not a dynamic executable" in (ldd.stdout + ldd.stderr) or "statically linked" in ldd.stdout, ldd


def test_config_checker_runs(dist, tmp_path):
    binary = str(DIST / "edge-auth-config")
    # --help prints the usage; usage errors exit 2 (README).
    h = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30, env={})
    assert h.returncode == 2 and h.stderr.startswith("usage: edge-auth-config"), h
    ok = subprocess.run([binary, "--strict", str(ROOT / "deploy" / "higress-wasmplugin.yaml")],
                        capture_output=True, text=True, timeout=30, env={})
    assert ok.returncode == 0 and "OK" in ok.stdout, ok
    bad = tmp_path / "bad.json"
    bad.write_text('{"consumers": [{"name": "a", "client_id": "b"}]}')
    no = subprocess.run([binary, str(bad)], capture_output=True, text=True, timeout=30, env={})
    assert no.returncode == 1 and "client_secret" in (no.stdout + no.stderr), no
