"""Ways through the token checks that outside testing found (the fail-closed
issue, section 3 and section 4 bullets 3-4), each in a real Envoy; every test
here let a request through, or let an identity change, on the build before
the fixes.

* ``gw``: gateway consumers (global credentials, ``route-a`` route-scoped)
  and a JWT consumer with an ES512 key reading ``Authorization: Bearer``
  and ``?access_token=``; ``max_token_bytes`` 16384.
* ``site``: single sign-on against the real IdP (``e2e/idp/server.js``),
  whose answers are changed through ``Idp.edit_id_tokens`` (an ID token
  without ``sub``, a refresh answer for another user).
"""

from __future__ import annotations

import json
import time

import pytest

import harness
import jose_forge as jf
from common import (
    C1,
    C2,
    REALM_HOST,
    assert_forbidden,
    assert_passed,
    assert_unauthorized,
    consumers,
    issue_token,
    probe,
    upstream_saw,
    with_probe,
)
from idp_control import APP1, APP2, RS256_RESOURCE
from sso_browser import Browser
from test_sso import COOKIE, SECRET_A, XHR, Site, _idp, cleared, echo_of, session_lines, sso_config

ES512_KEY = jf.key_for_alg("ES512", kid="bypass-es512")
JWT_ISS = "https://bypass.example"
JWT_AUD = "urn:edge-auth:bypass"
JWT_APP = "es512-app"
MAX_TOKEN_BYTES = 16384

CONFIG = {
    "consumers": consumers(C1, C2) + [{
        "name": JWT_APP, "issuer": JWT_ISS, "audiences": [JWT_AUD], "jwks": jf.jwks(ES512_KEY),
        "claims_to_headers": [{"claim": "roles", "header": "x-user-roles"},
                              {"claim": "sub", "header": "x-user-sub"}],
    }],
    "global_auth": True,
    "max_token_bytes": MAX_TOKEN_BYTES,
    "_rules_": [{"_match_route_": ["route-a"], "global_credentials": False}],
}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


def es512_token(**claims) -> str:
    return jf.sign_jwt(jf.override(jf.claims(JWT_ISS, JWT_AUD), **claims), ES512_KEY)


def h(token: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    return [("Host", REALM_HOST), ("Authorization", f"Bearer {token}"), *extra]


# ---------------------------------------------------------------------------
# Gateway tokens and JWT consumers
# ---------------------------------------------------------------------------


def test_es512_token_verifies(gw):
    """ES512 keys were skipped silently: every ES512 token was refused."""
    r = gw.get("/x", headers=h(es512_token(sub="user-512")))
    assert r.status == 200, r
    echo = r.json()
    assert echo["path"] == "/x" and echo["headers"].get("x-mse-consumer") == JWT_APP, echo
    assert echo["headers"].get("x-user-sub") == "user-512", echo
    forged = jf.sign_jwt(jf.claims(JWT_ISS, JWT_AUD), jf.key_for_alg("ES512", kid=ES512_KEY.kid))
    assert_unauthorized(gw.get("/x", headers=h(forged)), "/x")


def test_route_scoped_token_only_on_its_own_route(gw, echo):
    token = issue_token(gw, C1, path="/a/oauth2/token", aud="route-a")
    assert_passed(gw.get("/a/items", headers=h(token)), C1, "GET", "/a/items")  # positive control
    for path in ("/b/items", "/x"):  # global credentials there
        p = probe()
        assert_forbidden(gw.get(path, headers=h(token, p)))
        assert upstream_saw(echo, p) == []
    # and a global token is not one for route-a
    assert_forbidden(gw.get("/a/items", headers=h(issue_token(gw, C1))))


def test_cached_header_token_is_not_accepted_from_the_query(gw, echo):
    token = issue_token(gw, C2)
    # Without a cache entry: gateway tokens are read from the gateway header only.
    assert_unauthorized(gw.get(f"/x?access_token={token}", headers=[("Host", REALM_HOST)]), "/x")
    assert_passed(gw.get("/x", headers=h(token)), C2, "GET", "/x")
    assert_passed(gw.get("/x", headers=h(token)), C2, "GET", "/x")  # now cached
    p = probe()
    r = gw.get(f"/x?access_token={token}", headers=[("Host", REALM_HOST), p])
    assert_unauthorized(r, "/x")
    assert upstream_saw(echo, p) == []


def test_every_token_present_must_verify(gw, echo):
    good = es512_token()
    bad = jf.tamper_signature(es512_token(sub="admin"))
    for path, headers in [
        (f"/x?access_token={bad}", h(good)),
        (f"/x?access_token={good}", h(bad)),
        # a valid gateway token in the header does not carry an unchecked query token
        (f"/x?access_token={bad}", h(issue_token(gw, C1))),
    ]:
        p = probe()
        assert_unauthorized(gw.get(path, headers=with_probe(headers, p)), path)
        assert upstream_saw(echo, p) == [], path
    # positive control: the same valid token in both places
    r = gw.get(f"/x?access_token={good}", headers=h(good))
    assert r.status == 200 and r.json()["headers"].get("x-mse-consumer") == JWT_APP, r


def test_a_token_place_with_two_values_is_refused(gw, echo):
    """A header sent twice or a repeated query parameter: only one value could
    be checked and an upstream may read the other (a forged second value went
    upstream unverified before)."""
    good = es512_token()
    forged = jf.tamper_signature(es512_token(sub="admin"))
    # Envoy joins a repeated Authorization header into one value ("Bearer a,Bearer
    # b"), which is no token; other headers and query parameters stay apart.
    joined, repeated = "malformed token", "more than one token in one place"
    cases = [
        ("/x", h(good, ("Authorization", f"Bearer {forged}")), joined),
        ("/x", h(good, ("Authorization", f"Bearer {good}")), joined),
        (f"/x?access_token={good}&access_token={forged}", [("Host", REALM_HOST)], repeated),
        (f"/x?access_token={good}&access%5Ftoken={forged}", [("Host", REALM_HOST)], repeated),
        (f"/x?access_token={forged}&access_token={good}", [("Host", REALM_HOST)], repeated),
    ]
    for path, headers, why in cases:
        p = probe()
        r = gw.get(path, headers=with_probe(headers, p))
        assert_unauthorized(r, path, description=why)
        assert upstream_saw(echo, p) == [], path
    # positive controls: each place once
    assert gw.get("/x", headers=h(good)).status == 200
    assert gw.get(f"/x?access_token={good}", headers=[("Host", REALM_HOST)]).status == 200


def test_array_claim_element_with_the_separator_sets_no_header(gw):
    r = gw.get("/x", headers=h(es512_token(roles=["reader", "b,admin"])))
    assert r.status == 200, r
    seen = r.json()["headers"]
    assert seen.get("x-mse-consumer") == JWT_APP, seen
    assert "x-user-roles" not in seen, seen
    assert seen.get("x-user-sub") == "user-1", seen
    ok = gw.get("/x", headers=h(es512_token(roles=["reader", "writer"]))).json()["headers"]
    assert ok.get("x-user-roles") == "reader,writer", ok


def test_max_token_bytes_applies_to_gateway_tokens(gw):
    big = jf.mse_token(C1.name, C1.client_id, C1.client_secret, note="n" * 9000)
    assert 8192 < len(big) < MAX_TOKEN_BYTES
    assert_passed(gw.get("/x", headers=h(big)), C1, "GET", "/x")
    huge = jf.mse_token(C1.name, C1.client_id, C1.client_secret, note="n" * MAX_TOKEN_BYTES)
    r = gw.get("/x", headers=h(huge))
    assert_unauthorized(r, "/x")
    assert 'error_description="token too large"' in r.headers["WWW-Authenticate"], r


# ---------------------------------------------------------------------------
# Single sign-on: bearer tokens and ID tokens
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(echo, wasm):
    s = Site("bypass", harness.free_port())
    with _idp(harness.free_port(), "sso-bypass", [s]) as idp:
        s.idp = idp
        # refreshed on the first request a second after sign-in
        s.start(sso_config(idp.issuer, SECRET_A, cookie_refresh="1s"), idp.port, echo.port, wasm)
        try:
            s.wait_sso_ready()
            yield s
        finally:
            idp.edit_id_tokens(None)
            s.stop()


def api(site: Site, token: str, p: tuple[str, str]):
    return Browser(name="api").request("GET", site.url("/api/orders"), accept="application/json", cookies=False,
                                       headers={"Authorization": f"Bearer {token}", p[0]: p[1]})


def test_sso_bearer_token_must_be_meant_for_this_client(site, echo):
    idp = site.idp
    accepted = {
        "aud client_id": idp.forge("RS256", aud=APP1.client_id, sub="svc-1"),
        "aud configured": idp.forge("RS256", aud=RS256_RESOURCE, sub="svc-1"),
        "aud list + azp us": idp.forge("RS256", aud=[APP1.client_id, "urn:x"], azp=APP1.client_id, sub="svc-1"),
    }
    for name, token in accepted.items():
        p = probe()
        r = api(site, token, p)
        assert r.status == 200, (name, r)
        assert echo_of(r, "/api/orders")["headers"].get("x-mse-consumer") == "svc-1", (name, r)
    refused = {
        "aud another API": (idp.forge("RS256", aud="urn:edge-auth:other-api"), "audience not accepted"),
        "aud + azp another client": (idp.forge("RS256", aud=[APP1.client_id, APP2.client_id],
                                               azp=APP2.client_id), "authorized party is not this client"),
        "azp another client": (idp.forge("RS256", aud=APP1.client_id, azp=APP2.client_id),
                               "authorized party is not this client"),
        "aud list without azp": (idp.forge("RS256", aud=[APP1.client_id, "urn:x"]),
                                 "authorized party is not this client"),
        "no aud": (idp.forge("RS256", aud=None), "audience not accepted"),
        "no sub": (idp.forge("RS256", aud=APP1.client_id, sub=None), "token names no subject"),
    }
    for name, (token, reason) in refused.items():
        p = probe()
        r = api(site, token, p)
        assert r.status == 401, (name, r)
        assert r.text == "Invalid Jwt token.", (name, r)
        assert f'error_description="{reason}"' in r.headers["WWW-Authenticate"], (name, r)
        assert r.headers.get("Location") is None, (name, r)
        assert upstream_saw(echo, p) == [], name


def test_id_token_without_sub_makes_no_session(site, echo):
    site.idp.edit_id_tokens({"authorization_code": {"sub": None}})
    try:
        b = Browser(login="nosub", name="nosub")
        p = probe()
        page = b.navigate(site.url("/app/nosub"), headers=[p])
    finally:
        site.idp.edit_id_tokens(None)
    cb = [r for r in page.history if r.url.split("?", 1)[0] == site.callback]
    assert len(cb) == 1, page
    # The page says sign-in failed (no technical text); the reason is in the
    # gateway's log.
    assert cb[0].status == 403 and "<h1>Sign-in failed</h1>" in cb[0].text, cb[0]
    assert "names no user" not in cb[0].text, cb[0]
    assert site.gw.wait_log("sign-in refused: ID token names no user [no_identity]", timeout=5), \
        site.gw.log_tail(20)
    assert session_lines(cb[0]) == {}, cb[0]
    assert b.jar.get(COOKIE) is None, b.jar
    assert upstream_saw(echo, p) == []
    assert b.request("GET", site.url("/app/nosub"), headers=XHR).status == 401


def test_refresh_for_another_user_ends_the_session(site, echo):
    # The echo upstream is shared by the whole session; only what reaches it
    # from here on is this test's evidence (other files send forged
    # "mallory" headers of their own).
    first = len(echo.requests)
    b = Browser(login="bob", name="bob")
    h0 = echo_of(b.navigate(site.url("/app/me")), "/app/me")["headers"]
    assert h0["x-mse-consumer"] == "bob", h0
    site.idp.edit_id_tokens({"refresh_token": {"sub": "mallory", "email": "mallory@example.test"}})
    try:
        deadline = time.monotonic() + 15
        while True:  # until the session is due for refresh (cookie_refresh 1s)
            p = probe()
            r = b.request("GET", site.url("/app/me"), headers={**XHR, p[0]: p[1]})
            if r.status != 200 or time.monotonic() > deadline:
                break
            assert r.json()["headers"]["x-mse-consumer"] == "bob", r
    finally:
        site.idp.edit_id_tokens(None)
    assert r.status == 401, r
    assert cleared(r, COOKIE), r
    assert upstream_saw(echo, p) == []
    assert b.jar.get(COOKIE) is None, b.jar
    assert not any(q["headers"].get("x-mse-consumer") == "mallory" for q in echo.requests[first:])
    assert len(site.idp.request_lines("POST", "/token")) >= 2, site.idp.log_tail()
