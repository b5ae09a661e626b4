"""The verdict: which answers a fault explains, what reached the upstream
that must not have, memory growth, latency per phase, and the list of checks
the run passes or fails."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Iterable

from soak.records import CLEAN, DENY, EITHER, NEVER, PASS, WRONG_IDENTITY, Fault, Ledger, Result, Timeline

GRACE = 1.0  # seconds around an IdP disturbance during which IdP-dependent requests may fail
# After the IdP failed to answer a refresh, a worker refuses refreshes (503,
# the session kept) for this long before it tries again (README "Single
# sign-on": the refresh backoff): sessions may get a 503 that much later.
IDP_BACKOFF = 5.0
MEMORY_LIMIT = 0.10  # max RSS growth after warm-up
LOAD_SHARE = 0.50  # the held rate must reach this share of the measured maximum
IDP_TROUBLE = "IdP down, restarting or slow (the request needs it)"
RETIRED = "token of the retired key set"
IDP_RESTARTED = "the IdP restarted since the login and forgot the session's refresh token (grants kept in memory)"


def upstream_violations(ledger: Ledger, seen: list[tuple]) -> list[str]:
    """Probes that reached the upstream although their request had to be
    answered by the plugin (or, for CLEAN probes, reached it with
    credentials or a body). ``seen``: the echo's header-time records."""
    out = []
    for p, method, path, state, has_auth, has_consumer, has_body in seen:
        probe = ledger.probes.get(p)
        if probe is None:
            continue
        if probe.upstream == NEVER or (probe.upstream == CLEAN and (has_auth or has_consumer or has_body)):
            out.append(f"{probe.kind}: {method} {path} reached the upstream ({state})")
    return out


def explain(r: Result, timeline: Timeline) -> str | None:
    """The fault that explains a request not answered as expected (never a
    let-through), or None."""
    trouble = timeline.idp_trouble(r.t0, r.t1, GRACE)
    # A login needs the IdP (the browser's forms, the plugin's code exchange:
    # a 403 page or 503); a session due for refresh needs it too (a refresh
    # the IdP refused clears the session: a navigation is sent to log in
    # again; one it did not answer is a 503, also during the backoff after).
    if r.kind == "SSO browser login" and trouble and r.status in (None, 403, 502, 503):
        return IDP_TROUBLE
    if r.kind == "SSO session" and trouble and r.status in (302, 401, 403, 503):
        return IDP_TROUBLE
    if r.kind == "SSO session" and r.status == 503 and timeline.idp_trouble(r.t0, r.t1, GRACE + IDP_BACKOFF):
        return IDP_TROUBLE
    if r.kind == "SSO session, IdP restarted since its login" and r.status in (302, 401, 403, 503):
        return IDP_RESTARTED
    # No excuse for the key rotation otherwise: the callback fetches new keys.
    if r.kind.endswith("(retired key)") and r.status == 401:
        return RETIRED
    return None


@dataclass
class Judged:
    """Requests not answered as expected (let-throughs aside), explained by
    a fault or not."""

    explained: collections.Counter = field(default_factory=collections.Counter)  # (kind, cause) -> n
    unexplained: list[Result] = field(default_factory=list)


def judge(results: list[Result], timeline: Timeline) -> Judged:
    j = Judged()
    for r in results:
        if r.ok or r.let_through:
            continue
        cause = explain(r, timeline)
        if cause is None:
            j.unexplained.append(r)
        else:
            j.explained[(r.kind, cause)] += 1
    return j


def memory_verdict(samples, warm_up: float) -> dict:
    """RSS and allocated at the end of warm-up, their max after it and at the end."""
    before = [s for s in samples if s.t <= warm_up]
    after = [s for s in samples if s.t > warm_up]
    if not before or not after:
        return {"ok": False, "why": "not enough samples"}
    base, last = before[-1], samples[-1]
    peak_rss = max(after, key=lambda s: s.rss_kb)
    allocs = [s.allocated for s in after if s.allocated is not None]
    growth = peak_rss.rss_kb / base.rss_kb - 1
    return {
        "ok": growth <= MEMORY_LIMIT, "growth": growth, "base": base, "last": last,
        "peak_rss": peak_rss.rss_kb, "peak_at": peak_rss.t, "peak_alloc": max(allocs) if allocs else None,
        "peak_sample": peak_rss, "samples": samples,
    }


def warm_up_seconds(duration: float) -> float:
    """The first 20% (at least a minute) of a full run; half of a short one
    (its first reloads and restarts still grow the heap)."""
    return max(duration * 0.2, 60.0) if duration >= 300 else duration * 0.5


# ---------------------------------------------------------------------------
# Latency by phase
# ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@dataclass
class Window:
    n: int
    p50: float | None
    p99: float | None
    failed: int  # must-pass requests in it not served


def window(results: list[Result], start: float, end: float) -> Window:
    """Must-pass requests (browser logins aside: several hops each) due in
    [start, end): their latency (seconds)."""
    rs = [r for r in results if r.expect == PASS and start <= r.t0 < end and r.kind != "SSO browser login"]
    lat = [r.t1 - r.t0 for r in rs if r.status is not None]
    return Window(len(rs), percentile(lat, 0.50), percentile(lat, 0.99), sum(not r.ok for r in rs))


def phase_windows(results: list[Result], faults: list[Fault], duration: float) -> list[tuple[Fault, Window, Window, Window]]:
    """For each fault: the must-pass latency in the ``span`` seconds before
    it, while it lasted, and the ``span`` seconds after it."""
    span = min(30.0, max(3.0, duration / 15))
    out = []
    for f in faults:
        end = f.end if f.end is not None else duration
        out.append((f, window(results, max(0.0, f.start - span), f.start), window(results, f.start, max(end, f.start + 0.5)),
                    window(results, end, min(duration, end + span))))
    return out


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------


def idle_kinds(results: list[Result], kinds: Iterable[str]) -> list[str]:
    """Kinds never sent, and must-pass kinds never served (the run proved nothing about them)."""
    sent = {r.kind for r in results}
    served = {r.kind for r in results if r.expect == PASS and r.ok}
    out = [f"{k}: never sent" for k in [*kinds, "SSO browser login"] if k not in sent]
    out += [f"{k}: never served" for k in sent - served if any(r.kind == k and r.expect == PASS for r in results)
            and not k.endswith(("(retired key)", "since its login"))]
    return sorted(out)


def checks(*, results, judged, upstream, memory, load, kinds, alive, failures, conductor, timeline,
           counters, users_sent, fill=None) -> list[tuple[str, bool, str]]:
    let_through = [f"{r.kind}: answered {r.status}" for r in results if r.let_through and r.expect in (DENY, EITHER)]
    wrong_identity = [r for r in results if r.note.startswith(WRONG_IDENTITY)]
    idle = idle_kinds(results, kinds)
    applied = [r for r in conductor.reloads if r.applied]
    by_name: dict[str, list[Fault]] = collections.defaultdict(list)
    for f in timeline.faults:
        by_name[f.name].append(f)

    def fault_check(name: str) -> tuple[bool, str]:
        fs = by_name.get(name, [])
        return bool(fs) and all(f.ok and f.end is not None for f in fs), "; ".join(f.detail for f in fs) or "not run"

    revoked = [r for r in results if r.kind == "IdP user token, revoked key"]
    revoked_ok = bool(revoked) and all(r.ok for r in revoked)
    share = load.achieved / load.maximum if load.maximum else 0.0
    out = [
        (f"held load at least {LOAD_SHARE:.0%} of the measured maximum", share >= LOAD_SHARE
         and load.skipped_backlog == 0,
         f"{load.achieved:.0f} req/s answered = {share:.0%} of {load.maximum:.0f} req/s"
         + (f"; {load.skipped_backlog} requests not sent (client backlog)" if load.skipped_backlog else "")),
        ("every kind of request sent, every must-pass kind served", not idle,
         "; ".join(idle) or f"{len(kinds) + 1} kinds"),
        ("Envoy alive, no wasm panic or VM failure in its log", alive and not failures,
         "; ".join(failures[:3]) or "no crash, no panic, no VM failure"),
        ("must-be-denied requests let through", not (let_through or upstream or wrong_identity),
         f"{len(let_through)} answered 2xx, {len(upstream)} reached the upstream, "
         f"{len(wrong_identity)} served as another consumer"
         + "".join(f"; {x}" for x in (let_through + upstream)[:5])),
        ("every other answer as expected or explained by a fault", not judged.unexplained,
         f"{len(judged.unexplained)} unexplained, {sum(judged.explained.values())} explained" + "".join(
             f"; {r.kind}: {r.status} {r.note[:60]}" for r in judged.unexplained[:3])),
        (f"Envoy RSS within +{MEMORY_LIMIT:.0%} after warm-up", memory["ok"],
         f"{memory['growth'] * 100:+.1f}%" if "growth" in memory else memory.get("why", "")),
        ("configuration reloads applied", bool(conductor.reloads) and len(applied) == len(conductor.reloads),
         f"{len(applied)} of {len(conductor.reloads)}"
         + "".join(f"; {r.at:.0f} s: {r.note}" for r in conductor.reloads if not r.applied)),
        ("IdP down and back", *fault_check("IdP down")),
        ("key rotation: new keys' tokens accepted", *fault_check("key rotation")),
        ("key revocation: the revoked key's tokens refused after the refresh interval",
         revoked_ok and bool(by_name.get("key revocation")),
         f"{sum(r.ok for r in revoked)} of {len(revoked)} refused after the deadline"
         + (f"; first refusal {timeline.first_revoked_refusal - timeline.revoked_at:.1f} s after the IdP "
            "dropped the key" if timeline.first_revoked_refusal is not None and timeline.revoked_at is not None
            else "")),
        ("IdP slow (answers held above the call timeouts)", *fault_check("IdP slow")),
        ("slowloris: held token POSTs answered in time, nothing reached the upstream",
         *fault_check("slowloris on the token endpoint")),
        ("SSO sessions refreshed during the run", counters.get("sso_refreshes", 0) > 0,
         f"sso_refreshes {counters.get('sso_refreshes', 0)}, sso_refresh_failed "
         f"{counters.get('sso_refresh_failed', 0)}"),
        ("thousands of distinct IdP users (verified-token cache churn)", users_sent >= 1000,
         f"{users_sent} distinct users' tokens sent; cache_hits {counters.get('cache_hits', 0)}, "
         f"cache_misses {counters.get('cache_misses', 0)}"),
    ]
    out.append(("verified-token cache filled: Envoy RSS growth within the documented budget",
                fill is not None and fill.ok, fill.describe() if fill is not None else "not run (--no-cache-fill)"))
    if conductor.errors:
        out.append(("fault timeline ran without errors", False, "; ".join(conductor.errors[:3])))
    return out


def first_refusal(results: list[Result], timeline: Timeline) -> float | None:
    """When a revoked key's token was first refused (ledger time)."""
    if timeline.revoked_at is None:
        return None
    ts = [r.t1 for r in results if r.kind.startswith("IdP user token, revoked key") and r.status == 401]
    return min(ts) if ts else None
