"""The ``soak`` section of BENCHMARKS.md: the rate held next to the measured
maximum, the verdict, the must-pass latency before, during and after each
fault, every kind of request with its outcome, the faults and memory."""

from __future__ import annotations

import collections

from soak.client import MAX_OPEN
from soak.monitor import SAMPLE_SECONDS, Sample
from soak.records import PASS, Result
from soak.services import (DRAIN_SECONDS, IDP_IDLE_TIMEOUT, IDP_TOKEN_TTL, JWKS_REFRESH_SECONDS,
                           MEMORY_ALLOCATOR_MANAGER, TOKEN_BODY_TIMEOUT_MS)
from soak.verdict import Judged, Window


def mb(value: float | None, unit: int) -> str:
    return "n/a" if value is None else f"{value * unit / 1e6:.1f}"


def pct(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or not base else f"{(value / base - 1) * 100:+.1f}%"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:,.0f}"


def statuses(rs: list[Result]) -> str:
    c = collections.Counter(str(r.status) if r.status is not None else r.note.split(":", 1)[0] for r in rs)
    return ", ".join(f"{k}×{v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))


def render(ctx: dict) -> str:
    parts = [header(ctx), phases(ctx), requests(ctx), faults(ctx), memory(ctx)]
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def header(ctx: dict) -> list[str]:
    load = ctx["load"]
    lines = [
        f"## Soak: {ctx['actual']:.0f} s at half the measured maximum, with faults",
        "",
        f"Written by `make soak` (`e2e/soak --duration {ctx['duration']:.0f}`) on {ctx['date']}. "
        f"Envoy {ctx['envoy']} (V8), `--concurrency {ctx['concurrency']}`, `--drain-time-s {DRAIN_SECONDS}`, "
        f"bootstrap `memory_allocator_manager` releasing up to "
        f"{MEMORY_ALLOCATOR_MANAGER['bytes_to_release'] // (1024 * 1024)} MiB of free heap every "
        f"{MEMORY_ALLOCATOR_MANAGER['memory_release_interval']}, plugin configuration on file-based LDS, `token_body_timeout_ms: {TOKEN_BODY_TIMEOUT_MS}`, "
        f"`jwks_refresh_seconds: {JWKS_REFRESH_SECONDS}`, IdP access tokens living {IDP_TOKEN_TTL} s (SSO "
        f"sessions refresh), `idp` cluster `idle_timeout: {IDP_IDLE_TIMEOUT}s` through a proxy that can slow "
        f"the IdP down; {ctx['users']:,} distinct IdP users; everything on 127.0.0.1, {load.processes} Python load "
        f"processes (asyncio each, kept-alive connections, at most {MAX_OPEN} open per process, the open-loop "
        f"schedule split between them) on the same "
        f"{ctx['cpus']} CPUs as Envoy.",
        "",
        f"**Load:** maximum measured at the start, closed loop ({load.burst_connections} connections over the "
        f"{load.processes} load processes, {load.burst_seconds:.0f} s of the mix after a warm-up): "
        f"**{load.maximum:,.0f} req/s**{envoy_cpu(load.envoy_cpu_burst, ctx)}. Held open loop "
        f"at {load.target:,.0f} req/s for {load.held_seconds:.0f} s: **{load.achieved:,.0f} req/s answered "
        f"({load.achieved / load.maximum:.0%} of the maximum)**; {load.connections_opened} connections opened, "
        f"{load.connections_closed_by_envoy} closed by Envoy (`Connection: close`), {load.resent} requests sent "
        "again after a kept-alive connection closed under them"
        + (" (closed after: " + ", ".join(f"{k} {n}" for k, n in load.closed_after.most_common(4)) + ")"
           if load.closed_after else "")
        + (f", {load.skipped_backlog} requests not sent (client backlog)" if load.skipped_backlog else "")
        + (f"; Envoy used {load.envoy_cpu_held * 1e6:,.0f} CPU-µs per answered request over the held load"
           if load.envoy_cpu_held else "")
        + ". Browser logins (one every "
        f"{ctx['login_interval']:.0f} s) and the slowloris streams come on top.",
        "",
        f"**Verdict: {'PASS' if ctx['passed'] else 'FAIL'}**",
        "",
        "| check | result |",
        "|---|---|",
    ]
    return lines + [f"| {name} | {'ok' if ok else 'FAILED'}: {detail} |" for name, ok, detail in ctx["checks"]]


def envoy_cpu(per_request: float | None, ctx: dict) -> str:
    """Envoy's own CPU per answer in the burst, and what that would allow
    if Envoy had every CPU (the maximum above is what Envoy and the load
    processes together get out of the machine)."""
    if not per_request:
        return ""
    return (f" (Envoy used {per_request * 1e6:,.0f} CPU-µs per answer: alone on the {ctx['cpus']} CPUs it would "
            f"serve about {ctx['cpus'] / per_request:,.0f} req/s of this mix; the load processes took the rest)")


def cell(w: Window) -> str:
    failed = f", {w.failed} not served" if w.failed else ""
    return f"{ms(w.p99)} ({w.n}{failed})"


def phases(ctx: dict) -> list[str]:
    base = ctx["baseline"]
    lines = ["### Latency of must-pass requests by phase", "",
             "p99 in ms (requests due in the window; must-pass kinds, browser logins aside), measured from when "
             "each request was due. Before / after: the "
             f"{ctx['span']:.0f} s before the fault began and after it ended.", "",
             f"Before any fault (0–{ctx['first_fault']:.0f} s): p50 {ms(base.p50)} ms, p99 {ms(base.p99)} ms, "
             f"{base.n} requests.", "",
             "| fault | at | p99 before | p99 during | p99 after | what happened |",
             "|---|---|---:|---:|---:|---|"]
    for f, before, during, after in ctx["phases"]:
        end = f"{f.end:.0f}" if f.end is not None else "end"
        lines.append(f"| {f.name} | {f.start:.0f}–{end} s | {cell(before)} | {cell(during)} | {cell(after)} "
                     f"| {'' if f.ok else 'FAILED: '}{f.detail} |")
    return lines


def requests(ctx: dict) -> list[str]:
    results: list[Result] = ctx["results"]
    judged: Judged = ctx["judged"]
    lines = [f"### Requests ({len(results):,}, the maximum-throughput burst included)", "",
             "| kind | expectation | requests | as expected | explained by a fault | unexplained | let through "
             "| statuses seen |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    by_kind: dict[tuple[str, str], list[Result]] = collections.defaultdict(list)
    for r in results:
        by_kind[(r.expect, r.kind)].append(r)
    unexplained = collections.Counter(r.kind for r in judged.unexplained)
    for (expect, kind), rs in sorted(by_kind.items(), key=lambda kv: (kv[0][0] != PASS, kv[0][0], kv[0][1])):
        explained = sum(v for (k, _), v in judged.explained.items() if k == kind)
        lines.append(f"| {kind} | {expect} | {len(rs)} | {sum(r.ok for r in rs)} | {explained} "
                     f"| {unexplained[kind]} | {sum(r.let_through for r in rs)} | {statuses(rs)} |")
    causes: collections.Counter = collections.Counter()
    for (_, cause), n in judged.explained.items():
        causes[cause] += n
    lines += ["", "Answers other than the expected one, by the fault that explains them (never a 2xx to a "
              "must-be-denied request): " + ("; ".join(f"{c}: {n}" for c, n in causes.most_common()) or "none") + "."]
    if judged.unexplained:
        lines += ["", "Unexplained (first 10):", ""]
        lines += [f"- {r.t0:.1f} s {r.kind}: {r.status} {r.note}" for r in judged.unexplained[:10]]
    return lines


def faults(ctx: dict) -> list[str]:
    lines = ["### Faults", ""]
    lines += [f"- {f.start:.0f} s, {f.name}: {f.detail}" for f in ctx["timeline"].faults]
    lines += [f"- Conductor: {err}" for err in ctx["conductor_errors"]]
    for title, stats in (("Plugin counters at the end", ctx["counters"]),
                         ("Envoy's `idp` cluster (key fetches, code exchanges, refreshes)", ctx["idp_cluster"])):
        if stats:
            lines += ["", f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())) + "."]
    return lines


def memory(ctx: dict) -> list[str]:
    m = ctx["memory"]
    every = ctx.get("sample_seconds", SAMPLE_SECONDS)
    lines = [f"### Envoy memory (warm-up: first {ctx['warm_up']:.0f} s, samples every {every:g} s)", ""]
    if not ctx.get("full_plan", True):
        lines += ["Faults chosen with `--faults` (a try-out, not the full plan).", ""]
    if "base" not in m:
        return lines + [f"No verdict: {m.get('why')}."]
    base, last = m["base"], m["last"]
    peak = m["peak_sample"]
    lines += [
        "| | end of warm-up | max after warm-up | end of run | max vs warm-up |",
        "|---|---:|---:|---:|---:|",
        f"| RSS (MB) | {mb(base.rss_kb, 1024)} | {mb(m['peak_rss'], 1024)} | {mb(last.rss_kb, 1024)} "
        f"| {pct(m['peak_rss'], base.rss_kb)} |",
        f"| /memory allocated (MB) | {mb(base.allocated, 1)} | {mb(m['peak_alloc'], 1)} "
        f"| {mb(last.allocated, 1)} | {pct(m['peak_alloc'], base.allocated)} |",
        f"| Envoy heap resident (MB): allocated + kept free by tcmalloc | {mb(base.heap_resident_kb, 1024)} "
        f"| {mb(peak.heap_resident_kb, 1024)} (at the RSS max) | {mb(last.heap_resident_kb, 1024)} | |",
        f"| RSS outside Envoy's heap (MB): wasm VMs, code, stacks | {mb(base.outside_heap_kb, 1024)} "
        f"| {mb(peak.outside_heap_kb, 1024)} (at the RSS max) | {mb(last.outside_heap_kb, 1024)} | |",
    ]
    return lines + ["", *memory_by_fault(ctx)]


def memory_by_fault(ctx: dict) -> list[str]:
    """RSS and its two parts just before each fault and 30 s after it
    ended: which fault left memory behind."""
    samples = ctx["memory"].get("samples") or []
    if not samples:
        return []

    def at(t: float):
        before = [s for s in samples if s.t <= t]
        return before[-1] if before else samples[0]

    def cell(s) -> str:
        return f"{mb(s.rss_kb, 1024)} ({mb(s.heap_resident_kb, 1024)} / {mb(s.outside_heap_kb, 1024)})"

    lines = ["RSS in MB around each fault (in brackets: Envoy heap resident / outside it), and the most "
             "Envoy held in one sample from the fault's start to 30 s after its end (before it: in brackets): "
             "downstream connections and requests, connections to the upstream (echo) and requests to the "
             "IdP (`idp` cluster, each a connection of its own):", "",
             "| fault | at | before | 30 s after its end | downstream cx | downstream rq | echo cx | IdP rq |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for f in sorted(ctx["timeline"].faults, key=lambda f: f.start):
        end = f.end if f.end is not None else ctx["actual"]
        before = at(f.start)
        during = [s for s in samples if f.start <= s.t <= end + 30]
        held = [held_cell(before, during, name) for name in ("downstream_cx", "downstream_rq", "echo_cx", "idp_rq")]
        lines.append(f"| {f.name} | {f.start:.0f} s | {cell(before)} | {cell(at(end + 30))} | {' | '.join(held)} |")
    return lines


def held_cell(before: Sample, during: list[Sample], name: str) -> str:
    """The most of gauge ``name`` in ``during`` (and its value ``before``)."""
    values = [s.held[name] for s in during if s.held]
    if not values or not before.held:
        return "n/a"
    return f"{max(values):,} ({before.held[name]:,})"
