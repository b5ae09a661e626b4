"""Envoy watched while the soak runs: resident memory and tcmalloc's
figures every SAMPLE_SECONDS, what Envoy holds at that moment (connections
and requests, downstream and to each cluster: what its heap grows with),
the process alive, and its log free of wasm failures (a panic, a failed VM,
a plugin that fails closed)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from envoy_process import envoy_pid, rss_kb

from soak.records import Ledger, error_note
from soak.services import Gateway

SAMPLE_SECONDS = 5.0
# What Envoy holds when a sample is taken: its heap grows with connections
# and streams (buffers, codecs), so a fault that makes answers slow shows
# here before it shows in the heap. Gauges, read with one admin call.
HELD = {
    "downstream_cx": "http.ingress_http.downstream_cx_active",
    "downstream_rq": "http.ingress_http.downstream_rq_active",
    "echo_cx": "cluster.echo.upstream_cx_active",
    "echo_rq": "cluster.echo.upstream_rq_active",
    "idp_cx": "cluster.idp.upstream_cx_active",
    "idp_rq": "cluster.idp.upstream_rq_active",
    "idp_pending": "cluster.idp.upstream_rq_pending_active",
}
# Plugin counters sampled with them (what the plugin was doing meanwhile).
COUNTERS = ("sso_refreshes", "sso_refresh_failed", "sso_refresh_deferred", "token_body_waits", "jwks_fetch_ok",
            "jwks_fetch_failed", "cache_misses")
_STATS_FILTER = "^(" + "|".join(v.replace(".", "\\.") for v in HELD.values()) + "|wasmcustom\\.edge_auth_(" + \
    "|".join(COUNTERS) + "))$"
WASM_FAILURE = re.compile(
    r"Function: \S+ failed|Wasm VM failed|panicked at|\]\[critical\]|Plugin configured to fail closed"
    r"|wasm vm .*(crash|restart)|Failed to load Wasm", re.I)


@dataclass
class Sample:
    t: float
    rss_kb: int
    allocated: int | None  # tcmalloc: bytes in use
    heap_size: int | None  # tcmalloc: bytes reserved
    unmapped: int | None = None  # tcmalloc: reserved bytes given back to the OS
    held: dict[str, int] | None = None  # HELD name -> gauge; "edge_auth_" + COUNTERS -> counter

    @property
    def heap_resident_kb(self) -> int | None:
        """Envoy's heap as resident memory (reserved minus given back):
        what its allocator holds, in use or kept free for reuse."""
        if self.heap_size is None or self.unmapped is None:
            return None
        return (self.heap_size - self.unmapped) // 1024

    @property
    def outside_heap_kb(self) -> int | None:
        """RSS outside Envoy's heap: the wasm VMs' linear memory and
        code, the binary, stacks."""
        heap = self.heap_resident_kb
        return None if heap is None else self.rss_kb - heap


class Monitor(threading.Thread):
    def __init__(self, gw: Gateway, ledger: Ledger, stop: threading.Event, interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(name="monitor", daemon=True)
        self.interval = interval
        self.gw = gw
        self.ledger = ledger
        self.stop_event = stop
        self.samples: list[Sample] = []
        self.failures: list[str] = []
        self.log_offset = 0
        self.pid: int | None = None
        self.alive = True
        self.progress = None  # called every 30 s with the monitor

    def run(self) -> None:
        every = max(1, round(30 / self.interval))  # progress every 30 s
        rounds = 0
        while self.alive and not self.stop_event.wait(self.interval):
            self.alive = self.check()
            rounds += 1
            if self.progress and rounds % every == 0:
                self.progress(self)

    def sample(self) -> None:
        if self.pid is None:
            self.pid = envoy_pid(self.gw.envoy.pid) or self.gw.envoy.pid
        rss = rss_kb(self.pid)
        try:
            memory = json.loads(self.gw.admin("/memory"))
            allocated, heap = int(memory["allocated"]), int(memory["heap_size"])
            unmapped = int(memory.get("pageheap_unmapped", 0))
        except (OSError, ValueError, KeyError):
            allocated = heap = unmapped = None
        self.samples.append(Sample(self.ledger.now(), rss, allocated, heap, unmapped, self.held()))

    def held(self) -> dict[str, int] | None:
        try:
            stats = self.gw.stats_matching(_STATS_FILTER)
        except (OSError, ValueError):
            return None
        out = {name: stats.get(stat, 0) for name, stat in HELD.items()}
        out.update({name: stats.get(f"wasmcustom.edge_auth_{name}", 0) for name in COUNTERS})
        return out

    def write_csv(self, path: Path) -> None:
        names = list(HELD) + list(COUNTERS)
        rows = [",".join(["seconds", "rss_kb", "allocated", "heap_size", "pageheap_unmapped", *names])]
        for s in self.samples:
            held = [str((s.held or {}).get(n, "")) for n in names]
            rows.append(",".join([f"{s.t:.1f}", str(s.rss_kb), str(s.allocated), str(s.heap_size), str(s.unmapped),
                                  *held]))
        path.write_text("\n".join(rows) + "\n")

    def scan_log(self) -> None:
        with open(self.gw.envoy.log_path, "rb") as f:
            f.seek(self.log_offset)
            chunk = f.read()
        cut = chunk.rfind(b"\n") + 1  # whole lines only
        self.log_offset += cut
        for line in chunk[:cut].decode("utf-8", "replace").splitlines():
            if WASM_FAILURE.search(line):
                self.failures.append(line[:300])

    def check(self) -> bool:
        """One round; False when Envoy is gone."""
        self.scan_log()
        if not self.gw.envoy.running():
            self.failures.append(f"envoy exited with {self.gw.envoy.returncode}")
            return False
        try:
            self.sample()
        except (OSError, ValueError) as e:
            self.failures.append(f"cannot sample memory: {error_note(e)}")
            return False
        return True
