#!/usr/bin/env python3
"""Echo upstream for the edge-auth end-to-end tests and the demo gateway.

Answers every method on every path with ``200`` and a JSON body::

    {"method": "GET", "path": "/a/x?q=1",
     "headers": {"host": "...", "x-mse-consumer": "consumer1", ...},
     "body": "<request body as text>"}

Header names are lower-cased; a header that arrived more than once is given
as a list of its values (in arrival order), otherwise as a single string.

A leak detector as well as an echo: every request is recorded as soon as its
request line and headers arrive, before any of its body is read
(``"state": "headers"``), then completed (``"complete"``, with the body) or
marked ``"aborted"`` when the peer goes away or resets before the body is
complete. So a request that Envoy forwards and then resets (a local reply
sent after the headers went upstream) is still seen: see
:meth:`EchoServer.requests_seen`.

Run as a script (``python3 e2e/echo_server.py [PORT]``) it listens on
127.0.0.1:PORT (0 or no argument: a free port), prints the port on one line
once it accepts connections, and serves until interrupted. The tests import
:class:`EchoServer` and run it in a background thread instead.
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from threaded_server import ThreadedServer

__all__ = ["EchoServer", "EchoHandler", "main"]


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "edge-auth-echo/1"
    # Keep-alive connections from Envoy's pool idle here; do not hold a
    # handler thread forever on a dead peer.
    timeout = 120

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # BaseHTTPRequestHandler dispatches to do_<METHOD>; answer them all.
    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self._echo
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        """The whole body; :class:`_Aborted` if the peer goes away first."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line.endswith(b"\n"):
                    raise _Aborted("connection closed in a chunk header")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until the empty line
                    while True:
                        line = self.rfile.readline(65537)
                        if not line:
                            raise _Aborted("connection closed in the trailers")
                        if line in (b"\r\n", b"\n"):
                            break
                    break
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise _Aborted("connection closed in a chunk")
                chunks.append(chunk)
                self.rfile.readline(65537)  # CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return b""
        body = self.rfile.read(length)
        if len(body) < length:
            raise _Aborted(f"connection closed after {len(body)} of {length} body bytes")
        return body

    def _echo(self) -> None:
        headers: dict[str, object] = {}
        for name, value in self.headers.items():
            key = name.lower()
            if key in headers:
                prev = headers[key]
                if isinstance(prev, list):
                    prev.append(value)
                else:
                    headers[key] = [prev, value]
            else:
                headers[key] = value
        record = {
            "method": self.command,
            "path": self.path,
            "headers": headers,
            "body": "",
            "state": "headers",
        }
        # Recorded now, before the body: a request whose body never comes
        # (or that is reset half-way) has still reached the upstream.
        recorder = getattr(self.server, "record", None)
        update = getattr(self.server, "update", None) or (lambda rec, **kw: rec.update(kw))
        if recorder is not None:
            recorder(record)
        try:
            body = self._read_body()
        except (_Aborted, OSError, ValueError) as e:
            update(record, state="aborted", error=str(e))
            self.close_connection = True
            return
        update(record, state="complete", body=body.decode("utf-8", errors="replace"))
        record = {k: v for k, v in record.items() if k != "state"}
        payload = json.dumps(record).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class _Aborted(Exception):
    """The peer went away before the whole request body arrived."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    verbose = False
    record = None
    update = None

    def handle_error(self, request, client_address):
        # A peer that goes away mid-request (Envoy resetting an upstream
        # stream after a local reply) is normal here: no traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class EchoServer(ThreadedServer):
    """The echo upstream in a background thread; records every request."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(_Server, EchoHandler, port, host, "echo")
        self._httpd.record = self._record_request
        self._httpd.update = self._update_request

    def requests_seen(self, probe_id: str, header: str = "x-e2e-probe") -> list[dict]:
        """Every request that reached this upstream carrying ``header:
        probe_id``, whether or not its body ever arrived: the leak
        detector for "this request must never reach the upstream"."""
        return [r for r in self.requests if r["headers"].get(header.lower()) == probe_id]

    def wait_seen(self, probe_id: str, timeout: float = 10.0, header: str = "x-e2e-probe") -> list[dict]:
        """Polls until a request with the probe has arrived (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests_seen(probe_id, header)
            if seen or time.monotonic() > deadline:
                return seen
            time.sleep(0.02)

    def count(self) -> int:
        with self._lock:
            return len(self._requests)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) > 1 or (argv and not argv[0].isdigit()):
        print("usage: echo_server.py [PORT]", file=sys.stderr)
        return 2
    port = int(argv[0]) if argv else 0
    httpd = _Server(("127.0.0.1", port), EchoHandler)
    httpd.verbose = True
    print(httpd.server_address[1], flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
