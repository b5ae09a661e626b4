"""The verified-token cache shared by Envoy's workers (``--concurrency 2``):
a token verified on one worker is a hit on the other (counters from
/stats), and a key removed from the IdP's JWKS stops its tokens on every
worker within the refresh interval although the shared ring still holds
identities verified under it.

Requests each open a new connection, so Envoy spreads them over both
workers; the counters are the gateway's (both workers add to them).
"""

from __future__ import annotations

import time

import pytest

import harness
from common import (
    assert_consumer,
    assert_unauthorized,
    bearer_headers,
)
from idp_control import (
    ES256_RESOURCE,
    IDP_CLUSTER,
    RS256_RESOURCE,
    Idp,
    gateway,
    make_keyset,
    poll,
)

REFRESH = 10  # jwks_refresh_seconds: the revocation deadline
KEY_WAIT = 30.0
ROUNDS = 16  # requests per check: both workers see some (new connection each)
PATH = "/b/shared"


def with_concurrency(gw: harness.Envoy, workers: int) -> harness.Envoy:
    """The harness starts Envoy with ``--concurrency 1``; this gateway runs
    ``workers`` worker threads (one plugin VM each)."""
    base = gw.command

    def command() -> list[str]:
        cmd = base()
        cmd[cmd.index("--concurrency") + 1] = str(workers)
        return cmd

    gw.command = command  # type: ignore[method-assign]
    return gw


@pytest.fixture
def idp():
    i = Idp(name="shared-cache").start()
    yield i
    i.stop()


@pytest.fixture
def gw(idp, echo, wasm):
    config = {"consumers": [{"name": "shared-app", "issuer": idp.issuer, "jwks_uri": idp.url("/jwks"),
                             "cluster": IDP_CLUSTER, "audiences": [RS256_RESOURCE, ES256_RESOURCE],
                             "jwks_refresh_seconds": REFRESH}],
              "global_auth": True}
    g = with_concurrency(gateway(config, echo.port, {IDP_CLUSTER: idp.port}, name="shared-cache", wasm=wasm), 2)
    g.start()
    yield g
    g.stop()


def counters(gw: harness.Envoy) -> dict[str, int]:
    return {n: gw.plugin_counter(n) for n in ("cache_hits", "cache_shared_hits", "cache_misses")}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def wait_until_accepted(gw: harness.Envoy, token: str) -> None:
    r, _ = poll(lambda: gw.get(PATH, headers=bearer_headers(token)), lambda r: r.status == 200, KEY_WAIT)
    assert_consumer(r, "shared-app", "GET", PATH)


def all_accepted(gw: harness.Envoy, token: str) -> None:
    for _ in range(ROUNDS):
        assert_consumer(gw.get(PATH, headers=bearer_headers(token)), "shared-app", "GET", PATH)


def test_gateway_runs_two_workers(gw):
    assert "--concurrency" in gw.command() and gw.command()[gw.command().index("--concurrency") + 1] == "2"
    # Both workers' VMs started (one plugin VM each).
    assert gw.stats("server.concurrency").get("server.concurrency") == 2


def test_a_token_verified_on_one_worker_is_a_hit_on_the_other(gw, idp):
    # Both workers hold the keys first (a warm-up token of its own).
    warm = idp.forge("RS256")
    wait_until_accepted(gw, warm)
    all_accepted(gw, warm)

    for alg in ("RS256", "ES256"):
        token = idp.forge(alg)
        before = counters(gw)
        all_accepted(gw, token)
        d = delta(counters(gw), before)
        # Verified once for the whole gateway; the other worker took it
        # from the shared ring once, every other request hit locally.
        assert d["cache_misses"] == 1, (alg, d)
        assert d["cache_shared_hits"] == 1, (alg, d)
        assert d["cache_hits"] == ROUNDS - 2, (alg, d)


def test_a_revoked_key_stops_its_tokens_on_every_worker(gw, idp):
    old = idp.forge("RS256")
    wait_until_accepted(gw, old)
    all_accepted(gw, old)  # cached on both workers and in the shared ring

    # The IdP drops the key (a new key set without it).
    idp.restart(make_keyset(tag="revoked")[0])
    new = idp.forge("RS256")
    t0 = time.monotonic()

    # Within the refresh interval (plus a fetch and a tick), every worker
    # refuses it: ROUNDS requests in a row over both workers, all 401.
    deadline = t0 + REFRESH + 15
    while not all(gw.get(PATH, headers=bearer_headers(old)).status == 401 for _ in range(ROUNDS)):
        assert time.monotonic() < deadline, f"old token still accepted after {time.monotonic() - t0:.1f}s"
        time.sleep(0.5)
    for _ in range(ROUNDS):
        assert_unauthorized(gw.get(PATH, headers=bearer_headers(old)), PATH)

    # Rotation: the new key set's tokens verify once and are shared again.
    wait_until_accepted(gw, new)
    all_accepted(gw, new)
    fresh = idp.forge("RS256")
    before = counters(gw)
    all_accepted(gw, fresh)
    d = delta(counters(gw), before)
    assert d["cache_misses"] == 1 and d["cache_shared_hits"] == 1, d
