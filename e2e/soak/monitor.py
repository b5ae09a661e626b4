"""Envoy watched while the soak runs: resident memory and tcmalloc's
figures every SAMPLE_SECONDS, the process alive, and its log free of wasm
failures (a panic, a failed VM, a plugin that fails closed)."""

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
    def __init__(self, gw: Gateway, ledger: Ledger, stop: threading.Event) -> None:
        super().__init__(name="monitor", daemon=True)
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
        rounds = 0
        while self.alive and not self.stop_event.wait(SAMPLE_SECONDS):
            self.alive = self.check()
            rounds += 1
            if self.progress and rounds % 6 == 0:
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
        self.samples.append(Sample(self.ledger.now(), rss, allocated, heap, unmapped))

    def write_csv(self, path: Path) -> None:
        rows = ["seconds,rss_kb,allocated,heap_size,pageheap_unmapped"]
        rows += [f"{s.t:.1f},{s.rss_kb},{s.allocated},{s.heap_size},{s.unmapped}" for s in self.samples]
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
