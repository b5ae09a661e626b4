"""`make demo` as a new user meets it: the instructions come once Envoy is
ready, Envoy's own log goes to a file (warning level) whose path is shown,
the gateway answers as the instructions say, and Ctrl-C (SIGINT to the
terminal's process group) stops every process it started.

The demo's fixed ports are moved to free ones (DEMO_PORT & co.) so the test
never collides with a demo someone is running."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import harness

ROOT = harness.REPO_ROOT
READY_WAIT = 300.0  # make demo runs `make build` first; a cold build takes a while
STOP_WAIT = 30.0


def session_processes(sid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in session ``sid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        # Fields after the ")" closing the command name: state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) == sid:
            out.append((int(entry.name), cmdline))
    return out


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def terminal_signals() -> None:
    """In the child, before exec: SIGINT at its default, as a shell started
    from a terminal has it. A suite started in the background (`nohup make
    test &`) passes SIGINT down ignored, and bash cannot trap a signal that
    was ignored when it started: the demo's Ctrl-C trap would never run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def demo(tmp_path):
    ports = {}
    while len(set(ports.values())) < 4:
        ports = {k: harness.free_port() for k in ("DEMO_PORT", "DEMO_ADMIN_PORT", "DEMO_ECHO_PORT", "DEMO_IDP_PORT")}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "DEMO_LOG_DIR": str(tmp_path / "demo")}
    # The suite's own prerequisites (venv, IdP packages) are in place: make
    # e2e built them; -o keeps make from re-running their recipes here.
    cmd = ["make", "--no-print-directory", "-o", ".venv/.installed",
           "-o", "e2e/idp/node_modules/.package-lock.json", "demo"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=terminal_signals)
    yield proc, ports, tmp_path / "demo"
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid, _ in session_processes(proc.pid):
        os.kill(pid, signal.SIGKILL)


def read_until(proc: subprocess.Popen, marker: str, timeout: float) -> str:
    """Output of ``proc`` up to the end of the banner that follows ``marker``."""
    out = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
            text = out.decode(errors="replace")
            if marker in text and text.endswith("oauth2/sign_out\n\n"):
                return text
        elif proc.poll() is not None:
            break
    raise AssertionError(f"no {marker!r} within {timeout}s; output:\n{out.decode(errors='replace')[-4000:]}")


def test_demo_prints_instructions_when_ready_and_stops_on_ctrl_c(demo):
    proc, ports, log_dir = demo
    text = read_until(proc, "Envoy is ready", READY_WAIT)
    gateway = f"http://127.0.0.1:{ports['DEMO_PORT']}"
    banner = text[text.index("edge-auth demo: Envoy is ready"):]

    # Ready means ready: the lines the banner prints work right away.
    assert f"on {gateway}" in banner
    status, body = get(f"{gateway}/public/hello")
    assert status == 200 and json.loads(body)["path"] == "/public/hello", (status, body)
    status, body = get(f"{gateway}/orders/42")
    assert status == 401, (status, body)
    assert f"curl -s -H \"Authorization: Bearer $TOKEN\" {gateway}/orders/42" in banner

    # Envoy's startup log is not on the terminal but in the file the banner names.
    envoy_log = log_dir / "envoy.log"
    assert str(envoy_log) in banner
    assert not re.search(r"\[(info|debug|trace)\]", text), text
    assert "initializing epoch" not in text
    assert envoy_log.is_file()
    assert not re.search(r"\]\[(info|debug|trace)\]\[", envoy_log.read_text())
    assert "Ctrl-C" in banner

    started = session_processes(proc.pid)
    names = " ".join(cmd for _, cmd in started)
    assert "envoy" in names and "server.js" in names and "echo_server.py" in names, started

    # Ctrl-C: the terminal sends SIGINT to the whole foreground process group.
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"make demo still running {STOP_WAIT}s after SIGINT: {session_processes(proc.pid)}")
    rest = proc.stdout.read().decode(errors="replace")
    assert "stopping" in rest, rest
    assert session_processes(proc.pid) == []
    for port in ports.values():
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
