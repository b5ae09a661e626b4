"""What every part of the soak writes down: one :class:`Result` per request,
the :class:`Probe` of each request that must not reach the upstream, and the
:class:`Timeline` of the faults (when each one began and ended, what it
changed). The verdict and the report read only these."""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

PASS, DENY = "must pass", "must be denied"
# A revoked key's tokens between the revocation and the refresh deadline:
# served (as the right consumer) or refused are both correct.
EITHER = "pass or deny (revocation window)"
# Where a probe may show up at the upstream.
REACHES, NEVER, CLEAN = "reaches", "never", "clean"
WRONG_IDENTITY = "served as another consumer"
REACHES_SUFFIX = "-r"  # ends the probe of a request that may reach the upstream


def error_note(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:120]}"


@dataclass(slots=True)
class Result:
    kind: str
    expect: str  # PASS / DENY / EITHER
    t0: float  # when it was due (open loop: its scheduled time), seconds since the held load began
    t1: float  # when its answer was complete
    status: int | None  # None: no HTTP answer (the note says why)
    ok: bool  # the answer was a right one
    let_through: bool = False  # a must-be-denied request was served, or served as another consumer
    note: str = ""


@dataclass(slots=True)
class Probe:
    kind: str
    upstream: str  # NEVER / CLEAN (REACHES probes are not kept)


class Ledger:
    """Every request's result and the probes to look for at the upstream,
    shared by the event loop and the threads. The clock is seconds since the
    held load began (the maximum-throughput burst before it is negative)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.lock = threading.Lock()
        self.results: list[Result] = []
        self.probes: dict[str, Probe] = {}
        self._ids = itertools.count(1)
        self._tag = os.urandom(3).hex()
        # In a load process (soak.workers): shared counters of results and
        # of those not as expected, at tally[tally_at] and tally[tally_at + 1].
        self.tally: Any = None
        self.tally_at = 0

    def fork(self, tally: Any, at: int) -> None:
        """Start afresh in a load process: no results or probes of the
        parent, a probe tag of its own (probes stay unique across processes)."""
        self.lock = threading.Lock()
        self.results, self.probes = [], {}
        self._ids = itertools.count(1)
        self._tag = os.urandom(3).hex()
        self.tally, self.tally_at = tally, at

    def now(self) -> float:
        return time.monotonic() - self.start

    def rebase(self, start: float) -> None:
        """Move the clock's origin to ``start`` (time.monotonic()), the
        results so far with it (they keep their real times)."""
        with self.lock:
            shift = self.start - start
            for r in self.results:
                r.t0 += shift
                r.t1 += shift
            self.start = start

    def new_probe(self, kind: str, upstream: str) -> str:
        """A unique probe value. Those of requests that may reach the
        upstream end in REACHES_SUFFIX: the upstream's recorder keeps every
        other one (see services.EchoProcess), so its memory stays flat."""
        p = f"soak-{self._tag}-{next(self._ids)}{REACHES_SUFFIX if upstream == REACHES else '-x'}"
        if upstream != REACHES:
            with self.lock:
                self.probes[p] = Probe(kind, upstream)
        return p

    def add(self, r: Result) -> None:
        with self.lock:
            self.results.append(r)
        if self.tally is not None:
            self.tally[self.tally_at] += 1
            if not r.ok:
                self.tally[self.tally_at + 1] += 1

    def snapshot(self) -> list[Result]:
        with self.lock:
            return list(self.results)

    def count(self) -> int:
        with self.lock:
            return len(self.results)


@dataclass
class Fault:
    """One fault of the run: ``name`` from ``start`` to ``end`` (seconds of
    the ledger clock; ``end`` None while it lasts)."""

    name: str
    start: float
    end: float | None = None
    detail: str = ""
    ok: bool = True  # carried out as planned and its own check held


# The facts a request's kind depends on when it is made, in shared memory:
# the load processes (soak.workers) read them as the conductor writes them.
FACTS = ("key_generation", "users_generation", "revoked_at", "revocation_deadline", "last_idp_restart")


def _shared_facts() -> Any:
    facts = multiprocessing.RawArray("d", len(FACTS))
    for i, name in enumerate(FACTS):
        facts[i] = 0.0 if name.endswith("generation") else math.nan
    return facts


def _fact(name: str, integer: bool = False) -> property:
    i = FACTS.index(name)

    def get(self: "Timeline"):
        v = self.facts[i]
        if integer:
            return int(v)
        return None if math.isnan(v) else v

    def set_(self: "Timeline", value) -> None:
        self.facts[i] = math.nan if value is None else float(value)
    return property(get, set_)


@dataclass
class Timeline:
    """When the faults happened, and the key events the verdict needs."""

    faults: list[Fault] = field(default_factory=list)
    # [down at, back at]: when IdP-dependent requests may fail
    idp_disturbed: list[list[float | None]] = field(default_factory=list)
    idp_restarts: list[float] = field(default_factory=list)  # when the IdP stopped (it forgets its grants)
    rotation_accepted_after: float | None = None
    rotated_at: float | None = None
    first_revoked_refusal: float | None = None
    facts: Any = field(default_factory=_shared_facts, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    key_generation = _fact("key_generation", integer=True)  # the IdP's current key set
    users_generation = _fact("users_generation", integer=True)  # whose users' tokens are sent
    revoked_at = _fact("revoked_at")  # the IdP serves the JWKS without the revocable key
    revocation_deadline = _fact("revocation_deadline")  # its tokens must be refused from then on

    def idp_restarted(self, at: float) -> None:
        """The IdP stopped at ``at`` (and so forgot every grant)."""
        with self.lock:
            self.idp_restarts.append(at)
            last = self.facts[FACTS.index("last_idp_restart")]
            if math.isnan(last) or at > last:
                self.facts[FACTS.index("last_idp_restart")] = at

    def begin(self, name: str, at: float, detail: str = "") -> Fault:
        f = Fault(name, at, detail=detail)
        with self.lock:
            self.faults.append(f)
        return f

    def disturb(self, at: float) -> list[float | None]:
        span: list[float | None] = [at, None]
        with self.lock:
            self.idp_disturbed.append(span)
        return span

    def restarted_since(self, t: float) -> bool:
        """The IdP stopped (and so forgot every grant: oidc-provider keeps
        them in memory) after ledger time ``t``."""
        return self.facts[FACTS.index("last_idp_restart")] > t  # (NaN: never)

    def idp_trouble(self, t0: float, t1: float, grace: float) -> bool:
        """The IdP was down or slow at some time within [t0 - grace, t1 + grace]."""
        with self.lock:
            spans = list(self.idp_disturbed)
        return any(t0 <= (up if up is not None else float("inf")) + grace and t1 >= down - grace
                   for down, up in spans)
