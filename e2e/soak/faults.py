"""The fault timeline, run by the :class:`Conductor` thread while the load
goes on: configuration reloads (file-based LDS), the IdP down and back, a key
rotation, a key revocation, an IdP that answers too slowly, and a slowloris
burst on the token endpoint. Each fault is written to the
:class:`~soak.records.Timeline` with when it began and ended, so the verdict
can tell which answers it explains and the report can give the latency
before, during and after it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import harness
from common import C1, FORM, PROBE_HEADER, TOKEN_PATH, cred_params, query
from idp_control import Idp

from soak.records import DENY, NEVER, Ledger, Result, Timeline, error_note
from soak.services import (EXTRA, IDP_TOKEN_TTL, JWKS_REFRESH_SECONDS, TOKEN_BODY_TIMEOUT_MS, Gateway, KeyPlan)
from soak.slow_proxy import SlowProxy
from soak.traffic import REVOCATION_SLACK, Traffic, wait_accepted

RELOAD_WAIT = 20.0  # seconds for a reload to show
# New keys must be served within one refresh interval (unknown kids even
# sooner), plus slack for a loaded machine.
ROTATION_WAIT = JWKS_REFRESH_SECONDS + 20.0
# Above every call timeout of the plugin (5 s for SSO calls, jwks_timeout_ms for keys).
SLOW_DELAY = 7.0
ROTATION_SETTLE = 3.0  # seconds from the new keys' first acceptance until their tokens are sent
SLOWLORIS_SLACK = 3.0  # seconds over token_body_timeout_ms a held stream may take to be answered
SLOWLORIS_KIND = "token POST, body never finished (slowloris)"


@dataclass
class Reload:
    at: float
    generation: int
    applied: bool = False
    seconds: float | None = None  # until the new configuration answered
    note: str = ""


class Conductor(threading.Thread):
    """Runs the fault timeline (see :func:`plan`)."""

    def __init__(self, gw: Gateway, idp: Idp, proxy: SlowProxy, keys: KeyPlan, traffic: Traffic, ledger: Ledger,
                 timeline: Timeline, duration: float, stop: threading.Event,
                 only: list[tuple[str, float | None]] | None = None) -> None:
        super().__init__(name="conductor", daemon=True)
        self.gw, self.idp, self.proxy, self.keys = gw, idp, proxy, keys
        self.traffic, self.ledger, self.timeline = traffic, ledger, timeline
        self.duration = duration
        self.stop_event = stop
        self.reloads: list[Reload] = []
        self.errors: list[str] = []
        self.slowloris_streams = 200 if duration >= 300 else 100
        self.slowloris_times: list[float] = []
        self.revoked = False
        self.events = plan(duration) if only is None else chosen(only, duration)
        self._down = None
        self._slow = None

    def run(self) -> None:
        for at, action in self.events:
            if self.stop_event.wait(max(0.0, at - self.ledger.now())):
                break
            try:
                action(self)
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                self.errors.append(f"{self.ledger.now():.0f}s {action.__name__}: {error_note(e)}")

    def say(self, message: str) -> None:
        print(f"  {self.ledger.now():6.0f} s  {message}", flush=True)

    # -- IdP down and back ------------------------------------------------------------

    def idp_outage(self) -> None:
        """The IdP stopped for 30 s (1/12 of a short run), then started again."""
        self.idp_stop()
        self.stop_event.wait(min(30.0, self.duration / 12))
        self.idp_start()

    def idp_stop(self) -> None:
        now = self.ledger.now()
        self._down = (self.timeline.begin("IdP down", now), self.timeline.disturb(now))
        self.timeline.idp_restarted(now)
        self.idp.stop()
        self.say("IdP stopped")

    def idp_start(self) -> None:
        self.idp.start()
        fault, span = self._down
        fault.end = span[1] = self.ledger.now()
        fault.detail = f"stopped {fault.end - fault.start:.0f} s"
        self.say("IdP started")
        self.traffic.fetch_idp_tokens(self.timeline.key_generation)

    def restart_idp(self, keyset: dict, name: str) -> float:
        """Stop the IdP and start it with ``keyset`` (the IdP reads keys at
        start); returns when it serves again (ledger time)."""
        span = self.timeline.disturb(self.ledger.now())
        self.timeline.idp_restarted(span[0])
        self.idp.stop()
        self.idp.set_keys(keyset)
        self.traffic.keys_changed(keyset)
        self.idp.start()
        span[1] = self.ledger.now()
        self.say(f"IdP restarted: {name}")
        return span[1]

    # -- key rotation and revocation ------------------------------------------------------

    def rotate_keys(self) -> None:
        """A new RS256/ES256 pair (the revocable key stays). Tokens of the
        old pair are judged apart from now on (they pass until the plugin
        drops the old keys); the users' tokens of the new pair are sent once
        one of them is accepted."""
        fault = self.timeline.begin("key rotation", self.ledger.now())
        with self.traffic.keys_lock:  # no new IdP token joins the pools until the new keys are accepted
            self.timeline.key_generation = 1
            back = self.restart_idp(self.keys.keyset(1, revoked=self.revoked), "key rotation")
            self.timeline.rotated_at = back
            took = wait_accepted(self.gw, self.traffic.users.by_generation[1][0], ROTATION_WAIT, in_a_row=8)
            self.timeline.rotation_accepted_after = took
            # The worker that fetched the keys publishes them; the others
            # take them on their next key tick (1 s).
            time.sleep(ROTATION_SETTLE)
            self.timeline.users_generation = 1
            self.traffic.fetch_idp_tokens(1)
        fault.end = self.ledger.now()
        if took is None:
            fault.ok = False
            fault.detail = f"tokens of the new keys NOT accepted within {ROTATION_WAIT:.0f} s"
            self.errors.append(fault.detail)
        else:
            fault.detail = f"new keys' tokens accepted {took:.1f} s after the IdP served them"
        self.say(fault.detail)

    def revoke_key(self) -> None:
        """The revocable key leaves the IdP's JWKS: its tokens must be refused
        within one jwks_refresh_seconds (plus slack) of the IdP serving the
        smaller set."""
        fault = self.timeline.begin("key revocation", self.ledger.now())
        self.revoked = True
        back = self.restart_idp(self.keys.keyset(self.timeline.key_generation, revoked=True), "key revoked")
        self.timeline.revocation_deadline = back + JWKS_REFRESH_SECONDS + REVOCATION_SLACK
        self.timeline.revoked_at = back
        fault.end = self.timeline.revocation_deadline
        fault.detail = (f"kid {self.keys.revocable.kid} removed at {back:.0f} s; its tokens must be refused "
                        f"from {fault.end:.0f} s (jwks_refresh_seconds {JWKS_REFRESH_SECONDS} + "
                        f"{REVOCATION_SLACK:.0f} s)")
        self.traffic.fetch_idp_tokens(self.timeline.key_generation)

    # -- a slow IdP -------------------------------------------------------------------------

    def idp_slow(self) -> None:
        """Every IdP answer held SLOW_DELAY for a minute (1/10 of a short run)."""
        self.slow_on()
        self.stop_event.wait(min(60.0, self.duration / 10))
        self.slow_off()

    def slow_on(self) -> None:
        now = self.ledger.now()
        self._slow = (self.timeline.begin("IdP slow", now), self.timeline.disturb(now), self.proxy.held)
        self.proxy.slow(SLOW_DELAY)
        self.say(f"IdP answers held {SLOW_DELAY:.0f} s")

    def slow_off(self) -> None:
        self.proxy.slow(0)
        fault, span, held_before = self._slow
        fault.end = self.ledger.now()
        span[1] = fault.end + SLOW_DELAY  # answers held until then
        held = self.proxy.held - held_before
        fault.detail = f"{fault.end - fault.start:.0f} s; {held} IdP answers held {SLOW_DELAY:.0f} s"
        fault.ok = held > 0
        self.say("IdP fast again: " + fault.detail)

    # -- slowloris on the token endpoint ------------------------------------------------------

    def slowloris(self) -> None:
        """Many token POSTs whose bodies never finish (half Content-Length,
        half chunked): each must be answered 400 invalid_request within
        token_body_timeout_ms (+ slack), none may reach the upstream, and
        everyone else keeps being served."""
        n = self.slowloris_streams
        limit = TOKEN_BODY_TIMEOUT_MS / 1000 + SLOWLORIS_SLACK
        fault = self.timeline.begin("slowloris on the token endpoint", self.ledger.now())
        threads = [threading.Thread(target=self._held_token_post, args=(i, limit), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=limit + 60)
        fault.end = self.ledger.now()
        took = sorted(self.slowloris_times)
        on_time = sum(1 for t in took if t <= limit)
        late = [t for t in took if t > limit]
        fault.ok = on_time == n
        fault.detail = (f"{n} token POSTs held open; {on_time} answered 400 invalid_request within "
                        f"{limit:.0f} s (token_body_timeout_ms {TOKEN_BODY_TIMEOUT_MS} + {SLOWLORIS_SLACK:.0f} s)"
                        + (f", slowest {took[-1]:.1f} s" if took else "")
                        + (f"; {len(late)} answered late, from {late[0]:.1f} s" if late else ""))
        self.say(fault.detail)

    def _held_token_post(self, i: int, limit: float) -> None:
        p = self.ledger.new_probe(SLOWLORIS_KIND, NEVER)
        chunked = i % 2 == 1
        headers = [("Content-Type", FORM), (PROBE_HEADER, p)]
        if not chunked:
            headers.append(("Content-Length", "200"))
        t0 = self.ledger.now()
        try:
            with harness.SlowRequest(self.gw.port, "POST", TOKEN_PATH, headers, chunked=chunked, timeout=30) as req:
                req.send("grant_type=client_cre")  # and nothing more
                r = req.response(timeout=limit + 30)
        except Exception as e:  # noqa: BLE001 - no answer: recorded
            self.ledger.add(Result(SLOWLORIS_KIND, DENY, t0, self.ledger.now(), None, False, note=error_note(e)))
            return
        t1 = self.ledger.now()
        took = t1 - t0
        right = r.status == 400 and b"invalid_request" in r.body and b"not received within" in r.body
        ok = right and took <= limit
        if right:
            self.slowloris_times.append(took)
        variant = "chunked" if chunked else "Content-Length: 200"
        self.ledger.add(Result(SLOWLORIS_KIND, DENY, t0, t1, r.status, ok, let_through=200 <= r.status < 300,
                               note="" if ok else f"{variant}, answered after {took:.1f} s: {r.text[:100]}"))

    # -- configuration reloads ------------------------------------------------------------------

    def reload(self) -> None:
        before = self.gw.stats("listener_manager.lds.")
        fault = self.timeline.begin("configuration reload", self.ledger.now())
        rec = Reload(fault.start, self.gw.reload())
        self.reloads.append(rec)
        t0 = time.monotonic()
        rec.applied, rec.note = self.verify_reload(before, t0 + RELOAD_WAIT)
        rec.seconds = time.monotonic() - t0
        fault.end, fault.ok = self.ledger.now(), rec.applied
        fault.detail = f"generation {rec.generation} " + ("applied" if rec.applied else f"NOT applied: {rec.note}")
        self.say(f"configuration {fault.detail} ({rec.seconds:.2f} s)")

    def verify_reload(self, before: dict[str, int], deadline: float) -> tuple[bool, str]:
        """LDS accepted the file, issued tokens carry the new token_ttl (a few
        in a row: every worker), and the EXTRA consumer exists exactly in odd
        generations."""
        key = "listener_manager.lds.update_success"
        while self.gw.stats("listener_manager.lds.").get(key, 0) <= before.get(key, 0):
            if time.monotonic() > deadline:
                return False, f"{key} did not move"
            time.sleep(0.1)
        streak = 0
        while streak < 6:
            if time.monotonic() > deadline:
                return False, f"expires_in never {self.gw.ttl} six times in a row"
            r = self.gw.request("GET", query(TOKEN_PATH, cred_params(C1)))
            streak = streak + 1 if r.status == 200 and r.json().get("expires_in") == self.gw.ttl else 0
        r = self.gw.request("GET", query(TOKEN_PATH, cred_params(EXTRA)))
        want = 200 if self.gw.generation % 2 else 400
        if r.status != want:
            return False, f"consumer-extra got {r.status}, expected {want}"
        return True, ""


def plan(duration: float) -> list[tuple[float, Callable[[Conductor], None]]]:
    """The fault timeline, (seconds since the held load began, action), at
    fixed shares of the run so a short run has every fault: reloads at 8%,
    33% and 82%; the IdP down at 14% (30 s, or 1/12 of a short run); the key
    rotation at 25%; the IdP slow at 40% (60 s, or 1/10); the revocation at
    55%; the slowloris at 72%; a second outage at 88% in runs of 5 minutes
    or more. A fault that runs late delays the next ones, never overlaps them."""
    d = duration
    events: list[tuple[float, Callable[[Conductor], None]]] = [
        (0.08 * d, Conductor.reload),
        (0.14 * d, Conductor.idp_outage),
        (0.25 * d, Conductor.rotate_keys),
        (0.33 * d, Conductor.reload),
        (0.40 * d, Conductor.idp_slow),
        (0.55 * d, Conductor.revoke_key),
        (0.72 * d, Conductor.slowloris),
        (0.82 * d, Conductor.reload),
    ]
    if d >= 300:
        events.append((0.88 * d, Conductor.idp_outage))
    return sorted(events, key=lambda e: e[0])


# The faults by name, for ``--faults`` (a developer's short try-out of some).
FAULTS: dict[str, Callable[[Conductor], None]] = {
    "reload": Conductor.reload,
    "idp-down": Conductor.idp_outage,
    "key-rotation": Conductor.rotate_keys,
    "idp-slow": Conductor.idp_slow,
    "key-revocation": Conductor.revoke_key,
    "slowloris": Conductor.slowloris,
}


def parse_faults(text: str) -> list[tuple[str, float | None]]:
    """``NAME[@SECONDS],...`` (names of FAULTS; empty: none) -> [(name, at or None)]."""
    out: list[tuple[str, float | None]] = []
    for item in filter(None, (i.strip() for i in text.split(","))):
        name, _, at = item.partition("@")
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
        out.append((name, float(at) if at else None))
    return out


def chosen(only: list[tuple[str, float | None]], duration: float) -> list[tuple[float, Callable[[Conductor], None]]]:
    """The faults named, each at its time or, without one, spread evenly
    over the middle of the run (from a third on)."""
    events = []
    for i, (name, at) in enumerate(only):
        events.append((at if at is not None else duration / 3 + i * duration / (2 * len(only)), FAULTS[name]))
    return sorted(events, key=lambda e: e[0])


class Minter(threading.Thread):
    """Keeps the pools of IdP client-credentials tokens fresh (they live
    IDP_TOKEN_TTL seconds); a fetch while the IdP is down just fails."""

    def __init__(self, traffic: Traffic, timeline: Timeline, stop: threading.Event) -> None:
        super().__init__(name="minter", daemon=True)
        self.traffic, self.timeline, self.stop_event = traffic, timeline, stop

    def run(self) -> None:
        while not self.stop_event.wait(IDP_TOKEN_TTL / 3):
            try:
                with self.traffic.keys_lock:
                    if self.traffic.idp.running():
                        self.traffic.fetch_idp_tokens(self.timeline.key_generation)
            except Exception:  # noqa: BLE001 - the IdP went down meanwhile: the next round
                pass
