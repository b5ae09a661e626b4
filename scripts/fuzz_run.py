#!/usr/bin/env python3
"""`make fuzz` / `make fuzz-short`: every cargo-fuzz target for a bounded time.

Runs `cargo fuzz run <target> -- -max_total_time=<seconds>` for each target
in fuzz/Cargo.toml, one after the other, and stops at the first target that
finds a crash (libFuzzer exits non-zero and leaves the input in
fuzz/artifacts/<target>/; turn it into a regression test before fixing).
With --report, the runs, speed and corpus sizes go into the `fuzz` section of
BENCHMARKS.md. The toolchain is stable; RUSTC_BOOTSTRAP=1 lets it take
cargo-fuzz's nightly-only flags (-Zsanitizer=address).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = REPO_ROOT / "fuzz"
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import report_section  # noqa: E402

DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def targets() -> list[str]:
    text = (FUZZ_DIR / "Cargo.toml").read_text()
    return re.findall(r'\[\[bin\]\]\s*\nname\s*=\s*"([^"]+)"', text)


def run(target: str, seconds: int) -> dict:
    corpus = FUZZ_DIR / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    cmd = ["cargo", "fuzz", "run", target, str(corpus)]
    seeds = FUZZ_DIR / "seeds" / target
    if seeds.is_dir():
        cmd.append(str(seeds))  # read-only extra corpus
    cmd += ["--", f"-max_total_time={seconds}", "-print_final_stats=1"]
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=FUZZ_DIR, env=env, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    done = DONE.search(output)
    return {
        "target": target,
        "ok": proc.returncode == 0,
        "runs": int(done.group(1)) if done else 0,
        "seconds": int(done.group(2)) if done else round(time.monotonic() - started),
        "corpus": sum(1 for _ in corpus.iterdir()),
        "tail": "\n".join(output.strip().splitlines()[-25:]),
    }


def report(results: list[dict], seconds: int) -> None:
    md = [
        "## Fuzzing",
        "",
        f"Written by `make fuzz` (`scripts/fuzz_run.py`) on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}: "
        f"each cargo-fuzz target (libFuzzer, AddressSanitizer) for {seconds}s on one core, corpus kept "
        "between runs in `fuzz/corpus/` (not committed). `make test` runs the same targets for 5s each.",
        "",
        "| target | what it feeds | runs | runs/s | corpus files | result |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        rate = r["runs"] / r["seconds"] if r["seconds"] else 0
        md.append(
            f"| `{r['target']}` | {WHAT.get(r['target'], '')} | {r['runs']:,} | {rate:,.0f} | {r['corpus']:,} | "
            f"{'no crash' if r['ok'] else '**crash** (see fuzz/artifacts)'} |"
        )
    md.append("")
    report_section.replace_section("fuzz", "\n".join(md))


WHAT = {
    "config": "plugin configuration bytes (JSON parsing, validation, compile)",
    "tokens": "bearer tokens against gateway and JWT consumers (every key kind)",
    "jwks": "JWKS documents, then a verification with each key",
    "cookies": "Cookie headers: split-cookie join, sealed session open",
    "forms": "query strings, form bodies, Basic and Bearer headers",
    "redirects": "post-login / sign-out redirect targets (asserts no open redirect)",
    "canonical": "request paths and authorities (canonical view: idempotent, no dot segments, equivalent spellings agree)",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--report", action="store_true", help="write the fuzz section of BENCHMARKS.md")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 3600:
        ap.error("--seconds must be 1..3600")
    results = []
    for target in targets():
        print(f"fuzz: {target} for {args.seconds}s", flush=True)
        result = run(target, args.seconds)
        results.append(result)
        print(f"fuzz: {target}: {result['runs']:,} runs, corpus {result['corpus']}, "
              f"{'ok' if result['ok'] else 'CRASH'}", flush=True)
        if not result["ok"]:
            print(result["tail"], file=sys.stderr)
            break
    if args.report:
        report(results, args.seconds)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
