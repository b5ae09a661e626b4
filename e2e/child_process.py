"""A child process of the tests with its output in a log file: spawn,
``running``, ``stop`` (terminate, then kill), the log text, ``with``; every
live one is stopped when the test process exits. The base of
``harness.Envoy`` and ``idp_control.Idp``."""

from __future__ import annotations

import atexit
import os
import subprocess
import threading
from pathlib import Path
from typing import Sequence, TypeVar

_LIVE: set["ChildProcess"] = set()
_LIVE_LOCK = threading.Lock()

P = TypeVar("P", bound="ChildProcess")


def live(kind: type[P]) -> list[P]:
    """The running children of one kind (e.g. every Envoy, for their logs)."""
    with _LIVE_LOCK:
        return [p for p in _LIVE if isinstance(p, kind)]


@atexit.register
def _stop_all() -> None:
    for p in live(ChildProcess):
        p.stop()


class ChildProcess:
    """Subclasses set ``log_path``, ``proc = None`` and ``_log_file = None``
    in ``__init__`` and define ``start``."""

    log_path: Path
    proc: subprocess.Popen | None
    _log_file = None

    def _spawn(self, command: Sequence[str], cwd: Path, *, append_log: bool = False,
               env: dict[str, str] | None = None) -> None:
        self._log_file = open(self.log_path, "ab" if append_log else "wb")
        if append_log:
            self._log_file.write(f"=== start {' '.join(command)}\n".encode())
            self._log_file.flush()
        self.proc = subprocess.Popen(
            list(command),
            cwd=str(cwd),
            env=env if env is None else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        with _LIVE_LOCK:
            _LIVE.add(self)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self):  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
