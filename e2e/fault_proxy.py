"""A forwarding HTTP proxy on 127.0.0.1 that can refuse chosen paths.

The gateway's back channel to the IdP (discovery, JWKS, token endpoint)
goes through its ``idp`` cluster; pointing that cluster at a
:class:`FaultProxy` in front of the real IdP lets a test hold the gateway in
a state it otherwise passes through too fast to observe, e.g. "discovery
loaded, signing keys not yet": every request is forwarded to the real IdP
except those for a path given to :meth:`FaultProxy.refuse`, answered
``503`` until :meth:`FaultProxy.allow`. Two more faults a real IdP will not
produce on demand: :meth:`FaultProxy.hold` keeps a path's answers back until
:meth:`FaultProxy.release` (the gateway's call is then "out" for as long as
the test needs), and :meth:`FaultProxy.pad` appends whitespace to a path's
answers (still the IdP's valid JSON, only longer). Every request is recorded
(path, status, headers, body) so the test can wait for the state it needs or
see how the gateway called the IdP.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

__all__ = ["FaultProxy"]

# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded.
_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-proxy/1"
    timeout = 10

    def log_message(self, format, *args):  # noqa: A002
        pass

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        owner: FaultProxy = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else None
        path = self.path.split("?", 1)[0]
        if owner.refused(path):
            status, headers, payload = 503, [("Content-Type", "text/plain")], b"refused by fault proxy\n"
        else:
            status, headers, payload = owner.forward(self.command, self.path, self.headers.items(), body)
            owner.wait_while_held(path)
            payload += b" " * owner.padding(path)
        owner.record(self.command, path, status, dict((k.lower(), v) for k, v in self.headers.items()), body or b"")
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in _HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FaultProxy:
    """``with FaultProxy(upstream_port) as proxy:`` listens on ``proxy.port``."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._refused: set[str] = set()
        self._padding: dict[str, int] = {}
        self._held: dict[str, threading.Event] = {}  # path -> set when released
        self._holding = threading.Condition(self._lock)  # notified when an answer is held
        self._waiting: dict[str, int] = {}  # path -> answers held right now
        self._seen: list[tuple[str, str, int]] = []  # (method, path, status)
        self._requests: list[dict] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    # -- control ----------------------------------------------------------------

    def refuse(self, path: str) -> None:
        """Answer requests for ``path`` (query ignored) with 503 from now on."""
        with self._lock:
            self._refused.add(path)

    def allow(self, path: str) -> None:
        with self._lock:
            self._refused.discard(path)

    def refused(self, path: str) -> bool:
        with self._lock:
            return path in self._refused

    def pad(self, path: str, extra_bytes: int) -> None:
        """Append ``extra_bytes`` spaces to every answer for ``path`` (0: none)."""
        with self._lock:
            self._padding[path] = extra_bytes

    def padding(self, path: str) -> int:
        with self._lock:
            return self._padding.get(path, 0)

    def hold(self, path: str) -> None:
        """From now on, answers for ``path`` (already fetched from the IdP)
        wait until :meth:`release`."""
        with self._lock:
            self._held[path] = threading.Event()

    def release(self, path: str) -> None:
        """Let held answers for ``path`` go, and stop holding new ones."""
        with self._lock:
            event = self._held.pop(path, None)
        if event is not None:
            event.set()

    def wait_while_held(self, path: str, timeout: float = 30.0) -> None:
        with self._lock:
            event = self._held.get(path)
            if event is None:
                return
            self._waiting[path] = self._waiting.get(path, 0) + 1
            self._holding.notify_all()
        try:
            event.wait(timeout)
        finally:
            with self._lock:
                self._waiting[path] -= 1

    def wait_held(self, path: str, timeout: float) -> bool:
        """True once an answer for ``path`` is being held."""
        with self._holding:
            return self._holding.wait_for(lambda: self._waiting.get(path, 0) > 0, timeout)

    # -- observation ------------------------------------------------------------

    def record(self, method: str, path: str, status: int, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self._seen.append((method, path, status))
            self._requests.append({"method": method, "path": path, "status": status,
                                   "headers": headers, "body": body})

    def requests(self, path: str) -> list[dict]:
        """The requests for ``path``: method, status, headers (lower-case names), body."""
        with self._lock:
            return [dict(r) for r in self._requests if r["path"] == path]

    def seen(self, path: str, status: int | None = None) -> int:
        """How many requests for ``path`` arrived (answered with ``status``)."""
        with self._lock:
            return sum(1 for _, p, s in self._seen if p == path and (status is None or s == status))

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` until true; AssertionError naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                with self._lock:
                    seen = list(self._seen)
                raise AssertionError(f"fault proxy: {what} not seen after {timeout}s; requests: {seen}")
            time.sleep(0.05)

    # -- forwarding -------------------------------------------------------------

    def forward(self, method: str, target: str, headers, body: bytes | None):
        conn = http.client.HTTPConnection(*self.upstream, timeout=10)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in headers:
                if k.lower() not in _HOP:
                    conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        except OSError as e:
            return 502, [("Content-Type", "text/plain")], f"fault proxy: upstream {e!r}\n".encode()
        finally:
            conn.close()

    # -- lifecycle --------------------------------------------------------------

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
