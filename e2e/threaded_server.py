"""An HTTP server in a background thread that records the requests it gets
(``start``/``stop``, ``with``): the base of the echo upstream
(``echo_server``) and the recorder (``recording_server``)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ThreadedServer:
    def __init__(self, server_class: type[ThreadingHTTPServer], handler: type[BaseHTTPRequestHandler],
                 port: int, host: str, name: str) -> None:
        self._lock = threading.Lock()
        self._requests: list[dict] = []
        self._httpd = server_class((host, port), handler)
        self.host = host
        self.port = self._httpd.server_address[1]
        self._name = f"{name}-{self.port}"
        self._thread: threading.Thread | None = None

    def _record_request(self, rec: dict) -> None:
        with self._lock:
            self._requests.append(rec)

    def _update_request(self, rec: dict, **fields) -> None:
        with self._lock:
            rec.update(fields)

    @property
    def requests(self) -> list[dict]:
        """A snapshot of every request so far, oldest first, recorded when
        its headers arrived, including those whose body never (fully)
        arrived: ``state`` is ``headers`` (body still awaited), ``complete``
        or ``aborted``."""
        with self._lock:
            return [dict(r) for r in self._requests]

    def start(self):
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
