"""bench/run.py's co-scheduled rounds (make bench decides its goals with
them) and its --ab-wasm twins, run for real but tiny: real Envoys, real wrk,
one-second runs. Nothing here asserts a speed; the tests check that the
rounds happen, are reported round by round, and that the verdict line comes
from them. A pure test checks the ratio's direction."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import run as bench_run  # noqa: E402  (bench/run.py)

PAIRED_ROUNDS = 2


def result(requests: int, cpu_s: float, seconds: float = 1.0) -> bench_run.WrkResult:
    return bench_run.WrkResult(requests=requests, seconds=seconds, rps=requests / seconds, p50_ms=1.0,
                               p99_ms=2.0, non_2xx=0, socket_errors={}, client_cpu=0.1, server_cpu_s=cpu_s,
                               other_load=0.0, output="")


def test_efficiency_is_the_reference_cpu_per_request_over_the_rows() -> None:
    # The row spends 100 µs per request, its reference 80: the row does 80%
    # of the reference's requests per CPU-second, whatever the req/s were.
    pair = bench_run.Paired("row", "ref", runs=[(result(1000, 0.100), result(1000, 0.080)),
                                                (result(500, 0.050), result(2000, 0.160))])
    assert pair.efficiency() == pytest.approx([0.8, 0.8])
    assert pair.rps() == pytest.approx([1.0, 0.25])
    text = pair.describe()
    assert text.startswith("80.0% co-scheduled"), text
    assert "median of 2 rounds: 80% / 80%" in text, text


def test_goal_lines_take_the_co_scheduled_verdict() -> None:
    target = next(t for t in bench_run.TARGETS if t.min_ratio == 1.0)
    rows = []
    for name, (requests, cpu) in ((target.scenario, (1000, 0.090)), (target.reference, (900, 0.100))):
        scenario = next(s for s in bench_run.SCENARIOS if s.name == name)
        # Sequentially the row looks faster (1000 vs 900 req/s) ...
        rows.append(bench_run.Row(scenario, runs=[result(requests, cpu)]))
    # ... but side by side it costs more CPU per request: not met.
    pair = bench_run.Paired(target.scenario, target.reference,
                            runs=[(result(1000, 0.110), result(1000, 0.100))])
    line = next(x for x in bench_run.target_lines(rows, [pair]) if x.startswith(f"Target: {target.scenario}"))
    assert "**NOT met**: 90.9% co-scheduled" in line, line
    assert "Sequential rounds: 111.1%" in line, line


def test_a_short_run_reports_co_scheduled_rounds_and_ab_twins(wasm: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk not found (`make e2e` installs it)", pytrace=False)
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--no-write", "--only", "HS256, cache on",
         "--rounds", "1", "--duration", "1", "--warmup", "0", "--paired-rounds", str(PAIRED_ROUNDS),
         "--paired-duration", "1", "--connections", "4", "--ab-wasm", str(wasm)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    # Two pairs (the goal, and the [B] twin against its A row), each round.
    for rnd in range(1, PAIRED_ROUNDS + 1):
        assert f"co-scheduled round {rnd} edge-auth HS256, cache on vs jwt_authn HS256, cache on:" in out, out
        assert f"co-scheduled round {rnd} edge-auth HS256, cache on [B] vs edge-auth HS256, cache on:" in out, out
    goal = next(x for x in done.stdout.splitlines()
                if x.startswith("Target: edge-auth HS256, cache on throughput"))
    assert f"co-scheduled (requests per CPU-second, median of {PAIRED_ROUNDS} rounds:" in goal, goal
    assert "Sequential rounds:" in goal, goal
    ab = next(x for x in done.stdout.splitlines() if x.startswith("A/B: edge-auth HS256, cache on [B]"))
    assert f"median of {PAIRED_ROUNDS} rounds" in ab, ab
