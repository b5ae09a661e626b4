#!/usr/bin/env python3
"""`make size`: the .wasm size and speed at each candidate opt-level.

Builds the plugin for wasm32-wasip1 with the release profile (LTO, one
codegen unit, panic=abort, stripped) at opt-level 3, "s" and "z", each into
its own target directory, and runs the two edge-auth bench rows whose cost is
the plugin's own code (HS256, and RS256 with the verified-token cache off, an
RSA verification per request) against each build, in interleaved short rounds. The
result goes into the `size` section of BENCHMARKS.md; the opt-level the
project ships is the one in Cargo.toml's [profile.release].
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import report_section  # noqa: E402

LEVELS = ["3", "s", "z"]
ROWS = ["edge-auth HS256, cache on", "edge-auth RS256, cache off"]
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def shipped_level() -> str:
    text = (REPO_ROOT / "Cargo.toml").read_text()
    profile = text.split("[profile.release]", 1)[1].split("\n[", 1)[0]
    m = re.search(r'^opt-level\s*=\s*"?([0-9sz])"?', profile, re.M)
    return m.group(1) if m else "3"


def build(level: str) -> Path:
    target_dir = REPO_ROOT / "target" / f"size-opt-{level}"
    env = dict(os.environ, CARGO_PROFILE_RELEASE_OPT_LEVEL=level, CARGO_TARGET_DIR=str(target_dir))
    subprocess.run(
        ["cargo", "build", "--release", "--lib", "--target", "wasm32-wasip1", "--quiet"],
        cwd=REPO_ROOT, env=env, check=True,
    )
    return target_dir / "wasm32-wasip1" / "release" / "edge_auth.wasm"


def bench(wasm: Path, seconds: int) -> dict[str, str]:
    """req/s of ROWS with this .wasm, from a throwaway bench report."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.md"
        cmd = [str(PYTHON), "bench/run.py", "--rounds", "1", "--duration", str(seconds), "--output", str(out)]
        for row in ROWS:
            cmd += ["--only", row]
        subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, EDGE_AUTH_WASM=str(wasm)), check=True)
        rates = {}
        for line in out.read_text().splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) > 1 and cells[0] in ROWS:
                rates[cells[0]] = cells[1]
        return rates


def median_rate(samples: list[str]) -> str:
    values = sorted(float(v.replace(",", "")) for v in samples)
    return f"{statistics.median(values):,.0f}" if values else "n/a"


def main() -> int:
    seconds = int(os.environ.get("SIZE_BENCH_SECONDS", "8"))
    rounds = int(os.environ.get("SIZE_BENCH_ROUNDS", "3"))
    shipped = shipped_level()
    builds = {}
    for level in LEVELS:
        print(f"size: building opt-level={level}", flush=True)
        builds[level] = build(level)
    # Rounds interleave the builds, so a noisy minute hurts all of them.
    samples: dict[str, dict[str, list[str]]] = {level: {r: [] for r in ROWS} for level in LEVELS}
    for round_no in range(1, rounds + 1):
        for level in LEVELS:
            for row, rate in bench(builds[level], seconds).items():
                samples[level][row].append(rate)
            print(f"size: round {round_no} opt-level={level}: {samples[level]}", flush=True)
    results = []
    for level in LEVELS:
        data = builds[level].read_bytes()
        rates = {row: median_rate(samples[level][row]) for row in ROWS}
        results.append((level, len(data), len(gzip.compress(data, 9)), rates))

    md = [
        "## .wasm size by opt-level",
        "",
        f"Written by `make size` (`scripts/size_report.py`) on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}. "
        "Release profile: `lto = true`, `codegen-units = 1`, `panic = \"abort\"`, `strip = true`; only "
        f"`opt-level` changes. Throughput: median of {rounds} interleaved {seconds}s `make bench` rounds of "
        "the rows below per build (same machine, same run; compare within this table, not with the "
        "throughput section).",
        "",
        "| opt-level | .wasm bytes | gzip -9 bytes | " + " | ".join(f"{r} req/s" for r in ROWS) + " |",
        "|---|---:|---:|" + "---:|" * len(ROWS),
    ]
    for level, size, gz, rates in results:
        mark = " (shipped)" if level == shipped else ""
        md.append(
            f"| `{level}`{mark} | {size:,} | {gz:,} | " + " | ".join(rates.get(r, "n/a") for r in ROWS) + " |"
        )
    md += ["", "The shipped level is the one in Cargo.toml's `[profile.release]`; the comment there says why.", ""]
    report_section.replace_section("size", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
