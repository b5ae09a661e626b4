"""A TCP proxy between Envoy's ``idp`` cluster and the IdP that can make the
IdP answer slowly: while :meth:`SlowProxy.slow` is on, every answer's first
bytes are held ``delay`` seconds (above the plugin's call timeouts), as an
overloaded IdP would. Bytes are forwarded unchanged otherwise, keep-alive
and all. It runs its own event loop in a thread."""

from __future__ import annotations

import asyncio
import threading

from harness import LOCALHOST


class SlowProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.delay = 0.0
        self.held = 0  # answers held back while slow
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, name="slow-proxy", daemon=True)

    def start(self) -> "SlowProxy":
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, LOCALHOST, 0), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def slow(self, delay: float) -> None:
        """Hold each answer ``delay`` seconds from now on (0: forward at once)."""
        self.delay = delay

    async def _client(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            ureader, uwriter = await asyncio.open_connection(LOCALHOST, self.upstream_port)
        except OSError:
            cwriter.close()  # the IdP is down: Envoy sees the connection go
            return
        await asyncio.gather(self._pipe(creader, uwriter, False), self._pipe(ureader, cwriter, True),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answers: bool) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if answers and self.delay > 0:
                    self.held += 1
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                writer.close()
            except (OSError, RuntimeError):
                pass

    def stop(self) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
