"""The parts the soak runs: the echo upstream (in a child process, so its
threads do not compete with the load for this process's interpreter), the
IdP behind a :class:`~soak.slow_proxy.SlowProxy`, and Envoy with edge-auth
whose listener (and so the plugin configuration) is served from a watched
file (LDS without xDS), so it can be reloaded under load."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import harness
import jose_forge as jf
from common import C1, C2, PROBE_HEADER, Consumer
from idp_control import APP1, ES256_RESOURCE, IDP_CLUSTER, RS256_RESOURCE, Idp

from soak.records import REACHES_SUFFIX
from soak.slow_proxy import SlowProxy

CONCURRENCY = 2
# Envoy keeps a replaced filter chain for the drain time (default 600 s);
# a short one lets the old plugin instances go while the run is watched.
DRAIN_SECONDS = 5
# Envoy's background release of free heap memory (bootstrap
# `memory_allocator_manager`): up to this many bytes every second.
MEMORY_ALLOCATOR_MANAGER = {"bytes_to_release": 8 * 1024 * 1024, "memory_release_interval": "1s"}
IDP_IDLE_TIMEOUT = 2  # seconds, below Node's 5 s keep-alive (see idp_cluster)
# Short, so a revoked key must be gone within seconds (the plugin's minimum).
JWKS_REFRESH_SECONDS = 10
JWKS_TIMEOUT_MS = 2000
# How long a token POST may wait for its body (the slowloris fault checks it).
TOKEN_BODY_TIMEOUT_MS = 3000
# IdP access tokens (and so SSO sessions) live this long: sessions refresh
# (refresh_token grant) several times in any run.
IDP_TOKEN_TTL = 15

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
ORDERS = "orders-app"  # the IdP's APP1 (and its users' tokens) as a JWT consumer
# Present only in odd configuration generations: tells a reload took effect.
EXTRA = Consumer("consumer-extra", "cx-3b9f1e7a5c2d4f6e8a0b1c3d5e7f9a1b", "sx-Hn4Tb8Wq2Ze6Rk0Mv5Jy9Lc3Pd7Gf1Sa")
TTLS = (7200, 3600)  # token_ttl of even / odd configuration generations


def plugin_config(issuer: str, generation: int) -> dict:
    """The plugin configuration of reload ``generation``: /api lets gateway
    and IdP consumers in, /admin only consumer1, /app is single sign-on
    (with refresh tokens). Generations alternate token_ttl and EXTRA."""
    consumers = [C1.config(), C2.config()]
    if generation % 2:
        consumers.append(EXTRA.config())
    consumers.append({
        "name": ORDERS, "issuer": issuer, "jwks_uri": issuer + "/jwks", "cluster": IDP_CLUSTER,
        "audiences": [RS256_RESOURCE, ES256_RESOURCE], "claims": {"client_id": APP1.client_id},
        "jwks_refresh_seconds": JWKS_REFRESH_SECONDS, "jwks_timeout_ms": JWKS_TIMEOUT_MS,
    })
    oidc = {
        "issuer": issuer, "cluster": IDP_CLUSTER,
        "client_id": APP1.client_id, "client_secret": APP1.client_secret,
        "cookie_secret": COOKIE_SECRET, "cookie_secure": False, "cookie_name": COOKIE,
        "redirect_url": CALLBACK, "scope": "openid email profile offline_access",
    }
    return {
        "consumers": consumers,
        "token_ttl": TTLS[generation % 2],
        "token_body_timeout_ms": TOKEN_BODY_TIMEOUT_MS,
        "global_auth": True,
        "_rules_": [
            {"_match_route_": ["api"], "allow": [C1.name, C2.name, ORDERS]},
            {"_match_route_": ["admin"], "allow": [C1.name]},
            {"_match_route_": ["app", "sso-callback", "sso-sign-out"], "oidc": oidc},
        ],
    }


# ---------------------------------------------------------------------------
# Key sets: rotation and revocation are IdP restarts with another set
# ---------------------------------------------------------------------------


class KeyPlan:
    """The IdP's key sets over the run. ``revocable`` (RS384: the IdP never
    signs with it, the soak signs users' tokens with it) is served until the
    revocation; the RS256/ES256 pair changes at the rotation."""

    def __init__(self) -> None:
        self.revocable = jf.key_for_alg("RS384", kid=f"rs384-revocable-{os.urandom(4).hex()}")
        self.pairs = [[jf.key_for_alg(a, kid=f"{a.lower()}-g{g}-{os.urandom(4).hex()}") for a in ("RS256", "ES256")]
                      for g in range(2)]

    def keyset(self, generation: int, revoked: bool = False) -> dict:
        keys = list(self.pairs[generation]) + ([] if revoked else [self.revocable])
        return jf.private_jwks(*keys)


# ---------------------------------------------------------------------------
# Echo upstream in a child process
# ---------------------------------------------------------------------------


def _echo_child(conn) -> None:
    from echo_server import EchoServer

    class LeakRecorder(EchoServer):
        """The echo, keeping (at header time, as EchoServer does) only the
        requests whose probe does not say they may reach it: a soak sends
        hundreds of thousands of requests, and keeping them all would grow
        this process by gigabytes and stall it in garbage collection."""

        passed = 0

        def _record_request(self, rec: dict) -> None:
            p = _probe_of(rec)
            if p is None or p.endswith(REACHES_SUFFIX):
                self.passed += 1
                return
            super()._record_request(rec)

    echo = LeakRecorder()
    # socketserver listens with a backlog of 5: when Envoy opens dozens of
    # upstream connections at once, the rest time out in the SYN queue
    # (503 "upstream connect error ... connection timeout"). Listening
    # again on the bound socket only raises the backlog.
    echo._httpd.socket.listen(1024)
    echo.start()
    conn.send(echo.port)
    while True:
        cmd = conn.recv()
        if cmd == "probes":
            conn.send(_probes_seen(echo.requests))
        elif cmd == "count":
            conn.send(echo.count() + echo.passed)
        else:
            echo.stop()
            conn.send("stopped")
            return


def _probe_of(r: dict) -> str | None:
    """The request's probe: its header, or a ``probe`` query parameter (browser navigations)."""
    p = r["headers"].get(PROBE_HEADER.lower())
    if p is None and "probe=" in r["path"]:
        p = parse_qs(urlsplit(r["path"]).query).get("probe", [None])[0]
    return p if isinstance(p, str) else None


def _probes_seen(requests: list[dict]) -> list[tuple]:
    """(probe, method, path, state, has Authorization, has X-Mse-Consumer,
    has a body) of each request that carried a probe (header, or ``probe``
    query parameter for browser navigations)."""
    out = []
    for r in requests:
        h = r["headers"]
        p = _probe_of(r)
        if p is not None:
            out.append((p, r["method"], r["path"], r.get("state"), "authorization" in h, "x-mse-consumer" in h,
                        bool(r.get("body"))))
    return out


class EchoProcess:
    """:class:`echo_server.EchoServer` (the header-time recorder) in a child
    process; :meth:`probes` asks it what reached it."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")  # before any thread starts
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_echo_child, args=(child,), name="soak-echo", daemon=True)
        self.proc.start()
        if not self.conn.poll(30):
            raise RuntimeError("echo upstream did not start")
        self.port = self.conn.recv()

    def probes(self) -> list[tuple]:
        self.conn.send("probes")
        return self.conn.recv()

    def count(self) -> int:
        self.conn.send("count")
        return self.conn.recv()

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send("stop")
                self.conn.poll(10)
            except OSError:
                pass
            self.proc.join(timeout=10)
            if self.proc.is_alive():
                self.proc.kill()


# ---------------------------------------------------------------------------
# Envoy on file-based LDS
# ---------------------------------------------------------------------------


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


def idp_cluster(port: int) -> dict:
    """The ``idp`` cluster (to the slow proxy in front of the IdP). Node
    closes idle connections after 5 s; a request Envoy sends on one at that
    moment is reset. Envoy's advice: close idle upstream connections first."""
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


class Gateway:
    """Envoy with edge-auth, its listener (and plugin configuration) on LDS."""

    def __init__(self, issuer: str, idp_cluster_port: int, echo_port: int, listener_port: int,
                 concurrency: int, taken: set[int], access_log: bool = False) -> None:
        self.issuer = issuer
        self.access_log = access_log
        self.echo_port = echo_port
        self.port = listener_port
        # Every reload reads the .wasm again: a snapshot keeps a rebuild
        # during the run (another VM, other code) out of the measurement.
        self.wasm = harness.run_dir() / "soak-edge_auth.wasm"
        shutil.copyfile(harness.wasm_path(), self.wasm)
        self.admin_port = free_port_except(taken)
        self.lds = LdsFile(harness.run_dir() / "soak-lds")
        self.generation = 0
        bootstrap = self._render(self.generation)
        listener = bootstrap["static_resources"].pop("listeners")[0]
        bootstrap["static_resources"]["clusters"].append(idp_cluster(idp_cluster_port))
        bootstrap["dynamic_resources"] = {"lds_config": self.lds.config_source()}
        # Envoy's allocator keeps the pages a burst freed (connections and
        # streams held while the IdP is slow) unless told to give them back;
        # the soak asks, as an operator would (the report shows what the
        # allocator holds beside what is in use, so whether it helped).
        bootstrap["memory_allocator_manager"] = MEMORY_ALLOCATOR_MANAGER
        self.lds.write(listener)
        self.envoy = SoakEnvoy(bootstrap, listener_port, self.admin_port, name="soak",
                               extra_args=["--drain-time-s", str(DRAIN_SECONDS)], concurrency=concurrency)

    def _render(self, generation: int) -> dict:
        """The harness bootstrap with configuration ``generation`` (the
        access log only on request: at thousands of requests per second it
        is a cost of its own, and the ledger has every request)."""
        return harness.build_bootstrap(
            listener_port=self.port, admin_port=self.admin_port, upstream_port=self.echo_port,
            http_filters=harness.gateway_filters(plugin_config(self.issuer, generation), self.wasm),
            routes=ROUTES, access_log=self.access_log)

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
        return self.stats_matching(f"^{prefix}")

    def stats_matching(self, regex: str) -> dict[str, int]:
        """Counters and gauges whose name matches ``regex`` (Envoy's ``filter``)."""
        out = {}
        for line in self.admin(f"/stats?filter={urllib.parse.quote(regex)}").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out

    def request(self, method: str, path: str, headers=None, body=None) -> harness.Response:
        return harness.http_request(self.port, method, path, headers=headers, body=body, timeout=15)


class Services:
    """The echo upstream, the IdP, its slow proxy and the gateway;
    :meth:`stop` stops whichever of them were started."""

    def __init__(self) -> None:
        self.echo: EchoProcess | None = None
        self.idp: Idp | None = None
        self.proxy: SlowProxy | None = None
        self.gw: Gateway | None = None
        self.keys = KeyPlan()

    def start(self, concurrency: int, access_log: bool = False) -> "Services":
        self.echo = EchoProcess()
        listener = harness.free_port()
        taken = {listener, self.echo.port}
        idp_port = free_port_except(taken)
        # The IdP must know the gateway's callback URL before it starts.
        self.idp = Idp(port=idp_port, name="soak", keyset=self.keys.keyset(0),
                       redirect_uris=[f"http://{harness.LOCALHOST}:{listener}{CALLBACK}"],
                       access_token_ttl=IDP_TOKEN_TTL, id_token_ttl=600,
                       env={"IDP_OFFLINE_ACCESS_CONSENT": "1"})
        self.idp.start()
        self.proxy = SlowProxy(idp_port).start()
        taken.add(self.proxy.port)
        self.gw = Gateway(self.idp.issuer, self.proxy.port, self.echo.port, listener, concurrency, taken, access_log)
        self.gw.envoy.start()
        return self

    def stop(self) -> None:
        for svc in (self.gw.envoy if self.gw else None, self.idp, self.proxy, self.echo):
            if svc is not None:
                svc.stop()
