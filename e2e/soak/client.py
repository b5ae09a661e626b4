"""A small asyncio HTTP/1.1 client for the soak's load: requests written as
raw bytes on kept-alive connections, answers parsed just enough to judge
them (status, headers, body). The standard library's clients cost a thread
or a fresh connection per request, too much to load Envoy from one Python
process."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterable

from harness import LOCALHOST

HEAD_LIMIT = 64 * 1024


class Answer:
    """One HTTP answer; header names compared without case."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def get(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes | None,
                  port: int) -> bytes:
    """The request as sent: ``Host`` added unless given, ``Content-Length``
    when there is a body."""
    items = list(headers)
    names = {k.lower() for k, _ in items}
    head = [f"{method} {path} HTTP/1.1"]
    if "host" not in names:
        head.append(f"Host: {LOCALHOST}:{port}")
    head += [f"{k}: {v}" for k, v in items]
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True
        self.used = 0  # requests sent on it so far
        self.closed_by_peer = False  # an answer said "Connection: close"
        self.last_kind = ""  # what the previous request on it was (to tell a desync's cause)
        self.last_status = 0
        self.head_seen = False  # the current answer's head has arrived
        self.on_close = None  # the pool's slot, given back once when it closes

    async def exchange(self, data: bytes, rest: bytes = b"", delay: float = 0.0, head_only: bool = False) -> Answer:
        """Write ``data``, then ``rest`` after ``delay`` seconds (a body
        that arrives late), and read the answer."""
        self.used += 1
        self.head_seen = False
        self.writer.write(data)
        if rest:
            await self.writer.drain()
            await asyncio.sleep(delay)
            self.writer.write(rest)
        answer = await self.read_answer(head_only)
        return answer

    async def read_answer(self, head_only: bool) -> Answer:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        self.head_seen = True
        if len(raw) > HEAD_LIMIT:
            raise ValueError("answer head too large")
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.append((k.strip().lower(), v.strip()))
        answer = Answer(status, headers, b"")
        if (answer.get("connection") or "").lower() == "close":
            self.reusable = False
            self.closed_by_peer = True
        length = answer.get("content-length")
        if head_only or status in (204, 304) or 100 <= status < 200:
            return answer
        if length is not None:
            answer.body = await self.reader.readexactly(int(length))
        elif "chunked" in (answer.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            answer.body = b"".join(chunks)
        else:
            answer.body = await self.reader.read()
            self.reusable = False
        return answer

    def close(self) -> None:
        self.reusable = False
        if self.on_close is not None:
            self.on_close, give_back = None, self.on_close
            give_back()
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass


MAX_OPEN = 256  # connections one load process keeps open at most


class ConnectionPool:
    """Kept-alive connections to 127.0.0.1:``port``; a new one is opened when
    none is idle, up to ``max_open`` open at once, as a real client pool.
    Without that bound a load process that stalls for a moment (a busy
    machine) sends everything that came due meanwhile on as many new
    connections: one 2 s stall opened 1,225 of them in a second, and Envoy's
    allocator kept their memory for the rest of the run. A request waiting
    for a connection is still late from when it was due (latencies are
    measured from there)."""

    def __init__(self, port: int, max_open: int = MAX_OPEN) -> None:
        self.port = port
        self.idle: list[Connection] = []
        self.opened = 0
        self.closed_by_peer = 0  # connections Envoy ended with "Connection: close" (e.g. a draining listener)
        self.slots = asyncio.Semaphore(max_open)

    async def acquire(self, fresh: bool = False) -> Connection:
        while self.idle and not fresh:
            conn = self.idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn
            conn.close()
        if self.slots.locked() and self.idle:
            self.idle.pop(0).close()  # all slots taken: an idle one makes room
        await self.slots.acquire()
        try:
            reader, writer = await asyncio.open_connection(LOCALHOST, self.port, limit=HEAD_LIMIT * 4)
        except BaseException:
            self.slots.release()
            raise
        self.opened += 1
        conn = Connection(reader, writer)
        conn.on_close = self.slots.release
        return conn

    def release(self, conn: Connection) -> None:
        if conn.closed_by_peer:
            self.closed_by_peer += 1
        if conn.reusable and not conn.reader.at_eof():
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
