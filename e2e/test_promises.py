"""README promises about JWT consumers and the token endpoint that no other
test held the plugin to, end to end in a real Envoy:

* ``claims_to_headers`` with ``override: false`` appends to the header's
  value (an earlier entry's); ``override: true``, the default, replaces it.
  What a client sent in a claim header never survives either way;
* ``keep_token: false`` removes a header-borne token but leaves tokens in
  query parameters and cookies in place;
* when several consumers verify a token, the first in config order wins;
* the verified-token cache is cleared when a key set changes: a token that
  was a cache hit is refused once its key is rotated away;
* the token endpoint's 413 and ``invalid_scope`` answers, bodies included.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import quote

import pytest

import jose_forge as jf
from common import (
    C1,
    TOKEN_PATH,
    assert_consumer,
    assert_token_error,
    assert_unauthorized,
    bearer_headers,
    consumers,
    cred_params,
    probe,
    query,
    upstream_saw,
    with_probe,
)
from idp_control import (
    APP1,
    IDP_CLUSTER,
    RS256_RESOURCE,
    Gateways,
    Idp,
    gateway,
    make_keyset,
    poll,
)

ISS = "https://idp.promises.example"
AUD = "urn:edge-auth:promises"
KEY = jf.rsa_key("RS256", kid="promises-rs-1")
FIRST = {"name": "first-app", "issuer": ISS, "audiences": [AUD], "jwks": jf.jwks(KEY),
         "claims_to_headers": [{"claim": "sub", "header": "x-user"},
                               {"claim": "client_id", "header": "x-user", "override": False},
                               {"claim": "sub", "header": "x-user-replaced"},
                               {"claim": "client_id", "header": "x-user-replaced"}]}
SECOND = {"name": "second-app", "issuer": ISS, "audiences": [AUD], "jwks": jf.jwks(KEY)}
LOCATIONS = {"name": "loc-app", "issuer": ISS, "audiences": [AUD], "jwks": jf.jwks(KEY), "keep_token": False,
             "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
             "from_params": ["access_token"], "from_cookies": ["jwt"]}
CONFIGS = {
    "order-ab": ({"consumers": [FIRST, SECOND], "global_auth": True}, {}),
    "order-ba": ({"consumers": [SECOND, FIRST], "global_auth": True}, {}),
    "locations": ({"consumers": [LOCATIONS], "global_auth": True}, {}),
    "client": ({"consumers": consumers(C1)}, {}),
}
KEY_WAIT = 40.0  # jwks_refresh_seconds 10 + a tick + a restart's backoff


@pytest.fixture(scope="module")
def gws(echo, wasm):
    g = Gateways(CONFIGS, echo.port, "test_promises", wasm)
    yield g
    g.stop_all()


def token(sub: str = "user-1") -> str:
    return jf.sign_jwt(jf.claims(ISS, AUD, sub=sub, client_id="app-1"), KEY)


def counters(gw) -> dict[str, int]:
    url = f"http://127.0.0.1:{gw.admin_port}/stats?filter=edge_auth"
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith("wasmcustom.edge_auth_") and value.strip().isdigit():
            out[name.removeprefix("wasmcustom.edge_auth_")] = int(value)
    return out


# ---------------------------------------------------------------------------
# claims_to_headers override
# ---------------------------------------------------------------------------


def test_claims_to_headers_override_false_appends(gws):
    gw = gws["order-ab"]
    t = token(sub="alice")
    sent = bearer_headers(t, ("X-User", "from-client"), ("X-User-Replaced", "from-client"))
    echo = assert_consumer(gw.get("/a/h", headers=sent), "first-app", "GET", "/a/h")
    # sub, then client_id with override: false -- appended after it.
    assert echo["headers"]["x-user"] == ["alice", "app-1"], echo["headers"]
    # sub, then client_id with override: true (default) -- replaced, once.
    assert echo["headers"]["x-user-replaced"] == "app-1", echo["headers"]
    # The client's copies were removed first (identity headers are the plugin's).
    echo = assert_consumer(gw.get("/a/h", headers=bearer_headers(t)), "first-app", "GET", "/a/h")
    assert echo["headers"]["x-user"] == ["alice", "app-1"], echo["headers"]


# ---------------------------------------------------------------------------
# keep_token: false and token locations
# ---------------------------------------------------------------------------


def test_keep_token_false_leaves_query_and_cookie_tokens(gws):
    gw = gws["locations"]
    t = token()
    # Header-borne: removed (keep_token: false is in effect).
    echo = assert_consumer(gw.get("/a/k", headers=bearer_headers(t)), "loc-app", "GET", "/a/k")
    assert "authorization" not in echo["headers"], echo["headers"]
    # Query parameter: left in place, the rest of the query too.
    path = f"/a/k?x=1&access_token={t}&y=2"
    echo = assert_consumer(gw.get(path, headers=bearer_headers(None)), "loc-app", "GET", path)
    assert echo["path"] == path, echo
    # Cookie: left in place with the other cookies.
    cookie = f"theme=dark; jwt={t}; lang=en"
    echo = assert_consumer(gw.get("/a/k", headers=bearer_headers(None, ("Cookie", cookie))), "loc-app", "GET", "/a/k")
    assert echo["headers"]["cookie"] == cookie, echo["headers"]


# ---------------------------------------------------------------------------
# Consumer order
# ---------------------------------------------------------------------------


def test_first_consumer_in_config_order_wins(gws):
    t = token()
    # The same token verifies for both consumers; the order decides, not the name.
    echo = assert_consumer(gws["order-ab"].get("/a/o", headers=bearer_headers(t)), "first-app", "GET", "/a/o")
    assert echo["headers"]["x-user"] == ["user-1", "app-1"], echo["headers"]  # first-app's claim headers
    echo = assert_consumer(gws["order-ba"].get("/a/o", headers=bearer_headers(t)), "second-app", "GET", "/a/o")
    assert "x-user" not in echo["headers"] and "x-user-replaced" not in echo["headers"], echo["headers"]


# ---------------------------------------------------------------------------
# The verified-token cache and key rotation
# ---------------------------------------------------------------------------


def test_verified_token_cache_cleared_when_keys_change(echo, wasm):
    with Idp(name="test_promises-rotate") as idp:
        config = {"consumers": [{"name": "idp-app", "issuer": idp.issuer, "audiences": [RS256_RESOURCE],
                                 "jwks_uri": idp.url("/jwks"), "cluster": IDP_CLUSTER, "jwks_refresh_seconds": 10}],
                  "global_auth": True}
        with gateway(config, echo.port, {IDP_CLUSTER: idp.port}, name="test_promises-rotate", wasm=wasm) as gw:
            old = idp.client_credentials_token(APP1, RS256_RESOURCE)
            r, _ = poll(lambda: gw.get("/a/c", headers=bearer_headers(old)), lambda r: r.status == 200, KEY_WAIT)
            assert_consumer(r, "idp-app", "GET", "/a/c")
            # The next use is a cache hit (counted).
            before = counters(gw)
            assert_consumer(gw.get("/a/c", headers=bearer_headers(old)), "idp-app", "GET", "/a/c")
            after = counters(gw)
            assert after.get("cache_hits", 0) - before.get("cache_hits", 0) == 1, (before, after)

            # Rotate: the old signing key is gone from the IdP's JWKS.
            rotated, _ = make_keyset(tag="rotated")
            idp.restart(keyset=rotated)
            new = idp.client_credentials_token(APP1, RS256_RESOURCE)
            assert jf.decode(new)[0]["kid"] != jf.decode(old)[0]["kid"]
            # Readiness: the gateway holds the new keys once a new token passes.
            r, _ = poll(lambda: gw.get("/a/c", headers=bearer_headers(new)), lambda r: r.status == 200, KEY_WAIT)
            assert_consumer(r, "idp-app", "GET", "/a/c")
            # The cached verdict for the old token went with the old keys.
            n = echo.count()
            r = gw.get("/a/c", headers=bearer_headers(old))
            assert_unauthorized(r, "/a/c")
            assert "unknown key id" in r.headers.get("WWW-Authenticate", ""), r
            assert echo.count() == n


# ---------------------------------------------------------------------------
# Token endpoint: 413 and invalid_scope, end to end
# ---------------------------------------------------------------------------


def test_token_endpoint_413_body(gws, echo):
    gw = gws["client"]
    p = probe()
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in cred_params(C1)) + "&pad=" + "x" * (16 * 1024)
    r = gw.post(TOKEN_PATH, body, headers=with_probe({"Content-Type": "application/x-www-form-urlencoded"}, p))
    assert_token_error(r, 413, "invalid_request", "request body too large")
    assert upstream_saw(echo, p) == []
    # Control: the same form without the padding gets a token.
    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in cred_params(C1))
    r = gw.post(TOKEN_PATH, body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 200 and r.json()["token_type"] == "bearer", r


def test_token_endpoint_invalid_scope_body(gws, echo):
    gw = gws["client"]
    for scope in ('read "write"', "read\\write", "caf\u00e9"):
        p = probe()
        r = gw.get(query(TOKEN_PATH, cred_params(C1, scope=scope)), headers=[p])
        assert_token_error(r, 400, "invalid_scope", "scope has invalid characters")
        assert upstream_saw(echo, p) == []
    # Control: a scope of allowed characters is issued as asked.
    r = gw.get(query(TOKEN_PATH, cred_params(C1, scope="read write:all")))
    assert r.status == 200 and jf.decode(r.json()["access_token"])[1]["scope"] == "read write:all", r
