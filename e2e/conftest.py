"""pytest fixtures: one echo upstream per session, Envoy gateways per module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from echo_server import EchoServer  # noqa: E402


@pytest.fixture(scope="session")
def wasm() -> Path:
    path = harness.wasm_path()
    if not path.is_file():
        pytest.fail(
            f"edge-auth wasm not found at {path}; build it with "
            "`cargo build --release --target wasm32-wasip1` or set EDGE_AUTH_WASM",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def echo():
    with EchoServer() as server:
        yield server


@pytest.fixture(scope="module")
def start_gateway(request, echo, wasm):
    """Factory: ``start_gateway(plugin_config, name=...)`` starts an Envoy
    with edge-auth configured by ``plugin_config`` and waits until it is
    ready; every gateway it started is stopped when the module ends."""
    started: list[harness.Envoy] = []
    module = request.module.__name__.rsplit(".", 1)[-1]

    def _start(plugin_config, name: str = "gw", **kw) -> harness.Envoy:
        for attempt in range(3):
            gw = harness.gateway(plugin_config, echo.port, name=f"{module}-{name}", wasm=wasm, **kw)
            started.append(gw)
            try:
                return gw.start()
            except harness.EnvoyError:
                # A free port picked by binding port 0 can be taken by someone
                # else before Envoy binds it: retry with new ports, only then.
                if attempt == 2 or "Address already in use" not in gw.log_text():
                    raise
        raise AssertionError("unreachable")

    yield _start
    for gw in started:
        gw.stop()


@pytest.fixture(scope="module")
def lazy_gateways(start_gateway):
    """``lazy_gateways(configs)`` -> mapping that starts the gateway for a
    key on first access (so a module can hold several configurations)."""

    class _Lazy(dict):
        def __init__(self, configs):
            super().__init__()
            self.configs = configs

        def __missing__(self, key):
            gw = start_gateway(self.configs[key], name=str(key))
            self[key] = gw
            return gw

    return _Lazy


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("setup", "call"):
        for gw in harness.live_envoys():
            rep.sections.append((f"envoy {gw.name} (pid {gw.pid})", gw.log_tail(60)))
