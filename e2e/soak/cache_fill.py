"""The verified-token cache filled to its budget before the load, and Envoy's
resident memory then against the budget the README documents (issue 10:
"RSS with a full cache stays within the documented budget").

New gateway tokens (a fresh ``jti`` each: a new cache entry each) are sent
in batches until two batches in a row evicted at least 90% as many entries
as they added: with one worker's cache still filling, about half of a
batch would have been kept (Envoy spreads connections over its workers),
so that ratio says every worker's cache is full. The budget (README,
"Performance"): ``token_cache_bytes`` per worker for the local caches, plus
the shared ring, ``token_cache_bytes / 512`` slots of typically at most 600
bytes, once per gateway."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from envoy_process import envoy_pid, rss_kb

from soak.services import Gateway
from soak.workers import LoadProcesses

FILL_KIND = "gateway token never sent before (cache fill)"
BATCH = 10_000  # new tokens per batch
FULL_SHARE = 0.9  # a batch that evicted this share of its answered requests found the caches full
FULL_BATCHES = 2  # in a row
# The plugin's defaults and the shared ring's sizing (README, src/verified/):
TOKEN_CACHE_BYTES = 16 * 1024 * 1024  # token_cache_bytes (the soak's configuration keeps the default)
TOKEN_CACHE_SIZE = 100_000  # token_cache_size: no worker's cache holds more entries than this
# Give up (the check fails) after this many tokens per worker: past it a cache
# that never evicts is being emptied by something else.
MAX_TOKENS_PER_WORKER = int(1.5 * TOKEN_CACHE_SIZE)
BYTES_PER_SLOT = 512  # shared ring: one slot per 512 bytes of token_cache_bytes
MAX_SLOTS = 1 << 17
RING_SLOT_BYTES = 600  # README: a slot holds typically 300-600 bytes


@dataclass
class CacheFill:
    workers: int
    token_cache_bytes: int = TOKEN_CACHE_BYTES
    sent: int = 0
    answered: int = 0
    batches: list[tuple[int, int]] = field(default_factory=list)  # (answered, evictions) per batch
    full: bool = False
    seconds: float = 0.0
    rss_before_kb: int | None = None
    rss_after_kb: int | None = None

    @property
    def ring_slots(self) -> int:
        return min(self.token_cache_bytes // BYTES_PER_SLOT, MAX_SLOTS)

    @property
    def budget_bytes(self) -> int:
        return self.workers * self.token_cache_bytes + self.ring_slots * RING_SLOT_BYTES

    @property
    def growth_bytes(self) -> int | None:
        if self.rss_before_kb is None or self.rss_after_kb is None:
            return None
        return (self.rss_after_kb - self.rss_before_kb) * 1024

    @property
    def ok(self) -> bool:
        return self.full and self.growth_bytes is not None and self.growth_bytes <= self.budget_bytes

    def describe(self) -> str:
        mib = 1024 * 1024
        growth = self.growth_bytes
        budget = (f"budget {self.budget_bytes / mib:.1f} MiB = {self.workers} workers × "
                  f"{self.token_cache_bytes / mib:.0f} MiB token_cache_bytes + {self.ring_slots:,} shared ring "
                  f"slots × {RING_SLOT_BYTES} B")
        evicted = sum(e for _, e in self.batches)
        fill = (f"{self.sent:,} new gateway tokens in {self.seconds:.0f} s, {evicted:,} entries evicted; "
                + ("every worker's cache full (the last "
                   f"{FULL_BATCHES} batches evicted ≥ {FULL_SHARE:.0%} as many entries as they added)"
                   if self.full else f"caches NOT seen full (a worker's cache holds at most {TOKEN_CACHE_SIZE:,} "
                   "entries: something empties them)"))
        if growth is None:
            return f"{fill}; RSS not read; {budget}"
        return (f"{fill}; Envoy RSS {self.rss_before_kb / 1024:.1f} → {self.rss_after_kb / 1024:.1f} MiB: "
                f"+{growth / mib:.1f} MiB of a {budget}")


def evictions(gw: Gateway) -> int:
    return gw.stats("wasmcustom.edge_auth_cache_evictions").get("wasmcustom.edge_auth_cache_evictions", 0)


def fill_cache(load: LoadProcesses, gw: Gateway, workers: int, connections: int) -> CacheFill:
    pid = envoy_pid(gw.envoy.pid) or gw.envoy.pid
    out = CacheFill(workers=workers)
    out.rss_before_kb = rss_kb(pid)
    t0 = time.monotonic()
    before = evictions(gw)
    streak = 0
    while out.sent < MAX_TOKENS_PER_WORKER * workers and streak < FULL_BATCHES:
        answered = load.fill(FILL_KIND, BATCH, connections)
        out.sent += -(-BATCH // load.count) * load.count
        out.answered += answered
        now = evictions(gw)
        out.batches.append((answered, now - before))
        streak = streak + 1 if answered and now - before >= FULL_SHARE * answered else 0
        before = now
        print(f"soak: cache fill: {out.sent:,} new tokens, this batch evicted {out.batches[-1][1]:,}", flush=True)
    out.full = streak >= FULL_BATCHES
    out.seconds = time.monotonic() - t0
    time.sleep(1.0)  # (freed buffers of the last requests go back)
    out.rss_after_kb = rss_kb(pid)
    return out
