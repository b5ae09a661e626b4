#!/usr/bin/env python3
"""Soak and fault run of edge-auth in a real Envoy (``make soak``).

    .venv/bin/python e2e/soak.py --duration 600

One echo upstream, one IdP (``idp_control.Idp``, oidc-provider) and one Envoy
(``--concurrency 2``) running edge-auth with a gateway token endpoint, a JWT
consumer whose keys come from the IdP's ``jwks_uri``, and browser single
sign-on on ``/app``. For ``--duration`` seconds:

* worker threads send a bounded, mixed load: token endpoint GET/POST (good and
  bad credentials), gateway and IdP bearer tokens (valid, tampered, expired,
  ``alg: none``, another secret, foreign key, unknown client, consumer not on
  the allow list), SSO sessions, anonymous and tampered SSO requests, forged
  OIDC callbacks; one more thread runs a full browser login every few
  seconds (``sso_browser``).
* a conductor stops the IdP for a while every ~2 minutes (once with a new
  key set on restart) and reloads the plugin configuration every ~75 s
  through Envoy's file-based LDS (``path_config_source`` + an atomic
  rename, no restart), checking each reload took effect.
* the main thread samples Envoy's RSS and admin ``/memory`` every 5 s and
  watches the process and its log for wasm failures.

Every request carries a unique probe (``X-E2e-Probe`` header, or a ``probe``
query parameter for browser navigations) and an expectation: must pass, or
must be denied. At the end the echo upstream's record is checked: no probe of
a must-be-denied request may have reached it. An answer other than the
expected one must be explained by a fault (a browser login while the IdP is
down, ...) and is never a 2xx to a must-be-denied request.

The figures go to the ``soak`` section of BENCHMARKS.md
(``scripts/report_section.py``); the memory samples to ``memory.csv`` next
to Envoy's log. The exit status is non-zero when a check fails: Envoy
crashed or logged a wasm failure, a request was let through, an answer no
fault explains, RSS over +10% after warm-up, a reload not applied, an
outage not carried out, a kind of request never served.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import html
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import parse_qs, urlencode, urlsplit

import harness
import jose_forge as jf
import jwt_hs256 as jwt
from common import (
    C1,
    C2,
    FORM,
    PROBE_HEADER,
    TOKEN_PATH,
    Consumer,
    basic,
    cred_params,
    forged,
    query,
)
from echo_server import EchoServer
from idp_control import APP1, APP2, ES256_RESOURCE, IDP_CLUSTER, RS256_RESOURCE, Idp, make_keyset
from sso_browser import NAV_ACCEPT, Browser

sys.path.insert(0, str(harness.REPO_ROOT / "scripts"))
import report_section  # noqa: E402

# ---------------------------------------------------------------------------
# Set-up constants
# ---------------------------------------------------------------------------

CONCURRENCY = 2
# Envoy keeps a replaced filter chain for the drain time (default 600 s);
# a short one lets the old plugin instances go while the run is watched.
DRAIN_SECONDS = 5
SAMPLE_SECONDS = 5.0
MEMORY_LIMIT = 0.10  # max growth after warm-up
OUTAGE_PERIOD, OUTAGE_LENGTH = 120.0, 30.0
RELOAD_PERIOD = 75.0
RELOAD_WAIT = 20.0  # seconds for a reload to show
ROTATION_WAIT = 45.0  # unknown-kid refetches are rate-limited to one per 30 s
SETUP_WAIT = 30.0
IDP_IDLE_TIMEOUT = 2  # seconds, below Node's 5 s keep-alive (see idp_cluster)
GRACE = 1.0  # seconds around an outage during which IdP-dependent requests may fail

ECHO = harness.ECHO_CLUSTER
ROUTES = (
    ("api", "/api", ECHO),
    ("admin", "/admin", ECHO),
    ("app", "/app", ECHO),
    ("sso-callback", "/oauth2/callback", ECHO),
    ("sso-sign-out", "/oauth2/sign_out", ECHO),
    ("default", "/", ECHO),
)
CALLBACK = "/oauth2/callback"
COOKIE = "_edge_auth_session"
COOKIE_SECRET = "edge-auth-soak-cookie-secret-5c1e9a7b3d2f4e6a8b0c"
ORDERS = "orders-app"  # the IdP's APP1 as a JWT consumer
# Present only in odd configuration generations: tells a reload took effect.
EXTRA = Consumer("consumer-extra", "cx-3b9f1e7a5c2d4f6e8a0b1c3d5e7f9a1b", "sx-Hn4Tb8Wq2Ze6Rk0Mv5Jy9Lc3Pd7Gf1Sa")
TTLS = (7200, 3600)  # token_ttl of even / odd configuration generations
WASM_FAILURE = re.compile(
    r"Function: \S+ failed|Wasm VM failed|panicked at|\]\[critical\]|Plugin configured to fail closed"
)
IDP_CLUSTER_STATS = ("upstream_rq_total", "upstream_rq_2xx", "upstream_rq_5xx", "upstream_cx_connect_fail",
                     "upstream_cx_destroy_remote", "upstream_cx_destroy_remote_with_active_rq",
                     "upstream_rq_pending_failure_eject", "upstream_rq_timeout")
PAGE_MESSAGE = re.compile(r"<p>(.*?)</p>", re.S)
WRONG_IDENTITY = "served as another consumer"


# ---------------------------------------------------------------------------
# Configuration and bootstrap
# ---------------------------------------------------------------------------


def plugin_config(idp: Idp, generation: int) -> dict:
    """The plugin configuration of reload ``generation``: /api lets gateway
    and IdP consumers in, /admin only consumer1, /app is single sign-on.
    Generations alternate token_ttl and the EXTRA consumer."""
    consumers = [C1.config(), C2.config()]
    if generation % 2:
        consumers.append(EXTRA.config())
    consumers.append({
        "name": ORDERS, "issuer": idp.issuer, "jwks_uri": idp.url("/jwks"), "cluster": IDP_CLUSTER,
        "audiences": [RS256_RESOURCE, ES256_RESOURCE], "claims": {"client_id": APP1.client_id},
        # Short: more key refreshes (and failed ones while the IdP is down).
        "jwks_refresh_seconds": 30,
    })
    oidc = {
        "issuer": idp.issuer, "cluster": IDP_CLUSTER,
        "client_id": APP1.client_id, "client_secret": APP1.client_secret,
        "cookie_secret": COOKIE_SECRET, "cookie_secure": False, "cookie_name": COOKIE,
        "redirect_url": CALLBACK, "scope": "openid email profile",
    }
    return {
        "consumers": consumers,
        "token_ttl": TTLS[generation % 2],
        "global_auth": True,
        "_rules_": [
            {"_match_route_": ["api"], "allow": [C1.name, C2.name, ORDERS]},
            {"_match_route_": ["admin"], "allow": [C1.name]},
            {"_match_route_": ["app", "sso-callback", "sso-sign-out"], "oidc": oidc},
        ],
    }


class LdsFile:
    """The listener, served to Envoy from a watched file (LDS without xDS).

    Envoy reloads when a file is moved into the watched directory, so a new
    version is written next to it and renamed over it (atomic)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.path = directory / "lds.json"
        self.version = 0

    def config_source(self) -> dict:
        return {"path_config_source": {"path": str(self.path), "watched_directory": {"path": str(self.dir)}},
                "resource_api_version": "V3"}

    def write(self, listener: dict) -> None:
        self.version += 1
        doc = {"version_info": str(self.version),
               "resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", **listener}]}
        tmp = self.dir / f".lds-{self.version}.json"
        tmp.write_text(json.dumps(doc, indent=1))
        os.rename(tmp, self.path)


class SoakEnvoy(harness.Envoy):
    """harness.Envoy with more workers (it passes --concurrency 1)."""

    def __init__(self, *args, concurrency: int = CONCURRENCY, **kw) -> None:
        super().__init__(*args, **kw)
        self.concurrency = concurrency

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--concurrency") + 1] = str(self.concurrency)
        return cmd


class Gateway:
    """Envoy with edge-auth, its listener (and plugin configuration) on LDS."""

    def __init__(self, idp: Idp, echo_port: int, listener_port: int, concurrency: int) -> None:
        self.idp = idp
        self.echo_port = echo_port
        self.port = listener_port
        # Every reload reads the .wasm again: a snapshot keeps a rebuild
        # during the run (another VM, other code) out of the measurement.
        self.wasm = harness.run_dir() / "soak-edge_auth.wasm"
        shutil.copyfile(harness.wasm_path(), self.wasm)
        self.admin_port = free_port_except({listener_port, idp.port, echo_port})
        self.lds = LdsFile(harness.run_dir() / "soak-lds")
        self.generation = 0
        bootstrap = self._render(self.generation)
        listener = bootstrap["static_resources"].pop("listeners")[0]
        bootstrap["static_resources"]["clusters"].append(idp_cluster(idp.port))
        bootstrap["dynamic_resources"] = {"lds_config": self.lds.config_source()}
        self.lds.write(listener)
        self.envoy = SoakEnvoy(bootstrap, listener_port, self.admin_port, name="soak",
                               extra_args=["--drain-time-s", str(DRAIN_SECONDS)], concurrency=concurrency)

    def _render(self, generation: int) -> dict:
        """The harness bootstrap with configuration ``generation``."""
        return harness.build_bootstrap(
            listener_port=self.port, admin_port=self.admin_port, upstream_port=self.echo_port,
            http_filters=harness.gateway_filters(plugin_config(self.idp, generation), self.wasm), routes=ROUTES)

    def reload(self) -> int:
        """Write the next configuration generation to the LDS file."""
        self.generation += 1
        self.lds.write(self._render(self.generation)["static_resources"]["listeners"][0])
        return self.generation

    @property
    def ttl(self) -> int:
        return TTLS[self.generation % 2]

    def url(self, path: str) -> str:
        return f"http://{harness.LOCALHOST}:{self.port}{path}"

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{harness.LOCALHOST}:{self.admin_port}{path}", timeout=5) as r:
            return r.read().decode()

    def stats(self, prefix: str) -> dict[str, int]:
        out = {}
        for line in self.admin(f"/stats?filter=^{prefix}").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out

    def request(self, method: str, path: str, headers=None, body=None) -> harness.Response:
        return harness.http_request(self.port, method, path, headers=headers, body=body, timeout=15)


def idp_cluster(port: int) -> dict:
    """The ``idp`` cluster. Node closes idle connections after 5 s; a request
    Envoy sends on one at that moment is reset (a failed code exchange).
    Envoy's advice: close idle upstream connections first."""
    cluster = harness.static_cluster(IDP_CLUSTER, port)
    cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "common_http_protocol_options": {"idle_timeout": f"{IDP_IDLE_TIMEOUT}s"},
        "explicit_http_config": {"http_protocol_options": {}},
    }}
    return cluster


def free_port_except(taken: set[int]) -> int:
    while True:
        p = harness.free_port()
        if p not in taken:
            taken.add(p)
            return p


def envoy_version() -> str:
    out = subprocess.run(harness.envoy_command() + ["--version"], capture_output=True, text=True, timeout=60)
    m = re.search(r"/(\d+\.\d+\.\d+)/", out.stdout)
    return m.group(1) if m else out.stdout.strip()[:80]


def envoy_pid(proc_pid: int) -> int:
    """Envoy's own pid: the child's, or a descendant's when ``$ENVOY`` is a
    launcher such as ``func-e run``."""
    pending = [proc_pid]
    while pending:
        pid = pending.pop(0)
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "envoy":
                return pid
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        pending += [int(c) for c in children]
    return proc_pid


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------

PASS, DENY = "must pass", "must be denied"
# Where a probe may show up at the upstream.
REACHES, NEVER, CLEAN = "reaches", "never", "clean"


@dataclass
class Result:
    kind: str
    expect: str  # PASS / DENY
    t0: float
    t1: float
    status: int | None  # None: no HTTP answer (the note says why)
    ok: bool  # the answer was the expected one
    let_through: bool = False  # a must-be-denied request was answered as if allowed
    note: str = ""


@dataclass
class Probe:
    kind: str
    upstream: str  # REACHES / NEVER / CLEAN


class Ledger:
    """Every request's result and probe, shared by all threads."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.lock = threading.Lock()
        self.results: list[Result] = []
        self.probes: dict[str, Probe] = {}

    def now(self) -> float:
        return time.monotonic() - self.start

    def new_probe(self, kind: str, upstream: str) -> str:
        p = uuid.uuid4().hex
        with self.lock:
            self.probes[p] = Probe(kind, upstream)
        return p

    def add(self, r: Result) -> None:
        with self.lock:
            self.results.append(r)

    def snapshot(self) -> list[Result]:
        with self.lock:
            return list(self.results)


# ---------------------------------------------------------------------------
# Shared state: token pools, sessions, IdP events
# ---------------------------------------------------------------------------


class Pool:
    """The latest ``size`` items of a kind, picked at random (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.items: collections.deque = collections.deque(maxlen=size)
        self.lock = threading.Lock()

    def add(self, item) -> None:
        with self.lock:
            self.items.append(item)

    def replace(self, items: Iterable) -> None:
        with self.lock:
            self.items.clear()
            self.items.extend(items)

    def pick(self):
        with self.lock:
            return random.choice(self.items) if self.items else None


@dataclass
class IdpToken:
    token: str
    generation: int  # the IdP key set that signed it


@dataclass
class Timeline:
    """When the IdP was down and when its keys changed (seconds since start)."""

    outages: list[list[float | None]] = field(default_factory=list)  # [stopped at, back at]
    rotated_at: float | None = None
    rotation_accepted_after: float | None = None
    key_generation: int = 0

    def idp_disturbed(self, t0: float, t1: float) -> bool:
        return any(t0 <= (up if up is not None else float("inf")) + GRACE and t1 >= down - GRACE
                   for down, up in self.outages)


# ---------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------


def page_message(body: bytes) -> str:
    m = PAGE_MESSAGE.search(body.decode("utf-8", "replace"))
    return html.unescape(m.group(1)) if m else body[:80].decode("utf-8", "replace")


def flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]


def error_note(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:120]}"


class Traffic:
    """The request kinds. Each sends one request (a login: one browser
    flow) and records a :class:`Result`."""

    def __init__(self, gw: Gateway, idp: Idp, ledger: Ledger, timeline: Timeline) -> None:
        self.gw = gw
        self.idp = idp
        self.ledger = ledger
        self.timeline = timeline
        self.gw_tokens = {c.name: Pool(16) for c in (C1, C2)}
        self.idp_tokens = Pool(8)  # APP1 (RS256 and ES256): consumer orders-app
        self.idp_stranger = Pool(4)  # APP2: no consumer matches it
        self.sessions = Pool(8)  # (login, Cookie header) of finished browser logins
        self.foreign_key = jf.rsa_key("RS256", kid="soak-foreign")
        self.logins = 0
        # name -> (weight, function); the login thread runs sso_login apart.
        self.mix: dict[str, tuple[int, Callable[[], None]]] = {
            "gateway token, /api": (14, self.gw_valid_api),
            "gateway token, /admin": (4, self.gw_valid_admin),
            "IdP token, /api": (12, self.idp_valid_api),
            "SSO session": (6, self.sso_session),
            "token GET": (6, self.token_get),
            "token POST": (4, self.token_post),
            "gateway token not on allow list": (4, self.gw_not_allowed),
            "gateway token, tampered signature": (4, self.gw_tampered),
            "gateway token, expired": (3, self.gw_expired),
            "gateway token, alg none": (3, self.gw_alg_none),
            "gateway token, other secret": (3, self.gw_other_secret),
            "no token, spoofed X-Mse-Consumer": (3, self.no_token),
            "IdP token not on allow list": (4, self.idp_not_allowed),
            "IdP token, unknown client": (3, self.idp_unknown_client),
            "IdP token, expired": (3, self.idp_expired),
            "IdP kid, foreign key": (3, self.idp_foreign_key),
            "token GET, wrong secret": (3, self.token_bad_secret),
            "token POST, wrong Basic": (3, self.token_bad_basic),
            "token GET, bad grant": (2, self.token_bad_grant),
            "SSO anonymous navigation": (4, self.sso_anonymous_nav),
            "SSO anonymous XHR": (3, self.sso_anonymous_xhr),
            "SSO tampered session": (3, self.sso_tampered_session),
            "callback without login cookie": (3, self.callback_no_cookie),
            "callback with wrong state": (3, self.callback_wrong_state),
            "callback with IdP error": (2, self.callback_idp_error),
        }

    # -- plumbing ---------------------------------------------------------------

    def random_request(self) -> None:
        kinds = list(self.mix)
        name = random.choices(kinds, weights=[self.mix[k][0] for k in kinds])[0]
        self.mix[name][1]()

    def send(self, kind: str, expect: str, upstream: str, method: str, path: str, headers=(),
             body: str | None = None, check: Callable[[harness.Response], str | None] | None = None,
             denied: Iterable[int] = ()) -> harness.Response | None:
        """One request with a probe header. A must-pass request is right when
        ``check`` returns None (else it returns what was wrong); a
        must-be-denied one when its status is in ``denied``; a 2xx answer to
        it is a let-through."""
        p = self.ledger.new_probe(kind, upstream)
        t0 = self.ledger.now()
        try:
            r = self.gw.request(method, path, headers=list(headers) + [(PROBE_HEADER, p)], body=body)
        except Exception as e:  # noqa: BLE001 - any failure to get an answer is recorded
            self.ledger.add(Result(kind, expect, t0, self.ledger.now(), None, False, note=error_note(e)))
            return None
        t1 = self.ledger.now()
        if expect == PASS:
            problem = self.checked(check, r)
            self.ledger.add(Result(kind, expect, t0, t1, r.status, problem is None, note=problem or "",
                                   let_through=(problem or "").startswith(WRONG_IDENTITY)))
        else:
            ok = r.status in denied
            self.ledger.add(Result(kind, expect, t0, t1, r.status, ok, let_through=200 <= r.status < 300,
                                   note="" if ok else r.text[:120]))
        return r

    @staticmethod
    def checked(check: Callable[[harness.Response], str | None] | None, r: harness.Response) -> str | None:
        try:
            return check(r) if check else None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return f"{r.status} unreadable answer: {error_note(e)}"

    @staticmethod
    def served_as(consumer: str) -> Callable[[harness.Response], str | None]:
        """Check of a must-pass API request: the echo answered, for ``consumer``."""
        def check(r: harness.Response) -> str | None:
            if r.status != 200:
                return f"{r.status} {r.text[:100]}"
            seen = r.json()["headers"].get("x-mse-consumer")
            return None if seen == consumer else f"{WRONG_IDENTITY}: {seen!r}, not {consumer!r}"
        return check

    def api(self, kind: str, expect: str, path: str, token: str | None, consumer: str = "",
            denied: Iterable[int] = (), extra=()) -> None:
        headers = [("Host", "gw.soak.test"), *extra]
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        if expect == PASS:
            self.send(kind, PASS, REACHES, "GET", path, headers, check=self.served_as(consumer))
        else:
            self.send(kind, DENY, NEVER, "GET", path, headers, denied=denied)

    def gateway_token(self, c: Consumer) -> str:
        return self.gw_tokens[c.name].pick() or forged(c)

    # -- gateway tokens -----------------------------------------------------------

    def gw_valid_api(self) -> None:
        c = random.choice((C1, C2))
        self.api("gateway token, /api", PASS, f"/api/orders/{random.randint(1, 999)}", self.gateway_token(c), c.name)

    def gw_valid_admin(self) -> None:
        self.api("gateway token, /admin", PASS, "/admin/users", self.gateway_token(C1), C1.name)

    def gw_not_allowed(self) -> None:
        self.api("gateway token not on allow list", DENY, "/admin/users", self.gateway_token(C2), denied=[403])

    def gw_tampered(self) -> None:
        token = jf.tamper_signature(self.gateway_token(random.choice((C1, C2))))
        self.api("gateway token, tampered signature", DENY, "/api/x", token, denied=[401])

    def gw_expired(self) -> None:
        now = int(time.time())
        token = forged(C1, iat=now - 7800, exp=now - 600)  # beyond the 60 s skew
        self.api("gateway token, expired", DENY, "/api/x", token, denied=[401])

    def gw_alg_none(self) -> None:
        token = jwt.assemble({"alg": "none", "typ": jwt.AT_JWT_TYP}, jwt.mse_claims(C1.name, C1.client_id))
        self.api("gateway token, alg none", DENY, "/api/x", token, denied=[401])

    def gw_other_secret(self) -> None:
        self.api("gateway token, other secret", DENY, "/api/x", forged(C1, secret=C2.client_secret), denied=[401])

    def no_token(self) -> None:
        self.api("no token, spoofed X-Mse-Consumer", DENY, "/api/x", None, denied=[401],
                 extra=[("X-Mse-Consumer", C1.name)])

    # -- IdP tokens -----------------------------------------------------------------

    def idp_valid_api(self) -> None:
        held = self.idp_tokens.pick()
        if held is None:
            return
        kind = "IdP token, /api"
        if held.generation != self.timeline.key_generation:
            kind = "IdP token, /api (retired key)"  # judged apart: its key may be gone already
        self.api(kind, PASS, f"/api/orders/{random.randint(1, 999)}", held.token, ORDERS)

    def idp_not_allowed(self) -> None:
        held = self.idp_tokens.pick()
        if held is not None:
            # 401 when the token is of a retired key set (after the rotation)
            self.api("IdP token not on allow list", DENY, "/admin/users", held.token, denied=[403, 401])

    def idp_unknown_client(self) -> None:
        held = self.idp_stranger.pick()
        if held is not None:
            self.api("IdP token, unknown client", DENY, "/api/x", held.token, denied=[401])

    def idp_expired(self) -> None:
        now = int(time.time())
        token = self.idp.forge("RS256", iat=now - 4000, exp=now - 600)
        self.api("IdP token, expired", DENY, "/api/x", token, denied=[401])

    def idp_foreign_key(self) -> None:
        """Claims of a real IdP token and its kid, signed by another key."""
        now = int(time.time())
        claims = jf.claims(self.idp.issuer, RS256_RESOURCE, sub=APP1.client_id, client_id=APP1.client_id,
                           scope="read write", now=now)
        kid = self.idp.key("RS256").kid
        token = jf.sign_jwt(claims, self.foreign_key, typ="at+jwt", kid=kid)
        self.api("IdP kid, foreign key", DENY, "/api/x", token, denied=[401])

    # -- token endpoint -----------------------------------------------------------------

    def issued(self, c: Consumer) -> Callable[[harness.Response], str | None]:
        """Check of a must-pass token request: a token for ``c`` (kept for
        the bearer requests)."""
        def check(r: harness.Response) -> str | None:
            if r.status != 200:
                return f"{r.status} {r.text[:100]}"
            body = r.json()
            token = body.get("access_token", "")
            if body.get("expires_in") not in TTLS or not jwt.verify(token, c.client_secret):
                return f"bad token response {body}"
            self.gw_tokens[c.name].add(token)
            return None
        return check

    def token_get(self) -> None:
        c = random.choice((C1, C2))
        self.send("token GET", PASS, NEVER, "GET", query(TOKEN_PATH, cred_params(c)), check=self.issued(c))

    def token_post(self) -> None:
        # A token request never reaches the upstream, not even its headers
        # (the echo records a request when its headers arrive).
        c = random.choice((C1, C2))
        if random.random() < 0.5:
            headers, body = [("Content-Type", FORM), ("Authorization", basic(c.client_id, c.client_secret))], \
                "grant_type=client_credentials"
        else:
            headers, body = [("Content-Type", FORM)], urlencode(cred_params(c))
        self.send("token POST", PASS, NEVER, "POST", TOKEN_PATH, headers, body=body, check=self.issued(c))

    def token_bad_secret(self) -> None:
        params = [("grant_type", "client_credentials"), ("client_id", C1.client_id),
                  ("client_secret", C2.client_secret)]
        self.send("token GET, wrong secret", DENY, NEVER, "GET", query(TOKEN_PATH, params), denied=[400])

    def token_bad_basic(self) -> None:
        headers = [("Content-Type", FORM), ("Authorization", basic(C2.client_id, C1.client_secret))]
        self.send("token POST, wrong Basic", DENY, NEVER, "POST", TOKEN_PATH, headers,
                  body="grant_type=client_credentials", denied=[401])

    def token_bad_grant(self) -> None:
        params = cred_params(C1, grant_type="password")
        self.send("token GET, bad grant", DENY, NEVER, "GET", query(TOKEN_PATH, params), denied=[400])

    # -- single sign-on ---------------------------------------------------------------------

    def sso_session(self) -> None:
        held = self.sessions.pick()
        if held is None:
            return
        login, cookie = held
        self.send("SSO session", PASS, REACHES, "GET", f"/app/home?n={random.randint(1, 999)}",
                  [("Accept", NAV_ACCEPT), ("Cookie", cookie)], check=self.served_as(login))

    def sso_tampered_session(self) -> None:
        held = self.sessions.pick()
        if held is None:
            return
        _, cookie = held
        name, _, value = cookie.partition("=")
        bad = f"{name}={flip(value, random.randrange(len(value)))}"
        self.send("SSO tampered session", DENY, NEVER, "GET", "/app/home",
                  [("Accept", NAV_ACCEPT), ("Cookie", bad)], denied=[302])

    def sso_anonymous_nav(self) -> harness.Response | None:
        return self.send("SSO anonymous navigation", DENY, NEVER, "GET", "/app/page", [("Accept", NAV_ACCEPT)],
                  denied=[302])

    def sso_anonymous_xhr(self) -> None:
        self.send("SSO anonymous XHR", DENY, NEVER, "GET", "/app/api",
                  [("Accept", "application/json"), ("X-Requested-With", "XMLHttpRequest")], denied=[401])

    def callback_no_cookie(self) -> None:
        path = f"{CALLBACK}?{urlencode({'code': uuid.uuid4().hex, 'state': uuid.uuid4().hex})}"
        self.send("callback without login cookie", DENY, NEVER, "GET", path, [("Accept", NAV_ACCEPT)],
                  denied=[403])

    def callback_wrong_state(self) -> None:
        """A real login cookie (from an anonymous navigation, itself a
        must-be-denied request), presented with another state (CSRF)."""
        start = self.sso_anonymous_nav()
        cookies = [c.split(";", 1)[0] for c in (start.headers.get_all("Set-Cookie") or [])] if start else []
        if not cookies:
            return
        path = f"{CALLBACK}?{urlencode({'code': uuid.uuid4().hex, 'state': uuid.uuid4().hex})}"
        self.send("callback with wrong state", DENY, NEVER, "GET", path,
                  [("Accept", NAV_ACCEPT), ("Cookie", "; ".join(cookies))], denied=[403])

    def callback_idp_error(self) -> None:
        path = f"{CALLBACK}?{urlencode({'error': 'access_denied', 'state': uuid.uuid4().hex})}"
        self.send("callback with IdP error", DENY, NEVER, "GET", path, [("Accept", NAV_ACCEPT)], denied=[403])

    def sso_login(self) -> None:
        """A full browser login (IdP login and consent forms); the landing
        page must come from the upstream for this user. The probe rides in
        the query string, which the plugin carries through the login."""
        self.logins += 1
        login = f"soak-user-{self.logins}"
        kind = "SSO browser login"
        p = self.ledger.new_probe(kind, REACHES)
        path = f"/app/landing?probe={p}"
        browser = Browser(login=login, name=login, timeout=15)
        t0 = self.ledger.now()
        try:
            page = browser.navigate(self.gw.url(path))
        except Exception as e:  # noqa: BLE001 - e.g. the IdP is down: recorded
            self.ledger.add(Result(kind, PASS, t0, self.ledger.now(), None, False, note=error_note(e)))
            return
        t1 = self.ledger.now()
        first = page.history[0]
        if 200 <= first.status < 300:  # the first, anonymous hop was served
            self.ledger.add(Result(kind + " (first hop)", DENY, t0, t1, first.status, False, let_through=True,
                                   note=first.text[:120]))
        if page.status != 200:
            problem = f"{page.status} at {urlsplit(page.url).path}: {page_message(page.final.body)}"
        else:
            problem = self.checked(self.served_as(login), harness.Response(200, page.final.headers, page.final.body))
        self.ledger.add(Result(kind, PASS, t0, t1, page.status, problem is None, note=problem or "",
                               let_through=(problem or "").startswith(WRONG_IDENTITY)))
        session = browser.jar.get(COOKIE)  # (the jar also holds the IdP's cookies: same host)
        if problem is None and session is not None:
            self.sessions.add((login, f"{COOKIE}={session.value}"))


# ---------------------------------------------------------------------------
# IdP tokens
# ---------------------------------------------------------------------------


def fetch_idp_tokens(idp: Idp, generation: int) -> tuple[list[IdpToken], list[IdpToken]]:
    """Fresh APP1 tokens (RS256 and ES256, for orders-app) and APP2 tokens."""
    good = [IdpToken(idp.client_credentials_token(APP1, res), generation)
            for res in (RS256_RESOURCE, ES256_RESOURCE) for _ in range(2)]
    stranger = [IdpToken(idp.client_credentials_token(APP2, RS256_RESOURCE), generation)]
    return good, stranger


def wait_accepted(gw: Gateway, token: str, timeout: float) -> float | None:
    """Seconds until ``token`` is served on /api (None: not within ``timeout``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            r = gw.request("GET", "/api/ready", headers=[("Authorization", f"Bearer {token}")])
            if r.status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.25)
    return None


# ---------------------------------------------------------------------------
# Faults: IdP outages and configuration reloads
# ---------------------------------------------------------------------------


@dataclass
class Reload:
    at: float
    generation: int
    applied: bool = False
    seconds: float | None = None  # until the new configuration answered
    note: str = ""


class Conductor(threading.Thread):
    """Runs the fault timeline: IdP stops and starts, configuration reloads."""

    def __init__(self, gw: Gateway, idp: Idp, traffic: Traffic, ledger: Ledger, timeline: Timeline,
                 duration: float, stop: threading.Event) -> None:
        super().__init__(name="conductor", daemon=True)
        self.gw, self.idp, self.traffic, self.ledger, self.timeline = gw, idp, traffic, ledger, timeline
        self.stop_event = stop
        self.reloads: list[Reload] = []
        self.errors: list[str] = []
        self.events = plan(duration)

    def run(self) -> None:
        for at, action in self.events:
            if self.stop_event.wait(max(0.0, at - self.ledger.now())):
                break
            try:
                action(self)
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                self.errors.append(f"{self.ledger.now():.0f}s {action.__name__}: {error_note(e)}")

    # -- actions ---------------------------------------------------------------

    def say(self, message: str) -> None:
        print(f"  {self.ledger.now():6.0f} s  {message}", flush=True)

    def idp_stop(self) -> None:
        self.timeline.outages.append([self.ledger.now(), None])
        self.idp.stop()
        self.say("IdP stopped")

    def idp_start(self) -> None:
        self.idp.start()
        self.timeline.outages[-1][1] = self.ledger.now()
        self.say("IdP started")
        self.refresh_idp_tokens(self.timeline.key_generation)

    def idp_start_rotated(self) -> None:
        """Back with a new key set. From now on the pooled tokens are of the
        retired set (judged apart: they pass until the plugin drops the old
        keys). The plugin learns the new set on the first token naming an
        unknown kid (one refetch per 30 s at most); new tokens join the
        pool once one of them is accepted."""
        self.idp.set_keys(make_keyset(tag=f"g{self.timeline.key_generation + 1}")[0])
        self.timeline.key_generation += 1
        self.idp.start()
        self.timeline.outages[-1][1] = self.timeline.rotated_at = self.ledger.now()
        self.say("IdP started with a new key set")
        good, stranger = fetch_idp_tokens(self.idp, self.timeline.key_generation)
        took = wait_accepted(self.gw, good[0].token, ROTATION_WAIT)
        self.timeline.rotation_accepted_after = took
        self.traffic.idp_tokens.replace(good)
        self.traffic.idp_stranger.replace(stranger)
        if took is None:
            self.errors.append(f"tokens of the new IdP key set not accepted within {ROTATION_WAIT:.0f}s")
        else:
            self.say(f"tokens of the new key set accepted after {took:.1f} s")

    def refresh_idp_tokens(self, generation: int) -> None:
        good, stranger = fetch_idp_tokens(self.idp, generation)
        self.traffic.idp_tokens.replace(good)
        self.traffic.idp_stranger.replace(stranger)

    def reload(self) -> None:
        before = self.gw.stats("listener_manager.lds.")
        rec = Reload(self.ledger.now(), self.gw.reload())
        self.reloads.append(rec)
        t0 = time.monotonic()
        rec.applied, rec.note = self.verify_reload(before, t0 + RELOAD_WAIT)
        rec.seconds = time.monotonic() - t0
        self.say(f"configuration {rec.generation} " + ("applied" if rec.applied else f"NOT applied: {rec.note}")
                 + f" ({rec.seconds:.2f} s)")

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
    """The fault timeline, (seconds since start, action), in time order.
    Outages every OUTAGE_PERIOD s (shorter runs: one, scaled down); the last
    one of two or more restarts the IdP with a new key set. Reloads every
    RELOAD_PERIOD s (shorter runs: three)."""
    length = min(OUTAGE_LENGTH, duration / 6)
    first = min(OUTAGE_PERIOD * 0.75, duration * 0.25)
    starts = []
    t = first
    while t + length < duration - 15:
        starts.append(t)
        t += OUTAGE_PERIOD
    events: list[tuple[float, Callable[[Conductor], None]]] = []
    for i, s in enumerate(starts):
        rotate = len(starts) >= 2 and i == len(starts) - 1
        events.append((s, Conductor.idp_stop))
        events.append((s + length, Conductor.idp_start_rotated if rotate else Conductor.idp_start))
    period = min(RELOAD_PERIOD, duration / 3)
    t = min(RELOAD_PERIOD * 0.6, period * 0.5)
    while t < duration - 10:
        events.append((t, Conductor.reload))
        t += period
    return sorted(events, key=lambda e: e[0])


# ---------------------------------------------------------------------------
# Load and monitoring
# ---------------------------------------------------------------------------


def paced(interval: float, stop: threading.Event, end: float, step: Callable[[], None], ledger: Ledger) -> None:
    """Call ``step`` every ``interval`` seconds until ``end`` (monotonic) or
    stop. A bug in a step is recorded (an unexplained result), so a client
    thread never dies quietly and the load with it."""
    nxt = time.monotonic()
    while not stop.is_set() and time.monotonic() < end:
        try:
            step()
        except Exception as e:  # noqa: BLE001 - recorded, the thread goes on
            t = ledger.now()
            ledger.add(Result(f"soak client error in {getattr(step, '__name__', step)}", PASS, t, t, None, False,
                              note=error_note(e)))
        nxt += interval
        stop.wait(max(0.0, nxt - time.monotonic()))


@dataclass
class Sample:
    t: float
    rss_kb: int
    allocated: int | None  # tcmalloc: bytes in use
    heap_size: int | None  # tcmalloc: bytes reserved


class Monitor:
    """Envoy's memory every SAMPLE_SECONDS, its liveness and wasm failures
    in its log."""

    def __init__(self, gw: Gateway, ledger: Ledger) -> None:
        self.gw = gw
        self.ledger = ledger
        self.samples: list[Sample] = []
        self.failures: list[str] = []
        self.log_offset = 0
        self.pid: int | None = None

    def sample(self) -> None:
        if self.pid is None:
            self.pid = envoy_pid(self.gw.envoy.pid)
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))
        try:
            memory = json.loads(self.gw.admin("/memory"))
            allocated, heap = int(memory["allocated"]), int(memory["heap_size"])
        except (OSError, ValueError, KeyError):
            allocated = heap = None
        self.samples.append(Sample(self.ledger.now(), rss, allocated, heap))

    def write_csv(self, path: Path) -> None:
        rows = ["seconds,rss_kb,allocated,heap_size"]
        rows += [f"{s.t:.1f},{s.rss_kb},{s.allocated},{s.heap_size}" for s in self.samples]
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
        except (OSError, AttributeError) as e:
            self.failures.append(f"cannot sample memory: {error_note(e)}")
            return False
        return True


# ---------------------------------------------------------------------------
# Verdict
# ---------------------------------------------------------------------------


def probes_upstream(echo: EchoServer) -> dict[str, list[dict]]:
    """The echo's requests by probe (header, or ``probe`` query parameter)."""
    seen: dict[str, list[dict]] = collections.defaultdict(list)
    for req in echo.requests:
        p = req["headers"].get(PROBE_HEADER.lower())
        if p is None:
            p = parse_qs(urlsplit(req["path"]).query).get("probe", [None])[0]
        if isinstance(p, str):
            seen[p].append(req)
    return seen


def upstream_violations(ledger: Ledger, echo: EchoServer) -> list[str]:
    """Probes that reached the upstream although their request had to be
    answered by the plugin (or, for CLEAN probes, reached it with credentials
    or a body). The echo records requests when their headers arrive."""
    out = []
    for p, reqs in probes_upstream(echo).items():
        probe = ledger.probes.get(p)
        if probe is None or probe.upstream == REACHES:
            continue
        for q in reqs:
            h = q["headers"]
            leaked = probe.upstream == NEVER or "authorization" in h or "x-mse-consumer" in h or q["body"]
            if leaked:
                out.append(f"{probe.kind}: {q['method']} {q['path']} reached the upstream")
    return out


IDP_DOWN = "IdP down (a login needs it)"
RETIRED = "token of the retired key set"


def explain(r: Result, timeline: Timeline) -> str | None:
    """The fault that explains a request not answered as expected (never a
    let-through), or None."""
    # Down IdP: the browser cannot reach it (no status), or the plugin's code
    # exchange fails (403 page, README) or cannot be sent (503).
    if r.kind == "SSO browser login" and timeline.idp_disturbed(r.t0, r.t1) and r.status in (None, 403, 503):
        return IDP_DOWN
    # No excuse for the key rotation: the callback fetches the new keys.
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


def memory_verdict(samples: list[Sample], warm_up: float) -> dict:
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
    }


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def mb(value: float | None, unit: int) -> str:
    return "n/a" if value is None else f"{value * unit / 1e6:.1f}"


def pct(value: float | None, base: float | None) -> str:
    return "n/a" if value is None or not base else f"{(value / base - 1) * 100:+.1f}%"


def statuses(rs: list[Result]) -> str:
    c = collections.Counter(str(r.status) if r.status is not None else r.note.split(":", 1)[0] for r in rs)
    return ", ".join(f"{k}×{v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))


def kind_table(results: list[Result], judged: Judged) -> list[str]:
    rows = ["| kind | expectation | requests | as expected | explained by a fault | unexplained | let through "
            "| statuses seen |",
            "|---|---|---:|---:|---:|---:|---:|---|"]
    by_kind: dict[tuple[str, str], list[Result]] = collections.defaultdict(list)
    for r in results:
        by_kind[(r.expect, r.kind)].append(r)
    unexplained = collections.Counter(r.kind for r in judged.unexplained)
    for (expect, kind), rs in sorted(by_kind.items(), key=lambda kv: (kv[0][0] != PASS, kv[0][1])):
        explained = sum(v for (k, _), v in judged.explained.items() if k == kind)
        rows.append(f"| {kind} | {expect} | {len(rs)} | {sum(r.ok for r in rs)} | {explained} "
                    f"| {unexplained[kind]} | {sum(r.let_through for r in rs)} | {statuses(rs)} |")
    return rows


def render_report(ctx: dict) -> str:
    """The ``soak`` section of BENCHMARKS.md."""
    parts = [report_header(ctx), report_requests(ctx), report_faults(ctx), report_memory(ctx)]
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def report_header(ctx: dict) -> list[str]:
    lines = [
        f"## Soak: {ctx['actual']:.0f} s of mixed traffic with IdP outages and config reloads",
        "",
        f"Written by `make soak` (`e2e/soak.py --duration {ctx['duration']:.0f}`) on {ctx['date']}, "
        f"commit {ctx['commit']}. Envoy {ctx['envoy']} (V8), `--concurrency {ctx['concurrency']}`, "
        f"`--drain-time-s {DRAIN_SECONDS}`, plugin configuration on file-based LDS, `idp` cluster "
        f"`idle_timeout: {IDP_IDLE_TIMEOUT}s`; {ctx['workers']} client threads at {ctx['rate']:.0f} req/s "
        f"in all plus one browser login every {ctx['login_interval']:.0f} s; everything on 127.0.0.1.",
        "",
        f"**Verdict: {'PASS' if ctx['passed'] else 'FAIL'}**",
        "",
        "| check | result |",
        "|---|---|",
    ]
    return lines + [f"| {name} | {'ok' if ok else 'FAILED'}: {detail} |" for name, ok, detail in ctx["checks"]]


def report_requests(ctx: dict) -> list[str]:
    results, judged = ctx["results"], ctx["judged"]
    lines = [f"### Requests ({len(results)}, {len(results) / ctx['actual']:.1f}/s)", ""]
    lines += kind_table(results, judged)
    causes: collections.Counter = collections.Counter()
    for (_, cause), n in judged.explained.items():
        causes[cause] += n
    lines += ["", "Answers other than the expected one, by the fault that explains them (never a 2xx to a "
              "must-be-denied request): " + ("; ".join(f"{c}: {n}" for c, n in causes.most_common()) or "none") + "."]
    if judged.unexplained:
        lines += ["", "Unexplained (first 10):", ""]
        lines += [f"- {r.t0:.1f} s {r.kind}: {r.status} {r.note}" for r in judged.unexplained[:10]]
    return lines


def report_faults(ctx: dict) -> list[str]:
    outages = ", ".join(f"{d:.0f}–{u:.0f} s" if u is not None else f"{d:.0f} s–end" for d, u in ctx["outages"])
    lines = ["### Faults", "", f"- IdP outages: {len(ctx['outages'])} — {outages}."]
    rot = ctx["timeline"]
    if rot.rotated_at is not None:
        took = rot.rotation_accepted_after
        lines.append(f"- Key rotation: the IdP came back at {rot.rotated_at:.0f} s with a new key set; its tokens "
                     + (f"were accepted {took:.1f} s later" if took is not None else "were never accepted") + ".")
    applied = [r for r in ctx["reloads"] if r.applied]
    at = ", ".join(f"{r.at:.0f} s ({r.seconds:.2f} s)" if r.seconds is not None else f"{r.at:.0f} s"
                   for r in ctx["reloads"])
    lines.append(f"- Configuration reloads through the LDS file: {len(applied)} of {len(ctx['reloads'])} applied "
                 f"(token_ttl and consumer-extra observed), at {at}; LDS update_success {ctx['lds_success']}.")
    lines += [f"- Conductor: {err}" for err in ctx["conductor_errors"]]
    for title, stats in (("Plugin counters at the end", ctx["counters"]),
                         ("Envoy's `idp` cluster (key fetches, code exchanges)", ctx["idp_cluster"])):
        if stats:
            lines += ["", f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())) + "."]
    return lines


def report_memory(ctx: dict) -> list[str]:
    m = ctx["memory"]
    lines = [f"### Envoy memory (warm-up: first {ctx['warm_up']:.0f} s, samples every {SAMPLE_SECONDS:.0f} s)", ""]
    if "base" not in m:
        return lines + [f"No verdict: {m.get('why')}."]
    base, last = m["base"], m["last"]
    return lines + [
        "| | end of warm-up | max after warm-up | end of run | max vs warm-up |",
        "|---|---:|---:|---:|---:|",
        f"| RSS (MB) | {mb(base.rss_kb, 1024)} | {mb(m['peak_rss'], 1024)} | {mb(last.rss_kb, 1024)} "
        f"| {pct(m['peak_rss'], base.rss_kb)} |",
        f"| /memory allocated (MB) | {mb(base.allocated, 1)} | {mb(m['peak_alloc'], 1)} "
        f"| {mb(last.allocated, 1)} | {pct(m['peak_alloc'], base.allocated)} |",
    ]


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def warm_up_seconds(duration: float) -> float:
    return max(duration * 0.2, 60.0) if duration >= 300 else duration * 0.2


def git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=harness.REPO_ROOT,
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or "unknown"


class Services:
    """The echo upstream, the IdP and the gateway; :meth:`stop` stops
    whichever of them were started."""

    def __init__(self) -> None:
        self.echo: EchoServer | None = None
        self.idp: Idp | None = None
        self.gw: Gateway | None = None

    def start(self, concurrency: int) -> "Services":
        self.echo = EchoServer().start()
        listener = harness.free_port()
        # The IdP must know the gateway's callback URL before it starts.
        self.idp = Idp(port=free_port_except({listener, self.echo.port}), name="soak",
                       redirect_uris=[f"http://{harness.LOCALHOST}:{listener}{CALLBACK}"],
                       access_token_ttl=3600, id_token_ttl=3600)
        self.idp.start()
        self.gw = Gateway(self.idp, self.echo.port, listener, concurrency)
        self.gw.envoy.start()
        return self

    def stop(self) -> None:
        for svc in (self.gw.envoy if self.gw else None, self.idp, self.echo):
            if svc is not None:
                svc.stop()


def wait_ready(gw: Gateway, traffic: Traffic) -> None:
    """The remote keys and the IdP's discovery document are in (an IdP
    token is served, anonymous /app navigation redirects), and every pool
    has something."""
    traffic.idp_tokens.replace(fetch_idp_tokens(traffic.idp, 0)[0])
    traffic.idp_stranger.replace(fetch_idp_tokens(traffic.idp, 0)[1])
    if wait_accepted(gw, traffic.idp_tokens.pick().token, SETUP_WAIT) is None:
        raise RuntimeError("IdP tokens not accepted after start-up\n" + gw.envoy.log_tail(40))
    deadline = time.monotonic() + SETUP_WAIT
    while gw.request("GET", "/app/ready", headers=[("Accept", NAV_ACCEPT)]).status != 302:
        if time.monotonic() > deadline:
            raise RuntimeError("SSO not ready after start-up\n" + gw.envoy.log_tail(40))
        time.sleep(0.2)
    for c in (C1, C2):
        r = gw.request("GET", query(TOKEN_PATH, cred_params(c)))
        traffic.gw_tokens[c.name].add(r.json()["access_token"])


def run(args) -> int:
    duration = float(args.duration)
    stop = threading.Event()
    services = Services()
    try:
        gw, idp = services.start(args.concurrency).gw, services.idp
        ledger, timeline = Ledger(time.monotonic()), Timeline()
        traffic = Traffic(gw, idp, ledger, timeline)
        wait_ready(gw, traffic)
        ledger.start = time.monotonic()  # the run's clock starts with the load
        end = ledger.start + duration
        threads = [threading.Thread(target=paced, name=f"worker-{i}", daemon=True,
                                    args=(args.workers / args.rate, stop, end, traffic.random_request, ledger))
                   for i in range(args.workers)]
        threads.append(threading.Thread(target=paced, name="logins", daemon=True,
                                        args=(args.login_interval, stop, end, traffic.sso_login, ledger)))
        conductor = Conductor(gw, idp, traffic, ledger, timeline, duration, stop)
        monitor = Monitor(gw, ledger)
        lds_before = gw.stats("listener_manager.lds.").get("listener_manager.lds.update_success", 0)
        print(f"soak: {duration:.0f} s; Envoy pid {gw.envoy.pid}, listener {gw.port}, admin {gw.admin_port}, "
              f"IdP {idp.port}; log {gw.envoy.log_path}", flush=True)
        for t in threads + [conductor]:
            t.start()
        alive = watch(monitor, ledger, end, stop)
        stop.set()
        for t in threads + [conductor]:
            t.join(timeout=60)
        time.sleep(1.0)  # let the echo finish recording late requests
        alive = alive and monitor.check()
        ctx = conclude(args, duration, ledger, timeline, conductor, monitor, services.echo, gw, alive, lds_before,
                       list(traffic.mix))
    finally:
        stop.set()
        services.stop()
    report = render_report(ctx)
    report_section.replace_section("soak", report)
    print(report)
    return 0 if ctx["passed"] else 1


def watch(monitor: Monitor, ledger: Ledger, end: float, stop: threading.Event) -> bool:
    """Sample until ``end``; False as soon as Envoy is gone."""
    alive = monitor.check()
    rounds = 0
    while alive and time.monotonic() < end:
        stop.wait(min(SAMPLE_SECONDS, max(0.0, end - time.monotonic())))
        alive = monitor.check()
        rounds += 1
        if rounds % 6 == 0:
            progress(ledger, monitor)
    return alive


def progress(ledger: Ledger, monitor: Monitor) -> None:
    results = ledger.snapshot()
    bad = sum(1 for r in results if not r.ok)
    s = monitor.samples[-1] if monitor.samples else None
    rss = f"{mb(s.rss_kb, 1024)} MB" if s else "?"
    print(f"  {ledger.now():6.0f} s  requests {len(results):6d}  not as expected {bad:4d}  RSS {rss}", flush=True)


def idle_kinds(results: list[Result], kinds: Iterable[str]) -> list[str]:
    """Kinds never sent, and must-pass kinds never served (the run proved nothing about them)."""
    sent = {r.kind for r in results}
    served = {r.kind for r in results if r.expect == PASS and r.ok}
    out = [f"{k}: never sent" for k in [*kinds, "SSO browser login"] if k not in sent]
    out += [f"{k}: never served" for k in sent - served if any(r.kind == k and r.expect == PASS for r in results)
            and not k.endswith("(retired key)")]
    return sorted(out)


def conclude(args, duration, ledger, timeline, conductor, monitor, echo, gw, alive, lds_before,
             traffic_kinds: Iterable[str]) -> dict:
    warm_up = warm_up_seconds(duration)
    results = ledger.snapshot()
    judged = judge(results, timeline)
    let_through = [f"{r.kind}: answered {r.status}" for r in results if r.let_through and r.expect == DENY]
    wrong_identity = [r for r in results if r.note.startswith(WRONG_IDENTITY)]
    upstream = upstream_violations(ledger, echo)
    memory = memory_verdict(monitor.samples, warm_up)
    applied = [r for r in conductor.reloads if r.applied]
    monitor.write_csv(gw.envoy.workdir / "memory.csv")
    try:
        counters = {k.removeprefix("wasmcustom.edge_auth_"): v for k, v in gw.stats("wasmcustom.edge_auth_").items()}
        idp_cluster = {k.removeprefix("cluster.idp."): v for k, v in gw.stats("cluster.idp.").items()
                       if k.removeprefix("cluster.idp.") in IDP_CLUSTER_STATS}
        lds_success = gw.stats("listener_manager.lds.").get("listener_manager.lds.update_success", 0) - lds_before
    except OSError:
        counters, idp_cluster, lds_success = {}, {}, "n/a"
    idle = idle_kinds(results, traffic_kinds)
    checks = [
        ("every kind of request sent, every must-pass kind served", not idle,
         "; ".join(idle) or f"{len(traffic_kinds) + 1} kinds"),
        ("Envoy alive, no wasm failure in its log", alive and not monitor.failures,
         "; ".join(monitor.failures[:3]) or "no crash, no panic, no VM failure"),
        ("must-be-denied requests let through", not (let_through or upstream or wrong_identity),
         f"{len(let_through)} answered 2xx, {len(upstream)} reached the upstream, "
         f"{len(wrong_identity)} served as another consumer"
         + ("".join(f"; {x}" for x in (let_through + upstream)[:5]))),
        ("every other answer as expected or explained by a fault", not judged.unexplained,
         f"{len(judged.unexplained)} unexplained, {sum(judged.explained.values())} explained" + "".join(
             f"; {r.kind}: {r.status} {r.note[:60]}" for r in judged.unexplained[:3])),
        ("Envoy RSS within +10% after warm-up", memory["ok"],
         f"{memory['growth'] * 100:+.1f}%" if "growth" in memory else memory.get("why", "")),
        ("configuration reloads applied", bool(conductor.reloads) and len(applied) == len(conductor.reloads),
         f"{len(applied)} of {len(conductor.reloads)}"
         + "".join(f"; {r.at:.0f} s: {r.note}" for r in conductor.reloads if not r.applied)),
        ("IdP outages carried out", bool(timeline.outages) and not conductor.errors,
         f"{len(timeline.outages)}" + "".join(f"; {e}" for e in conductor.errors[:3])),
    ]
    return {
        "duration": duration, "actual": min(ledger.now(), duration), "warm_up": warm_up,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "envoy": envoy_version(), "concurrency": args.concurrency,
        "workers": args.workers, "rate": args.rate, "login_interval": args.login_interval,
        "results": results, "judged": judged, "memory": memory, "checks": checks,
        "passed": all(ok for _, ok, _ in checks), "outages": timeline.outages, "timeline": timeline,
        "reloads": conductor.reloads, "lds_success": lds_success, "conductor_errors": conductor.errors,
        "counters": counters, "idp_cluster": idp_cluster,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    ap.add_argument("--workers", type=int, default=4, help="client threads (default 4)")
    ap.add_argument("--rate", type=float, default=40, help="requests per second, all workers (default 40)")
    ap.add_argument("--login-interval", type=float, default=3, help="seconds between browser logins (default 3)")
    ap.add_argument("--concurrency", type=int, default=CONCURRENCY, help="Envoy worker threads (default 2)")
    args = ap.parse_args(argv)
    if args.duration < 30 or args.workers < 1 or args.rate <= 0:
        ap.error("need --duration >= 30, --workers >= 1, --rate > 0")
    return args


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not harness.wasm_path().is_file():
        print(f"soak: {harness.wasm_path()} is missing: run `make build`", file=sys.stderr)
        return 2
    # SIGTERM stops the run like Ctrl-C: the finally blocks stop every process.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
