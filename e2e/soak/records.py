"""What every part of the soak writes down: one :class:`Result` per request,
the :class:`Probe` of each request that must not reach the upstream, and the
:class:`Timeline` of the faults (when each one began and ended, what it
changed). The verdict and the report read only these."""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field

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

    def now(self) -> float:
        return time.monotonic() - self.start

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


@dataclass
class Timeline:
    """When the faults happened, and the key events the verdict needs."""

    faults: list[Fault] = field(default_factory=list)
    # [down at, back at]: when IdP-dependent requests may fail
    idp_disturbed: list[list[float | None]] = field(default_factory=list)
    idp_restarts: list[float] = field(default_factory=list)  # when the IdP stopped (it forgets its grants)
    key_generation: int = 0
    rotated_at: float | None = None
    rotation_accepted_after: float | None = None
    revoked_at: float | None = None  # the IdP serves the JWKS without the revocable key
    revocation_deadline: float | None = None  # its tokens must be refused from then on
    first_revoked_refusal: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        with self.lock:
            return any(r > t for r in self.idp_restarts)

    def idp_trouble(self, t0: float, t1: float, grace: float) -> bool:
        """The IdP was down or slow at some time within [t0 - grace, t1 + grace]."""
        with self.lock:
            spans = list(self.idp_disturbed)
        return any(t0 <= (up if up is not None else float("inf")) + grace and t1 >= down - grace
                   for down, up in spans)
