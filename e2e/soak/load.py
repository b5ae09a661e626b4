"""Driving the mix: a closed-loop burst that measures the most the gateway
serves of it on this machine, then an open-loop schedule that holds a share
of that rate for the run, whatever the answers' latency (a slow answer does
not delay the next request: latencies are measured from when a request was
due, so queueing shows in them)."""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

from soak.client import ConnectionPool
from soak.records import Ledger, error_note
from soak.traffic import Shot, Traffic

ANSWER_TIMEOUT = 20.0  # seconds; beyond it a request is recorded without an answer
MAX_IN_FLIGHT = 3000  # the open loop's bound on outstanding requests (then it records what it skipped)


@dataclass
class LoadStats:
    burst_connections: int = 0
    burst_seconds: float = 0.0
    burst_answers: int = 0
    maximum: float = 0.0  # answers/s in the measured part of the burst
    target: float = 0.0  # the held rate
    held_seconds: float = 0.0
    held_due: int = 0  # requests due in the held schedule
    held_answers: int = 0  # answers (any status) to held requests, in the held window
    skipped_no_material: int = 0
    skipped_backlog: int = 0
    connections_opened: int = 0
    connections_closed_by_envoy: int = 0
    closed_after: collections.Counter = field(default_factory=collections.Counter)  # kind -> "Connection: close"
    resent: int = 0  # requests sent again after a kept-alive connection closed under them
    processes: int = 1  # load processes (soak.workers)
    envoy_cpu_burst: float | None = None  # Envoy CPU seconds per answered request in the measured burst
    envoy_cpu_held: float | None = None  # the same over the held load

    def merge(self, other: "LoadStats") -> None:
        """Add the counts of another load process's share."""
        for name in ("held_due", "held_answers", "skipped_no_material", "skipped_backlog", "connections_opened",
                     "connections_closed_by_envoy", "resent"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.closed_after.update(other.closed_after)
        self.held_seconds = max(self.held_seconds, other.held_seconds)

    @property
    def achieved(self) -> float:
        return self.held_answers / self.held_seconds if self.held_seconds else 0.0


class Load:
    def __init__(self, traffic: Traffic, ledger: Ledger) -> None:
        self.traffic = traffic
        self.ledger = ledger
        self.pool = ConnectionPool(traffic.port)
        self.stats = LoadStats()

    def next_shot(self) -> Shot | None:
        for _ in range(8):
            s = self.traffic.next_shot()
            if s is not None:
                return s
        self.stats.skipped_no_material += 1
        return None

    async def fire(self, s: Shot, due: float) -> float | None:
        """Send ``s`` (due at ledger time ``due``) and record its answer;
        returns when the answer was complete (ledger time), None when none came."""
        conn = None
        try:
            for attempt in (1, 2):
                conn = await self.pool.acquire(fresh=attempt == 2)
                try:
                    answer = await asyncio.wait_for(conn.exchange(s.data, s.rest, s.delay), ANSWER_TIMEOUT)
                    break
                except (asyncio.IncompleteReadError, ConnectionError):
                    # A kept-alive connection Envoy closed just as this
                    # request went out (idle, or its listener drained after a
                    # reload): nothing was answered, so send it again on a
                    # new connection, as HTTP clients do (RFC 9112 9.3.1).
                    conn.close()
                    if attempt == 2 or conn.head_seen or conn.used < 2:  # (used: this request included)
                        raise
                    self.stats.resent += 1
        except Exception as e:  # noqa: BLE001 - no answer: recorded as such
            note = error_note(e)
            if conn is not None:
                conn.close()
                if conn.used > 1:
                    note += (f" (request {conn.used} on its connection, after {conn.last_kind!r} answered "
                             f"{conn.last_status}; answer head {'seen' if conn.head_seen else 'not seen'})")
            t1 = self.ledger.now()
            self.traffic.settle(s, None, due, t1, note)
            return None
        if conn.closed_by_peer:
            self.stats.closed_after[s.kind] += 1
        conn.last_kind, conn.last_status = s.kind, answer.status
        self.pool.release(conn)
        t1 = self.ledger.now()
        try:
            self.traffic.settle(s, answer, due, t1)
        except Exception as e:  # noqa: BLE001 - a bug in a check is an unexplained result, not a dead load
            self.traffic.settle(s, None, due, t1, f"soak check error: {error_note(e)}")
        return t1

    async def burst(self, connections: int, t_measure: float, t_end: float) -> int:
        """Closed loop: ``connections`` clients each send the next request
        as soon as the last is answered, until ``t_end`` (time.monotonic());
        returns the answers that came from ``t_measure`` on."""
        counted = 0

        async def client() -> None:
            nonlocal counted
            while time.monotonic() < t_end:
                s = self.next_shot()
                if s is None:
                    await asyncio.sleep(0.01)
                    continue
                answered = await self.fire(s, self.ledger.now())
                now = time.monotonic()
                if answered is not None and t_measure <= now <= t_end:
                    counted += 1

        await asyncio.gather(*(client() for _ in range(connections)))
        return counted

    async def closed(self, shots: list[Shot], connections: int) -> int:
        """Send every one of ``shots`` over ``connections`` closed-loop
        clients; returns how many were answered."""
        pending = iter(shots)
        answered = 0

        async def client() -> None:
            nonlocal answered
            for s in pending:
                if await self.fire(s, self.ledger.now()) is not None:
                    answered += 1

        await asyncio.gather(*(client() for _ in range(connections)))
        return answered

    async def hold(self, rate: float, seconds: float, share: tuple[int, int] = (0, 1),
                   max_in_flight: int = MAX_IN_FLIGHT) -> None:
        """Open loop: a request due every 1/``rate`` s from ledger time 0
        to ``seconds``, each sent when due on a free (or new) connection.
        ``share`` (i, n): this process sends the i-th of every n of them
        (the others are another process's)."""
        st = self.stats
        index, count = share
        st.target, interval = rate, count / rate
        in_flight: set[asyncio.Task] = set()
        answered = 0

        def done(task: asyncio.Task) -> None:
            nonlocal answered
            in_flight.discard(task)
            if not task.cancelled() and task.exception() is None:
                t1 = task.result()
                if t1 is not None and t1 <= seconds:
                    answered += 1

        start = max(0.0, self.ledger.now())
        due = start + index / rate
        while due < seconds:
            now = self.ledger.now()
            while due <= now and due < seconds:
                st.held_due += 1
                if len(in_flight) >= max_in_flight:
                    st.skipped_backlog += 1
                else:
                    s = self.next_shot()
                    if s is not None:
                        task = asyncio.ensure_future(self.fire(s, due))
                        in_flight.add(task)
                        task.add_done_callback(done)
                due += interval
            await asyncio.sleep(max(0.0, due - self.ledger.now()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=ANSWER_TIMEOUT + 5)
        st.held_seconds = min(seconds, self.ledger.now()) - start
        st.held_answers = answered
        st.connections_opened = self.pool.opened
        st.connections_closed_by_envoy = self.pool.closed_by_peer
        self.pool.close()
