"""What the benchmarks and the soak read about a running Envoy: its own pid
(behind a launcher such as ``func-e run``), its version, its resident memory.

One place for these, so ``bench/run.py`` and ``e2e/soak`` report the same
process and the same version string. Standard library and /proc only.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import harness

__all__ = ["envoy_pid", "envoy_version", "rss_kb"]


def envoy_pid(root: int | None) -> int | None:
    """The pid of the envoy binary started as (or under) process ``root``:
    ``root`` itself, or its first descendant whose name starts with
    ``envoy`` when ``$ENVOY`` is a launcher that does not exec it. None when
    ``root`` is None or no such process is found."""
    if root is None:
        return None
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    todo, seen = [root], set()
    while todo:
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip().startswith("envoy"):
                return pid
        except OSError:
            pass
        todo.extend(children.get(pid, []))
    return None


def envoy_version() -> str:
    """``1.40.0 (Clean/RELEASE/BoringSSL, 9e5580933739)`` from ``envoy
    --version`` of :func:`harness.envoy_command`; ``unknown (...)`` when it
    cannot be run or read."""
    try:
        out = subprocess.run(harness.envoy_command() + ["--version"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    m = re.search(r"version:\s*(\S+)", out)
    if not m:
        return "unknown"
    parts = m.group(1).split("/")
    return f"{parts[1]} ({'/'.join(parts[2:])}, {parts[0][:12]})" if len(parts) >= 3 else m.group(1)


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in kB (``VmRSS``); OSError when the
    process is gone, ValueError when /proc does not say."""
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    if m is None:
        raise ValueError(f"no VmRSS for pid {pid}")
    return int(m.group(1))
