#!/usr/bin/env python3
"""Signature verification cost per crypto backend, in V8.

Builds ``examples/crypto_bench.rs`` for wasm32-wasip1 and runs it with Node's
WASI (``bench/crypto_wasi.mjs``; V8 is also the engine Envoy runs the plugin
in), several rounds, and writes the medians as the ``crypto`` section of
BENCHMARKS.md (``--no-write``: print only). Compares, for RS256 (RSA-2048,
PKCS#1 v1.5) ``rsa`` 0.9 (what jwt-compact uses) with ``ring`` 0.17, and for
ES256 ``p256`` 0.13 with ``ring``; the ``plugin`` line is the plugin's own
verification path (src/keys/algorithm.rs) as built.

Usage: .venv/bin/python bench/crypto.py [--iterations 200] [--rounds 5] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import report_section  # noqa: E402

WASM = REPO_ROOT / "target/wasm32-wasip1/release/examples/crypto_bench.wasm"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--busy", action="store_true", help="mark the section as measured on a busy machine")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--example", "crypto_bench", "--target", "wasm32-wasip1"],
                   cwd=REPO_ROOT, check=True)
    node = shutil.which("node")
    if node is None:
        print("crypto: node not found", file=sys.stderr)
        return 2
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        out = subprocess.run([node, "--no-warnings", str(BENCH_DIR / "crypto_wasi.mjs"), str(WASM),
                              str(args.iterations)], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            alg, backend, us = line.split()
            runs.setdefault(f"{alg} {backend}", []).append(float(us))
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "## Crypto backends: one signature verification in V8",
        "",
        "Written by `bench/crypto.py`: `examples/crypto_bench.rs` built for wasm32-wasip1 (release, "
        f"opt-level 3) and run by Node {version} (V8, the engine Envoy runs the plugin in) through WASI, "
        f"{args.rounds} rounds of {args.iterations} verifications of the RFC 7515 A.2 (RS256, RSA-2048) and "
        "A.3 (ES256) vectors; median µs per verification, with the range over rounds.",
        "",
    ]
    if args.busy:
        lines += ["**Measured on a busy shared machine (other agents building): ratios hold better than "
                  "absolute numbers.**", ""]
    lines += ["| algorithm | backend | µs per verify (median) | range |", "|---|---|---:|---:|"]
    for name, values in runs.items():
        alg, backend = name.split()
        lines.append(f"| {alg} | {backend} | {statistics.median(values):,.0f} | "
                     f"{min(values):,.0f}–{max(values):,.0f} |")
    lines += ["", "`plugin` is what the plugin runs as built: ring for RSA (src/keys/rsa_ring.rs) "
              "and for ES256 (src/keys/ecdsa/es256_ring.rs).", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        report_section.replace_section("crypto", text, REPO_ROOT / "BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
