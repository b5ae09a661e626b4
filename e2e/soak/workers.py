"""The load in several processes. One Python process cannot make and judge
the mix as fast as Envoy answers it on this machine (a 10-minute run held
53% of the maximum that same process measured, with 21,046 requests it
never sent), so the burst and the held schedule are split over ``count``
forked processes, each with its own event loop, connections and share of
the open-loop schedule (the i-th of every ``count`` requests due).

The processes are forked once the set-up is done (users' tokens signed,
pools filled), before any other thread starts. What changes later comes to
them from this process: the facts a request's kind depends on through
shared memory (``records.Timeline.facts``: read when each request is made),
new IdP tokens and key sets to all of them and each new SSO session to one
of them through a pipe (``Traffic.to_all`` / ``Traffic.to_one``). At the end
their results, probes, users sent and counters are merged into this
process's ledger, so the verdict sees one run."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import threading
import time
from typing import Any

from soak.load import MAX_IN_FLIGHT, Load, LoadStats
from soak.records import Ledger, Probe, Result
from soak.traffic import Traffic, fill_shot


def _child(index: int, traffic: Traffic, ledger: Ledger, commands, material, tally) -> None:
    ledger.fork(tally, 2 * index)

    def take() -> None:
        while True:
            try:
                what, value = material.recv()
            except (EOFError, OSError):
                return
            traffic.take(what, value)

    threading.Thread(target=take, name="material", daemon=True).start()
    loop = asyncio.new_event_loop()
    load = Load(traffic, ledger)
    while True:
        try:
            msg = commands.recv()
        except (EOFError, OSError):
            return
        what = msg[0]
        if what == "fill":
            _, kind, count, connections = msg
            shots = [fill_shot(traffic, kind) for _ in range(count)]
            commands.send(loop.run_until_complete(load.closed(shots, connections)))
        elif what == "burst":
            _, start, connections, t_measure, t_end = msg
            ledger.rebase(start)
            commands.send(loop.run_until_complete(load.burst(connections, t_measure, t_end)))
        elif what == "hold":
            _, rate, seconds, share, max_in_flight = msg
            loop.run_until_complete(load.hold(rate, seconds, share, max_in_flight))
            commands.send("held")
        elif what == "results":
            results = [(r.kind, r.expect, r.t0, r.t1, r.status, r.ok, r.let_through, r.note)
                       for r in ledger.snapshot()]
            probes = {p: (v.kind, v.upstream) for p, v in ledger.probes.items()}
            commands.send((results, probes, traffic.users.sent, load.stats))
            return


class LoadProcesses:
    """``count`` forked load processes driving ``traffic``'s mix."""

    def __init__(self, traffic: Traffic, ledger: Ledger, count: int) -> None:
        self.traffic, self.ledger, self.count = traffic, ledger, count
        self.stats = LoadStats(processes=count)
        self.tally: Any = multiprocessing.RawArray("q", 2 * count)  # per process: results, not as expected
        self.lock = threading.Lock()
        self.load_over = False  # set once the results are collected
        self.next_one = itertools.cycle(range(count))
        ctx = multiprocessing.get_context("fork")
        self.commands, self.material, self.procs = [], [], []
        for i in range(count):
            cmd, cmd_child = ctx.Pipe()
            mat_child, mat = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(i, traffic, ledger, cmd_child, mat_child, self.tally),
                            name=f"soak-load-{i}", daemon=True)
            p.start()
            cmd_child.close()
            mat_child.close()
            self.commands.append(cmd)
            self.material.append(mat)
            self.procs.append(p)
        traffic.to_all, traffic.to_one = self.to_all, self.to_one

    def to_all(self, what: str, value: object) -> None:
        with self.lock:
            if self.load_over:
                return
            for conn in self.material:
                conn.send((what, value))

    def to_one(self, what: str, value: object) -> None:
        with self.lock:
            if self.load_over:
                return
            self.material[next(self.next_one)].send((what, value))

    def answers(self) -> int:
        return sum(self.tally[2 * i] for i in range(self.count))

    def _all(self, messages: list[tuple], meanwhile=None) -> list:
        """Send each process its message and gather their answers
        (``meanwhile`` is called once all are sent)."""
        for conn, msg in zip(self.commands, messages):
            conn.send(msg)
        if meanwhile is not None:
            meanwhile()
        out = []
        for conn, p in zip(self.commands, self.procs):
            while not conn.poll(1.0):
                if not p.is_alive():
                    raise RuntimeError(f"load process {p.name} died (exit code {p.exitcode})")
            out.append(conn.recv())
        return out

    def fill(self, kind: str, count: int, connections: int) -> int:
        """``count`` requests of ``kind``, each with a token never sent
        before (see :func:`fill_shot`), closed loop over ``connections``;
        returns how many were answered."""
        per = -(-count // self.count)
        return sum(self._all([("fill", kind, per, max(1, connections // self.count))] * self.count))

    def burst(self, connections: int, warm_up: float, seconds: float, envoy_pid: int | None = None) -> float:
        """Closed loop, ``connections`` spread over the processes, for
        ``warm_up`` + ``seconds``; the answers/s of the last ``seconds`` is
        the maximum. Also Envoy's CPU per answer over those ``seconds``."""
        t_measure = time.monotonic() + warm_up
        t_end = t_measure + seconds
        shares = [connections // self.count + (1 if i < connections % self.count else 0) for i in range(self.count)]
        cpu: list[float | None] = []

        def measure_cpu() -> None:
            for at in (t_measure, t_end):
                time.sleep(max(0.0, at - time.monotonic()))
                cpu.append(envoy_cpu_seconds(envoy_pid))

        counted = sum(self._all([("burst", self.ledger.start, n, t_measure, t_end) for n in shares], measure_cpu))
        st = self.stats
        st.burst_connections, st.burst_seconds, st.burst_answers = connections, seconds, counted
        st.maximum = counted / seconds
        if None not in cpu and counted:
            st.envoy_cpu_burst = (cpu[1] - cpu[0]) / counted
        return st.maximum

    def hold(self, rate: float, seconds: float, envoy_pid: int | None = None) -> None:
        """Open loop at ``rate`` (all processes together) until ledger time ``seconds``."""
        cpu: list[float | None] = []

        def measure_cpu() -> None:
            for at in (0.0, seconds):
                time.sleep(max(0.0, at - self.ledger.now()))
                cpu.append(envoy_cpu_seconds(envoy_pid))

        self.stats.target = rate
        per_process = max(1, MAX_IN_FLIGHT // self.count)
        self._all([("hold", rate, seconds, (i, self.count), per_process) for i in range(self.count)], measure_cpu)
        self.collect()
        if None not in cpu and self.stats.held_answers:
            self.stats.envoy_cpu_held = (cpu[1] - cpu[0]) / self.stats.held_answers

    def collect(self) -> None:
        """The processes' results, probes, users and counters, into this
        process's ledger and stats (they exit then)."""
        # The load is over and the processes exit once they answer: material
        # from now on (a browser login finishing after the run's end) has
        # nobody to go to (it raised BrokenPipeError in the login thread).
        with self.lock:
            self.load_over = True
        merged: list[Result] = []
        for i, (results, probes, sent, stats) in enumerate(self._all([("results",)] * self.count)):
            merged += [Result(*r) for r in results]
            with self.ledger.lock:
                self.ledger.probes.update({p: Probe(*v) for p, v in probes.items()})
            self.traffic.users.sent |= sent
            self.stats.merge(stats)
        with self.ledger.lock:
            self.ledger.results += merged
            self.ledger.results.sort(key=lambda r: r.t0)
        for p in self.procs:
            p.join(timeout=10)

    def stop(self) -> None:
        self.traffic.to_all = self.traffic.to_one = None
        for conn in self.commands + self.material:
            conn.close()
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()


def envoy_cpu_seconds(pid: int | None) -> float | None:
    """The CPU time (user + system) process ``pid`` has used so far."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
