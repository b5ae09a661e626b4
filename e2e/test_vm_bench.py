"""bench/vm_bench.mjs (make vm-bench) runs the release module in Node's V8
behind its JavaScript proxy-wasm host: a short run forwards every request
and reports the host calls it counted, and a token the plugin refuses makes
it exit non-zero (a wrong configuration must not look fast). No Envoy."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import vm_bench_tokens  # noqa: E402  (bench/vm_bench_tokens.py)

TOKENS = 40
REQUESTS = 2000


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node not found (bench/vm_bench.mjs runs in Node 20)", pytrace=False)
    return path


def make_inputs(out: Path, foreign: int = 0) -> Path:
    assert vm_bench_tokens.main(["--out-dir", str(out), "--count", str(TOKENS), "--foreign", str(foreign)]) == 0
    return out


def run_bench(wasm: Path, inputs: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [node(), str(BENCH / "vm_bench.mjs"), str(wasm), "--config", str(inputs / "config.json"),
         "--tokens", str(inputs / "tokens.txt"), "--requests", str(REQUESTS), "--rounds", "1",
         "--slice", "500", *extra],
        capture_output=True, text=True, timeout=60,
    )


def test_every_request_is_forwarded_and_counted(wasm: Path, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "inputs")
    summary_file = tmp_path / "summary.json"
    done = run_bench(wasm, inputs, "--baseline-config", str(inputs / "config-auth-off.json"),
                     "--json", str(summary_file))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(summary_file.read_text())

    auth = summary["configs"]["auth"]
    # The warm pass (each token once) and the timed round, all forwarded.
    assert auth["outcomes"] == {"forwarded": TOKENS + REQUESTS}
    # The warm pass verified each token; the round found each in the cache.
    assert auth["metrics"]["edge_auth_cache_misses"] == TOKENS
    assert auth["metrics"]["edge_auth_cache_hits"] == REQUESTS
    # One header-map read per request, and the consumer's header set on it.
    assert auth["host_calls_per_request"]["proxy_get_header_map_pairs"] == 1
    assert auth["host_calls_per_request"]["proxy_replace_header_map_value"] >= 1
    assert auth["bytes_into_vm_per_request"] > 600  # the headers, token included
    assert auth["median_cpu_ns_per_request"] > 0
    # The one import the bench host leaves out, never called here.
    assert auth["unimplemented_imports"] == ["env.proxy_http_call"]
    assert "proxy_http_call" not in auth["host_calls_per_request"]

    off = summary["configs"]["auth off"]
    assert off["outcomes"] == {"forwarded": TOKENS + REQUESTS}
    assert "edge_auth_cache_hits" not in off["metrics"]
    assert "auth_over_off_ns_per_request" in summary
    assert "[auth]" in done.stdout and "[auth off]" in done.stdout
    assert "host calls per request" in done.stdout


def test_a_refused_token_fails_the_bench(wasm: Path, tmp_path: Path) -> None:
    # The last token is signed by a key the configuration does not hold.
    inputs = make_inputs(tmp_path / "inputs", foreign=1)
    summary_file = tmp_path / "summary.json"
    done = run_bench(wasm, inputs, "--json", str(summary_file))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 request(s) not forwarded during the warm pass" in done.stderr
    assert '"local 401":1' in done.stderr
    assert '"forwarded":39' in done.stderr
    # The plugin's own log says why (collected through proxy_log).
    assert "plugin log" in done.stderr
    assert not summary_file.exists()


def test_a_refused_configuration_fails_loudly(wasm: Path, tmp_path: Path) -> None:
    inputs = make_inputs(tmp_path / "inputs")
    # A consumer with no credentials at all.
    (inputs / "config.json").write_text(json.dumps({"consumers": [{"name": "x"}]}))
    done = run_bench(wasm, inputs)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "proxy_on_configure returned 0 (configuration refused)" in done.stderr
    # The plugin's own log line, printed.
    assert "a consumer needs client_id and client_secret" in done.stderr
