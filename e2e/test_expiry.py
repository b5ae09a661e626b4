"""Token expiry and clock skew (token_ttl: 1, clock_skew_seconds: 0), plus
a rule overriding both."""

from __future__ import annotations

import time

import pytest

import jose_forge as jf
from common import (
    C1,
    C2,
    REALM_HOST,
    TOKEN_PATH,
    assert_passed,
    assert_token_response,
    assert_unauthorized,
    consumers,
    cred_params,
    forged,
    probe,
    query,
    upstream_saw,
)

CONFIG = {
    "consumers": consumers(C1, C2),
    "token_ttl": 1,
    "clock_skew_seconds": 0,
    "global_auth": True,
    "_rules_": [{"_match_route_": ["route-b"], "token_ttl": 7200, "clock_skew_seconds": 300}],
}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


def poll_until_refused(gw, path: str, token: str, limit: float = 10.0):
    """Readiness instead of a computed sleep: send the token until the
    gateway stops passing it (bounded by ``limit`` seconds); every answer on
    the way is a full pass. Returns (the refusal, its probe)."""
    deadline = time.monotonic() + limit
    while True:
        p = probe()
        r = gw.get(path, headers=[("Host", REALM_HOST), ("Authorization", f"Bearer {token}"), p])
        if r.status != 200:
            return r, p
        assert_passed(r, C1, "GET", path)
        assert time.monotonic() < deadline, f"still accepted after {limit}s"
        time.sleep(0.05)


def fresh_token_used_before_expiry(gw, path: str) -> tuple[str, dict]:
    """Issue a 1-second token and use it before its exp second ends.

    A request whose answer arrives after ``exp`` may legitimately see the
    token expired; then retry with a fresh token (bounded)."""
    for _ in range(5):
        r = gw.get(query(TOKEN_PATH, cred_params(C1)))
        token, claims = assert_token_response(r, C1, ttl=1)
        r = gw.get(path, headers={"Authorization": f"Bearer {token}"})
        t_end = time.time()
        if r.status == 200:
            assert_passed(r, C1, "GET", path)
            return token, claims
        assert t_end >= claims["exp"], f"token rejected before its exp ({claims}, now {t_end}): {r!r}"
    pytest.fail("could not use a 1-second token before it expired in 5 attempts")


def test_token_expires(gw, echo):
    """The exact boundaries (exp, skew) are checked on a controllable clock in
    src/tests/expiry_clock.rs; here a real 1-second token stops passing."""
    token, claims = fresh_token_used_before_expiry(gw, "/a/x")
    assert claims["exp"] == claims["iat"] + 1
    r, p = poll_until_refused(gw, "/a/x?after=1", token)
    assert_unauthorized(r, "/a/x", token_present=True, description="token expired")
    assert upstream_saw(echo, p) == []
    assert time.time() >= claims["exp"], "refused before its exp"
    # Once expired, it stays refused.
    r = gw.get("/a/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {token}"})
    assert_unauthorized(r, "/a/x", token_present=True, description="token expired")


def test_forged_expired_token(gw):
    now = int(time.time())
    token = forged(C2, iat=now - 10, exp=now - 2)
    r = gw.get("/a/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {token}"})
    assert_unauthorized(r, "/a/x", token_present=True)


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_future_iat_or_nbf_beyond_zero_skew(gw, claim):
    now = int(time.time())
    extra = {"iat": now + 5, "exp": now + 3600} if claim == "iat" else {"nbf": now + 5, "exp": now + 3600}
    token = forged(C1, **extra)
    r = gw.get("/a/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {token}"})
    assert_unauthorized(r, "/a/x", token_present=True)


def test_rule_overrides_ttl_and_skew(gw):
    r = gw.get(query("/b/oauth2/token", cred_params(C2)))
    token, _ = assert_token_response(r, C2, ttl=7200)
    assert_passed(gw.get("/b/x", headers={"Authorization": f"Bearer {token}"}), C2, "GET", "/b/x")
    # iat 200 s ahead: within route-b's 300 s skew, beyond the global 0 s skew.
    now = int(time.time())
    ahead = forged(C1, iat=now + 200, exp=now + 7400)
    assert_passed(gw.get("/b/x", headers={"Authorization": f"Bearer {ahead}"}), C1, "GET", "/b/x")
    r = gw.get("/a/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {ahead}"})
    assert_unauthorized(r, "/a/x", token_present=True)
    ahead_nbf = forged(C1, nbf=now + 200)
    assert_passed(gw.get("/b/y", headers={"Authorization": f"Bearer {ahead_nbf}"}), C1, "GET", "/b/y")
    # beyond 300 s
    far = forged(C1, iat=now + 900, exp=now + 8100)
    r = gw.get("/b/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {far}"})
    assert_unauthorized(r, "/b/x", token_present=True)


def test_mse_token_with_one_second_ttl(gw):
    now = int(time.time())
    token = jf.mse_token(C2.name, C2.client_id, C2.client_secret, ttl=1, now=now - 5)
    r = gw.get("/a/x", headers={"Host": REALM_HOST, "Authorization": f"Bearer {token}"})
    assert_unauthorized(r, "/a/x", token_present=True)
