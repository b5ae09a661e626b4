#!/usr/bin/env python3
"""A 127.0.0.1 HTTP server that records every connection and request.

The JWT attack tests point ``jku`` / ``x5u`` headers (and the URLs hidden in
``jwk`` / ``x5c`` tokens) at it and at the end assert it was never
contacted: the plugin must never fetch anything a token names.

It answers like an attacker's server would, so that a plugin that did fetch
would be fooled: ``/jwks.json`` (and any path ending in ``jwks``) gives the
JWKS set with :meth:`RecordingServer.serve_jwks`, ``/cert.pem`` (any path
ending in ``.pem`` / ``.crt``) the PEM set with :meth:`serve_pem`, anything
else ``404``. Every TCP connection is counted even if no HTTP request
follows (e.g. a TLS ClientHello for an ``https://`` URL), and every request
is recorded when its request line and headers arrive, before its body (a
request that is reset, or whose body never comes, is still seen).

Script use: ``python3 e2e/recording_server.py [PORT]`` prints the port and
logs each request on stderr until interrupted.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from threaded_server import ThreadedServer

__all__ = ["RecordingServer"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "recorder/1"
    timeout = 10

    def log_message(self, format, *args):  # noqa: A002
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _handle(self) -> None:
        owner = self.server.owner
        # Recorded as soon as the request line and headers are in, before
        # the body: a request that is reset or whose body never comes counts.
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": "",
            "state": "headers",
            "client": self.client_address[0],
            "time": time.time(),
        }
        owner._record_request(record)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if 0 < length <= 1 << 20 else b""
            if len(body) < min(max(length, 0), 1 << 20):
                raise ConnectionError(f"connection closed after {len(body)} of {length} body bytes")
        except (OSError, ValueError) as e:
            owner._update_request(record, state="aborted", error=str(e))
            self.close_connection = True
            return
        owner._update_request(record, state="complete", body=body.decode("utf-8", errors="replace"))
        path = self.path.split("?", 1)[0]
        if path.endswith("jwks") or path.endswith("jwks.json") or path.endswith("/.well-known/jwks.json"):
            status, ctype, payload = 200, "application/json", json.dumps(owner.jwks_doc).encode()
        elif path.endswith((".pem", ".crt")):
            status, ctype, payload = 200, "application/x-pem-file", owner.pem
        else:
            status, ctype, payload = 404, "text/plain", b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    verbose = False
    owner: "RecordingServer"

    def verify_request(self, request, client_address) -> bool:
        self.owner._record_connection(client_address)
        return True


class RecordingServer(ThreadedServer):
    """The recorder in a background thread (``with RecordingServer() as rec``)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(_Server, _Handler, port, host, "recorder")
        self._connections: list[tuple[str, int]] = []
        self.jwks_doc: dict = {"keys": []}
        self.pem: bytes = b""
        self._httpd.owner = self

    # -- what it serves ---------------------------------------------------------

    def serve_jwks(self, doc: dict) -> None:
        self.jwks_doc = doc

    def serve_pem(self, pem: bytes) -> None:
        self.pem = pem

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    # -- what it saw ----------------------------------------------------------

    def _record_connection(self, addr) -> None:
        with self._lock:
            self._connections.append(addr)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def contacted(self) -> bool:
        with self._lock:
            return bool(self._connections or self._requests)

    def summary(self) -> str:
        with self._lock:
            reqs = [f"{r['method']} {r['path']} (host {r['headers'].get('host')})" for r in self._requests]
            return f"{len(self._connections)} connection(s), requests: {reqs}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    port = int(argv[0]) if argv else 0
    rec = RecordingServer(port)
    rec._httpd.verbose = True
    print(rec.port, flush=True)
    try:
        rec._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        rec._httpd.server_close()
        print(rec.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
