"""Third-party JWT consumers: keys from a real OpenID provider (jwks_uri,
OIDC discovery, Higress-style service cluster) and inline JWKS for every
algorithm; consumer selection by claims, claims to headers, token
locations, allow lists, key rotation and an IdP that is down at start.

The IdP is ``e2e/idp/server.js`` (oidc-provider), driven by idp_control.py;
its key sets are made here, so tests also sign tokens with its keys.
"""

from __future__ import annotations

import json
import time

import pytest

import harness
import jose_forge as jf
from common import (
    assert_consumer,
    assert_forbidden,
    assert_unauthorized,
    assert_unavailable,
    bearer_headers,
)
from idp_control import (
    APP1,
    APP2,
    ES256_RESOURCE,
    IDP_CLUSTER,
    RS256_RESOURCE,
    Gateways,
    Idp,
    IdpClient,
    gateway,
    make_keyset,
    poll,
)

ORDERS = "orders-app"  # APP1's consumer
BILLING = "billing-app"  # APP2's consumer
APP3 = IdpClient("edge-auth-app3", "not-registered")
RESOURCES = {"rs256": RS256_RESOURCE, "es256": ES256_RESOURCE}
RESOURCE_ALG = {RS256_RESOURCE: "RS256", ES256_RESOURCE: "ES256"}
CONSUMER_OF = {APP1.client_id: ORDERS, APP2.client_id: BILLING}

# claims_to_headers of the "orders-app" consumer; the IdP gives APP1's tokens
# sub=edge-auth-app, roles=["reader","writer"], tier=3, internal=true and no email.
ORDERS_HEADERS = [
    {"claim": "sub", "header": "x-user-sub", "override": True},
    {"claim": "roles", "header": "x-user-roles", "override": True},
    {"claim": "tier", "header": "x-user-tier", "override": False},
    {"claim": "internal", "header": "x-user-internal"},
    {"claim": "email", "header": "x-user-email", "override": True},
]
BILLING_HEADERS = [{"claim": "tenant", "header": "x-tenant", "override": True}]
ALL_CLAIM_HEADERS = ("x-user-sub", "x-user-roles", "x-user-tier", "x-user-internal", "x-user-email", "x-tenant")

HIGRESS_CLUSTER = "outbound|80||idp.svc"
HIGRESS_HOST = "idp.example"

INLINE_AUD = "urn:edge-auth:inline"
INLINE_KEYS = {alg: jf.key_for_alg(alg, kid=f"inline-{alg.lower()}") for alg in jf.ALGS}
LOC_KEY = jf.rsa_key("RS256", kid="loc-rs256")
NOKEEP_KEY = jf.ec_key("ES256", kid="nokeep-es256")
SKEW = 60
CACHE_KEY = jf.ec_key("ES256", kid="cache-es256")
CACHE_ISS = "https://cache.example"

KEY_WAIT = 30.0  # seconds a fresh gateway may take to fetch remote keys
ROTATION_WAIT = 40.0
LATE_START_WAIT = 60.0


def inline_iss(alg: str) -> str:
    return f"https://{alg.lower()}.inline.example"


def inline_name(alg: str) -> str:
    return f"inline-{alg.lower()}"


# ---------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------


def key_source(idp: Idp, via: str) -> dict:
    if via == "jwks_uri":
        return {"issuer": idp.issuer, "jwks_uri": idp.url("/jwks"), "cluster": IDP_CLUSTER}
    if via == "discovery":
        return {"oidc_issuer": idp.issuer, "cluster": IDP_CLUSTER}
    if via == "higress":
        return {"issuer": idp.issuer, "jwks_uri": idp.url("/jwks"), "service_name": "idp.svc",
                "service_port": 80, "service_host": HIGRESS_HOST}
    raise ValueError(via)


def remote_config(idp: Idp, via: str) -> dict:
    """Two consumers sharing the IdP as issuer, told apart by client_id;
    /a allows only orders-app, everything else is checked too."""
    src = key_source(idp, via)
    return {
        "consumers": [
            {"name": ORDERS, **src, "audiences": [RS256_RESOURCE, ES256_RESOURCE],
             "claims": {"client_id": APP1.client_id}, "claims_to_headers": ORDERS_HEADERS},
            {"name": BILLING, **src, "audiences": [RS256_RESOURCE, ES256_RESOURCE],
             "claims": {"client_id": APP2.client_id}, "claims_to_headers": BILLING_HEADERS},
        ],
        "global_auth": True,
        "_rules_": [{"_match_route_": ["route-a"], "allow": [ORDERS]}],
    }


def inline_config() -> dict:
    consumers = []
    for i, (alg, key) in enumerate(INLINE_KEYS.items()):
        doc = jf.jwks(key)
        consumers.append({
            "name": inline_name(alg),
            "issuer": inline_iss(alg),
            "audiences": [INLINE_AUD],
            # Both accepted forms: a JSON string and a JSON object.
            "jwks": json.dumps(doc) if i % 2 == 0 else doc,
            "clock_skew_seconds": SKEW,
            "require_exp": True,
        })
    consumers.append({"name": "cache-app", "issuer": CACHE_ISS, "audiences": [INLINE_AUD],
                      "jwks": jf.jwks(CACHE_KEY), "clock_skew_seconds": 0})
    return {"consumers": consumers, "global_auth": True, "token_cache_size": 16}


def locations_config() -> dict:
    return {
        "consumers": [
            {"name": "loc-app", "issuer": "https://loc.example", "audiences": ["urn:edge-auth:loc"],
             "jwks": jf.jwks(LOC_KEY),
             "from_headers": [{"name": "X-Api-Token", "value_prefix": "Token "}],
             "from_params": ["jwt"], "from_cookies": ["jwt"]},
            {"name": "nokeep-app", "issuer": "https://nokeep.example", "audiences": ["urn:edge-auth:nokeep"],
             "jwks": json.dumps(jf.jwks(NOKEEP_KEY)), "keep_token": False},
        ],
        "global_auth": True,
    }


def loc_token(**claims) -> str:
    return jf.sign_jwt(jf.override(jf.claims("https://loc.example", "urn:edge-auth:loc"), **claims), LOC_KEY)


def nokeep_token(**claims) -> str:
    return jf.sign_jwt(jf.override(jf.claims("https://nokeep.example", "urn:edge-auth:nokeep"), **claims), NOKEEP_KEY)


def inline_token(alg: str, key: jf.Key | None = None, header: dict | None = None, **claims) -> str:
    return jf.sign_jwt(jf.override(jf.claims(inline_iss(alg), INLINE_AUD), **claims), key or INLINE_KEYS[alg], header)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idp():
    with Idp(name="test_jwks") as server:
        yield server


def wait_keys_loaded(idp: Idp):
    """Ready check for a gateway with remote keys: valid RS256 and ES256
    tokens pass (keys fetched) within KEY_WAIT seconds; if they never do,
    the tests report it."""

    def _ready(gw: harness.Envoy) -> None:
        for resource in (RS256_RESOURCE, ES256_RESOURCE):
            token = idp.client_credentials_token(APP1, resource)
            poll(lambda: gw.get("/b/ready", headers=bearer_headers(token)), lambda r: r.status == 200, KEY_WAIT)

    return _ready


@pytest.fixture(scope="module")
def gws(idp, echo, wasm):
    specs = {
        "jwks_uri": (remote_config(idp, "jwks_uri"), {IDP_CLUSTER: idp.port}),
        "discovery": (remote_config(idp, "discovery"), {IDP_CLUSTER: idp.port}),
        "higress": (
            {"consumers": [{"name": "higress-app", **key_source(idp, "higress"),
                            "audiences": [RS256_RESOURCE, ES256_RESOURCE]}], "global_auth": True},
            {HIGRESS_CLUSTER: idp.port},
        ),
        "inline": (inline_config(), {}),
        "locations": (locations_config(), {}),
    }
    ready = {k: wait_keys_loaded(idp) for k in ("jwks_uri", "discovery", "higress")}
    g = Gateways(specs, echo.port, "test_jwks", wasm, ready)
    yield g
    g.stop_all()


@pytest.fixture(scope="module")
def idp_tokens(idp):
    """Client-credentials tokens: {(client_id, resource): token}."""
    return {
        (c.client_id, res): idp.client_credentials_token(c, res)
        for c in (APP1, APP2)
        for res in (RS256_RESOURCE, ES256_RESOURCE)
    }


REMOTE = ["jwks_uri", "discovery"]


# ---------------------------------------------------------------------------
# The IdP fixture itself (no gateway involved)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["basic", "post"])
@pytest.mark.parametrize("resource", [RS256_RESOURCE, ES256_RESOURCE])
@pytest.mark.parametrize("client", [APP1, APP2], ids=lambda c: c.client_id)
def test_idp_client_credentials_gives_rfc9068_jwt(idp, client, resource, auth):
    token = idp.client_credentials_token(client, resource, auth=auth)  # checks header, claims, signature
    header, claims, _ = jf.decode(token)
    assert header["alg"] == RESOURCE_ALG[resource], header
    assert claims["scope"] == "read write", claims
    assert claims["exp"] - claims["iat"] == 600, claims
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16, claims


def test_idp_discovery_and_jwks(idp):
    doc = idp.discovery()
    assert doc["issuer"] == idp.issuer and not doc["issuer"].endswith("/"), doc
    assert doc["jwks_uri"] == idp.url("/jwks"), doc
    assert {"client_credentials", "authorization_code", "refresh_token"} <= set(doc["grant_types_supported"]), doc
    assert doc["end_session_endpoint"] == idp.url("/session/end"), doc
    r = idp.jwks()
    assert r.status == 200, r
    published = {k["kid"]: k for k in r.json()["keys"]}
    assert published == {kid: k.public_jwk() for kid, k in idp.keys.items()}, published
    assert all("d" not in k for k in published.values()), published


def test_idp_without_resource_gives_opaque_token_and_rejects_unknown_resource(idp):
    r = idp.token_request(APP1, [("grant_type", "client_credentials"), ("scope", "read")])
    assert r.status == 200, r
    assert r.json()["access_token"].count(".") == 0, r
    r = idp.token_request(APP1, [("grant_type", "client_credentials"), ("resource", "urn:edge-auth:nope")])
    assert r.status == 400 and r.json()["error"] == "invalid_target", r
    r = idp.token_request(IdpClient(APP1.client_id, "wrong"), [("grant_type", "client_credentials")])
    assert r.status == 401 and r.json()["error"] == "invalid_client", r


def test_idp_login_refresh_and_logout_flow():
    """devInteractions login + consent, code exchange, refresh token
    (offline_access + prompt=consent), RP-initiated logout."""
    callback = "http://127.0.0.1:9/oauth2/callback"
    with Idp(name="oidc-flow", redirect_uris=[callback], access_token_ttl=120, id_token_ttl=90) as flow_idp:
        res = flow_idp.authorization_code_flow(
            APP1, callback, login="alice", scope="openid email offline_access", extra={"prompt": "consent"})
        tokens = flow_idp.exchange_code(APP1, res["code"], callback, auth="post")
        assert {"access_token", "id_token", "refresh_token"} <= set(tokens), tokens
        _, id_claims, _ = jf.decode(tokens["id_token"])
        assert id_claims["sub"] == "alice" and id_claims["aud"] == APP1.client_id, id_claims
        assert id_claims["iss"] == flow_idp.issuer and id_claims["exp"] - id_claims["iat"] == 90, id_claims
        r = flow_idp.token_request(APP1, [("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"])])
        assert r.status == 200 and "access_token" in r.json(), r
        final = flow_idp.end_session(res["jar"], tokens["id_token"], "http://127.0.0.1:9/")
        assert final.startswith("http://127.0.0.1:9/?"), final


# ---------------------------------------------------------------------------
# Remote keys: jwks_uri and OIDC discovery
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("client", [APP1, APP2], ids=lambda c: c.client_id)
@pytest.mark.parametrize("resource", [RS256_RESOURCE, ES256_RESOURCE], ids=["rs256", "es256"])
@pytest.mark.parametrize("via", REMOTE)
def test_idp_token_accepted(gws, idp_tokens, via, resource, client):
    token = idp_tokens[(client.client_id, resource)]
    r = gws[via].get("/b/orders?x=1", headers=bearer_headers(token))
    echo = assert_consumer(r, CONSUMER_OF[client.client_id], "GET", "/b/orders?x=1")
    assert echo["headers"]["authorization"] == f"Bearer {token}", echo  # keep_token defaults to true


@pytest.mark.parametrize("via", REMOTE)
def test_claims_to_headers(gws, idp_tokens, via):
    gw = gws[via]
    r = gw.get("/b/c2h", headers=bearer_headers(idp_tokens[(APP1.client_id, RS256_RESOURCE)]))
    h = assert_consumer(r, ORDERS, "GET", "/b/c2h")["headers"]
    assert h.get("x-user-sub") == APP1.client_id, h
    assert h.get("x-user-roles") == "reader,writer", h  # string array joined with ","
    assert h.get("x-user-tier") == "3", h  # number
    assert h.get("x-user-internal") == "true", h  # boolean
    assert "x-user-email" not in h, h  # claim absent: no header
    assert "x-tenant" not in h, h  # another consumer's mapping
    r = gw.get("/b/c2h", headers=bearer_headers(idp_tokens[(APP2.client_id, ES256_RESOURCE)]))
    h = assert_consumer(r, BILLING, "GET", "/b/c2h")["headers"]
    assert h.get("x-tenant") == "globex", h
    for name in ("x-user-sub", "x-user-roles", "x-user-tier", "x-user-internal", "x-user-email"):
        assert name not in h, (name, h)


SPOOFS = [
    ("X-Mse-Consumer", "admin"),
    ("x-mse-consumer", BILLING),
    ("X-User-Sub", "root"),
    ("x-user-sub", "root2"),
    ("X-User-Roles", "admin"),
    ("X-User-Tier", "99"),
    ("X-User-Internal", "false"),
    ("X-User-Email", "root@evil.example"),
    ("X-Tenant", "evil"),
]


@pytest.mark.parametrize("via", REMOTE)
def test_spoofed_identity_headers_are_removed(gws, idp_tokens, via):
    gw = gws[via]
    token = idp_tokens[(APP1.client_id, ES256_RESOURCE)]
    r = gw.get("/b/spoof", headers=bearer_headers(token, *SPOOFS))
    h = assert_consumer(r, ORDERS, "GET", "/b/spoof")["headers"]
    assert h.get("x-user-sub") == APP1.client_id, h  # exactly one value, the claim's
    assert h.get("x-user-roles") == "reader,writer", h
    assert h.get("x-user-tier") == "3", h  # override false: the client's value is still removed first
    assert h.get("x-user-internal") == "true", h
    assert "x-user-email" not in h, h  # claim absent: spoofed value removed, nothing set
    assert "x-tenant" not in h, h  # header of another consumer's mapping: removed too
    # The other consumer.
    r = gw.get("/b/spoof", headers=bearer_headers(idp_tokens[(APP2.client_id, RS256_RESOURCE)], *SPOOFS))
    h = assert_consumer(r, BILLING, "GET", "/b/spoof")["headers"]
    assert h.get("x-tenant") == "globex", h
    for name in ("x-user-sub", "x-user-roles", "x-user-tier", "x-user-internal", "x-user-email"):
        assert name not in h, (name, h)


@pytest.mark.parametrize("via", REMOTE)
def test_spoofed_headers_without_token_do_not_pass(gws, echo, via):
    n = echo.count()
    r = gws[via].get("/b/spoof", headers=bearer_headers(None, *SPOOFS))
    assert_unauthorized(r, "/b/spoof", token_present=False)
    assert echo.count() == n


@pytest.mark.parametrize("via", REMOTE)
def test_allow_list_denies_other_jwt_consumer(gws, idp_tokens, echo, via):
    gw = gws[via]
    for res in (RS256_RESOURCE, ES256_RESOURCE):
        t1, t2 = idp_tokens[(APP1.client_id, res)], idp_tokens[(APP2.client_id, res)]
        assert_consumer(gw.get("/a/allowed", headers=bearer_headers(t1)), ORDERS, "GET", "/a/allowed")
        n = echo.count()
        assert_forbidden(gw.get("/a/allowed", headers=bearer_headers(t2)))
        assert echo.count() == n
        assert_consumer(gw.get("/b/open", headers=bearer_headers(t2)), BILLING, "GET", "/b/open")
    assert_unauthorized(gw.get("/a/allowed", headers=bearer_headers(None)), "/a/allowed", token_present=False)
    assert_unauthorized(gw.get("/a/allowed", headers=bearer_headers("garbage")), "/a/allowed")


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
@pytest.mark.parametrize("via", REMOTE)
def test_claims_matching_no_consumer_is_rejected(gws, idp, echo, via, alg):
    """Signed by the IdP, but client_id matches neither consumer's claims."""
    token = idp.forge(alg, client_id=APP3.client_id, sub=APP3.client_id)
    n = echo.count()
    assert_unauthorized(gws[via].get("/b/x", headers=bearer_headers(token)), "/b/x")
    assert echo.count() == n
    # Control: the same forging with a known client passes.
    assert_consumer(gws[via].get("/b/x", headers=bearer_headers(idp.forge(alg, client_id=APP2.client_id))),
                    BILLING, "GET", "/b/x")


def _bad_claims(idp: Idp) -> dict[str, dict]:
    now = int(time.time())
    return {
        "aud-other": {"aud": "urn:edge-auth:other"},
        "aud-missing": {"aud": None},
        "expired": {"iat": now - 1200, "exp": now - 600},
        "nbf-future": {"nbf": now + 600},
        "iss-wrong": {"iss": "http://127.0.0.1:1"},
        "iss-trailing-slash": {"iss": idp.issuer + "/"},
        "iss-missing": {"iss": None},
    }


@pytest.mark.parametrize("case", ["aud-other", "aud-missing", "expired", "nbf-future", "iss-wrong",
                                  "iss-trailing-slash", "iss-missing"])
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
@pytest.mark.parametrize("via", REMOTE)
def test_bad_registered_claims_rejected(gws, idp, echo, via, alg, case):
    token = idp.forge(alg, **_bad_claims(idp)[case])
    n = echo.count()
    assert_unauthorized(gws[via].get("/b/claims", headers=bearer_headers(token)), "/b/claims")
    assert echo.count() == n


@pytest.mark.parametrize("resource", [RS256_RESOURCE, ES256_RESOURCE], ids=["rs256", "es256"])
def test_higress_style_service_cluster(gws, idp, resource):
    gw = gws["higress"]
    token = idp.client_credentials_token(APP2, resource)
    assert_consumer(gw.get("/svc/h", headers=bearer_headers(token)), "higress-app", "GET", "/svc/h")
    fetches = idp.request_lines("GET", "/jwks")
    assert any(f" host={HIGRESS_HOST} " in ln for ln in fetches), (
        "no key fetch with Host: service_host", fetches[-10:])


# ---------------------------------------------------------------------------
# Inline JWKS, every algorithm
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inline_gw(gws):
    return gws["inline"]


@pytest.mark.parametrize("alg", jf.ALGS)
def test_inline_jwks_accepts_every_algorithm(inline_gw, alg):
    token = inline_token(alg)
    echo = assert_consumer(inline_gw.get("/a/inline", headers=bearer_headers(token)), inline_name(alg), "GET", "/a/inline")
    assert echo["headers"]["authorization"] == f"Bearer {token}", echo


@pytest.mark.parametrize("alg", ["RS256", "ES384", "HS512", "EdDSA"])
def test_inline_default_query_param_location(inline_gw, alg):
    path = f"/b/q?access_token={inline_token(alg)}&x=1"
    assert_consumer(inline_gw.get(path, headers=[("Host", "gw.example.test")]), inline_name(alg), "GET")


@pytest.mark.parametrize("alg", jf.ALGS)
def test_inline_aud_array_containing_audience_accepted(inline_gw, alg):
    token = inline_token(alg, aud=["urn:other", INLINE_AUD])
    assert_consumer(inline_gw.get("/a/aud", headers=bearer_headers(token)), inline_name(alg), "GET", "/a/aud")


@pytest.mark.parametrize("alg", jf.ALGS)
def test_inline_wrong_key_same_kid_rejected(inline_gw, echo, alg):
    impostor = jf.key_for_alg(alg, kid=INLINE_KEYS[alg].kid)
    n = echo.count()
    assert_unauthorized(inline_gw.get("/a/k", headers=bearer_headers(inline_token(alg, key=impostor))), "/a/k")
    assert echo.count() == n


@pytest.mark.parametrize("alg", jf.ALGS)
def test_inline_other_consumers_key_rejected(inline_gw, alg):
    """Claims of consumer ``alg`` signed by another inline consumer's key
    (under that key's kid and algorithm)."""
    others = [a for a in jf.ALGS if a != alg]
    other = others[jf.ALGS.index(alg) % len(others)]
    token = inline_token(alg, key=INLINE_KEYS[other])
    assert_unauthorized(inline_gw.get("/a/k", headers=bearer_headers(token)), "/a/k")


def _time_cases() -> dict[str, tuple[dict, bool]]:
    now = int(time.time())
    return {
        "expired": ({"iat": now - 1000, "exp": now - SKEW - 60}, False),
        "expired-within-skew": ({"iat": now - 1000, "exp": now - SKEW + 30}, True),
        "nbf-future": ({"nbf": now + SKEW + 60}, False),
        "nbf-within-skew": ({"nbf": now + SKEW - 30}, True),
        "exp-missing": ({"exp": None}, False),  # require_exp: true
        "iss-wrong": ({"iss": "https://evil.inline.example"}, False),
        "aud-wrong": ({"aud": "urn:edge-auth:other"}, False),
        "aud-array-without": ({"aud": ["urn:a", "urn:b"]}, False),
    }


@pytest.mark.parametrize("case", list(_time_cases()))
@pytest.mark.parametrize("alg", ["HS256", "RS256", "PS384", "ES256", "EdDSA"])
def test_inline_registered_claims(inline_gw, echo, alg, case):
    claims, ok = _time_cases()[case]
    token = inline_token(alg, **claims)
    r = inline_gw.get("/b/t", headers=bearer_headers(token))
    if ok:
        assert_consumer(r, inline_name(alg), "GET", "/b/t")
    else:
        n = echo.count()
        assert_unauthorized(r, "/b/t")
        assert echo.count() == n


def test_cached_token_still_expires(inline_gw, echo):
    """A verified token served from the token cache stops passing at its
    exp (clock_skew_seconds 0)."""
    exp = int(time.time()) + 3
    token = jf.sign_jwt(jf.claims(CACHE_ISS, INLINE_AUD, exp=exp), CACHE_KEY)
    for _ in range(3):  # the first verifies, the others may come from the cache
        assert_consumer(inline_gw.get("/b/cache", headers=bearer_headers(token)), "cache-app", "GET", "/b/cache")
    # Readiness, not a computed sleep: keep using it until the gateway
    # refuses it (bounded); every answer before that is a full pass.
    deadline = time.monotonic() + 15
    while True:
        r = inline_gw.get("/b/cache", headers=bearer_headers(token))
        if r.status != 200:
            break
        assert_consumer(r, "cache-app", "GET", "/b/cache")
        assert time.monotonic() < deadline, "a cached token still passes long after its exp"
        time.sleep(0.05)
    assert_unauthorized(r, "/b/cache")
    assert "token expired" in r.headers.get("WWW-Authenticate", ""), r
    assert time.time() >= exp, "refused before its exp"
    n = echo.count()
    assert_unauthorized(inline_gw.get("/b/cache", headers=bearer_headers(token)), "/b/cache")
    assert echo.count() == n
    # A tampered copy of a cached token is not a cache hit.
    fresh = jf.sign_jwt(jf.claims(CACHE_ISS, INLINE_AUD), CACHE_KEY)
    assert_consumer(inline_gw.get("/b/cache", headers=bearer_headers(fresh)), "cache-app", "GET", "/b/cache")
    assert_unauthorized(inline_gw.get("/b/cache", headers=bearer_headers(jf.tamper_signature(fresh))), "/b/cache")
    assert_unauthorized(inline_gw.get("/b/cache", headers=bearer_headers(jf.tamper_payload(fresh, sub="admin"))), "/b/cache")


# ---------------------------------------------------------------------------
# Token locations and keep_token
# ---------------------------------------------------------------------------


def test_custom_header_with_prefix(gws):
    gw = gws["locations"]
    token = loc_token()
    echo = assert_consumer(gw.get("/b/l", headers=[("Host", "gw.example.test"), ("X-Api-Token", f"Token {token}")]),
                           "loc-app", "GET", "/b/l")
    assert echo["headers"]["x-api-token"] == f"Token {token}", echo  # keep_token default


def test_custom_param(gws):
    gw = gws["locations"]
    path = f"/b/l?a=1&jwt={loc_token()}"
    assert_consumer(gw.get(path, headers=[("Host", "gw.example.test")]), "loc-app", "GET", path)


def test_custom_cookie(gws):
    gw = gws["locations"]
    cookie = f"theme=dark; jwt={loc_token()}; lang=en"
    echo = assert_consumer(gw.get("/b/l", headers=[("Host", "gw.example.test"), ("Cookie", cookie)]),
                           "loc-app", "GET", "/b/l")
    assert echo["headers"]["cookie"] == cookie, echo


@pytest.mark.parametrize(
    "where",
    ["authorization-bearer", "access_token-param", "header-without-prefix", "header-other-prefix", "cookie-other-name"],
)
def test_configured_locations_replace_defaults(gws, echo, where):
    """With from_* configured, the loc-app token is looked for only there."""
    gw = gws["locations"]
    token = loc_token()
    path, headers = "/b/l", [("Host", "gw.example.test")]
    if where == "authorization-bearer":
        headers.append(("Authorization", f"Bearer {token}"))
    elif where == "access_token-param":
        path = f"/b/l?access_token={token}"
    elif where == "header-without-prefix":
        headers.append(("X-Api-Token", token))
    elif where == "header-other-prefix":
        headers.append(("X-Api-Token", f"Bearer {token}"))
    else:
        headers.append(("Cookie", f"token={token}"))
    n = echo.count()
    # The other consumer (defaults) may see a token in Authorization / access_token.
    assert_unauthorized(gw.get(path, headers=headers), path, token_present=None)
    assert echo.count() == n


def test_keep_token_false_removes_authorization(gws):
    gw = gws["locations"]
    echo = assert_consumer(gw.get("/b/nk", headers=bearer_headers(nokeep_token(), ("X-Other", "1"))),
                           "nokeep-app", "GET", "/b/nk")
    assert "authorization" not in echo["headers"], echo
    assert echo["headers"].get("x-other") == "1", echo


def test_cookies_only_when_configured(gws, echo):
    gw = gws["locations"]
    n = echo.count()
    r = gw.get("/b/nk", headers=[("Host", "gw.example.test"), ("Cookie", f"jwt={nokeep_token()}")])
    # nokeep-app reads no cookie; loc-app reads this one and refuses the token.
    assert_unauthorized(r, "/b/nk", token_present=True)
    assert echo.count() == n
    r = gw.get(f"/b/nk?access_token={nokeep_token()}", headers=[("Host", "gw.example.test")])
    assert_consumer(r, "nokeep-app", "GET")


# ---------------------------------------------------------------------------
# Key rotation at the IdP; IdP down when Envoy starts
# ---------------------------------------------------------------------------


def single_remote_config(idp: Idp, name: str, **extra) -> dict:
    return {"consumers": [{"name": name, **key_source(idp, "jwks_uri"),
                           "audiences": [RS256_RESOURCE, ES256_RESOURCE], **extra}], "global_auth": True}


@pytest.fixture
def own_idp():
    started: list[Idp] = []

    def _make(**kw) -> Idp:
        i = Idp(**kw)
        started.append(i)
        return i

    yield _make
    for i in started:
        i.stop()


@pytest.fixture
def own_gateway(echo, wasm):
    started: list[harness.Envoy] = []

    def _start(config, clusters, name) -> harness.Envoy:
        gw = gateway(config, echo.port, clusters, name=f"test_jwks-{name}", wasm=wasm)
        started.append(gw)
        return gw.start()

    yield _start
    for gw in started:
        gw.stop()


def test_key_rotation_picked_up_without_restarting_envoy(own_idp, own_gateway):
    idp = own_idp(name="rotation").start()
    gw = own_gateway(single_remote_config(idp, "rot-app", jwks_refresh_seconds=600), {IDP_CLUSTER: idp.port}, "rotation")
    old = idp.client_credentials_token(APP1, RS256_RESOURCE)
    r, _ = poll(lambda: gw.get("/b/rot", headers=bearer_headers(old)), lambda r: r.status == 200, KEY_WAIT)
    assert_consumer(r, "rot-app", "GET", "/b/rot")

    old_kids = set(idp.keys)
    idp.restart(make_keyset(tag="rotated")[0])
    assert old_kids.isdisjoint(idp.keys)
    new_rs = idp.client_credentials_token(APP1, RS256_RESOURCE)
    new_es = idp.client_credentials_token(APP2, ES256_RESOURCE)
    assert jf.decode(new_rs)[0]["kid"] not in old_kids

    # Unknown kid: refused at first (no restart, no synchronous fetch) ...
    assert_unauthorized(gw.get("/b/rot", headers=bearer_headers(new_rs)), "/b/rot")

    # ... then accepted once the rate-limited refetch brought the new key set.
    def each(resp):
        assert resp.status in (200, 401), resp

    t0 = time.monotonic()
    r, history = poll(lambda: gw.get("/b/rot", headers=bearer_headers(new_rs)), lambda r: r.status == 200,
                      ROTATION_WAIT, interval=0.5, each=each)
    assert r.status == 200, (f"new kid still refused after {time.monotonic() - t0:.1f}s", r, idp.log_tail(15))
    assert_consumer(r, "rot-app", "GET", "/b/rot")
    assert_consumer(gw.get("/b/rot", headers=bearer_headers(new_es)), "rot-app", "GET", "/b/rot")
    assert gw.running()


def test_idp_down_at_start_gives_503_then_recovers(own_idp, own_gateway, echo):
    idp = own_idp(name="late")  # port and keys chosen, not started
    gw = own_gateway(single_remote_config(idp, "late-app"), {IDP_CLUSTER: idp.port}, "late")
    token = idp.forge("RS256")  # signed with the key the IdP will publish
    n = echo.count()
    for path in ("/b/late", "/a/late", "/svc/late"):
        assert_unavailable(gw.get(path, headers=bearer_headers(token)))
    assert echo.count() == n

    idp.start()

    def each(resp):
        if resp.status == 503:
            assert_unavailable(resp)
        else:
            assert resp.status == 200, resp

    t0 = time.monotonic()
    r, _ = poll(lambda: gw.get("/b/late", headers=bearer_headers(token)), lambda r: r.status == 200,
                LATE_START_WAIT, interval=0.5, each=each)
    assert r.status == 200, (f"still failing {time.monotonic() - t0:.1f}s after the IdP started", r, idp.log_tail(15))
    assert_consumer(r, "late-app", "GET", "/b/late")
    real = idp.client_credentials_token(APP2, ES256_RESOURCE)
    assert_consumer(gw.get("/b/late", headers=bearer_headers(real)), "late-app", "GET", "/b/late")


def test_candidate_consumer_without_keys_gives_503_not_401(idp, own_gateway, echo):
    """Two consumers share the issuer; one has its keys, the other's key set
    was never fetched (its cluster leads nowhere). A token the first refuses
    (audience) but the second might accept is not judged invalid: 503."""
    dead_port = harness.free_port()  # nothing listens there
    config = {
        "consumers": [
            {"name": "rs-only", "issuer": idp.issuer, "jwks_uri": idp.url("/jwks"), "cluster": IDP_CLUSTER,
             "audiences": [RS256_RESOURCE]},
            {"name": "es-unfetched", "issuer": idp.issuer, "jwks_uri": idp.url("/jwks"), "cluster": "idp-dead",
             "audiences": [ES256_RESOURCE]},
        ],
        "global_auth": True,
    }
    gw = own_gateway(config, {IDP_CLUSTER: idp.port, "idp-dead": dead_port}, "partial")
    rs = idp.client_credentials_token(APP1, RS256_RESOURCE)
    r, _ = poll(lambda: gw.get("/b/p", headers=bearer_headers(rs)), lambda r: r.status == 200, KEY_WAIT)
    assert_consumer(r, "rs-only", "GET", "/b/p")
    es = idp.client_credentials_token(APP1, ES256_RESOURCE)
    n = echo.count()
    assert_unavailable(gw.get("/b/p", headers=bearer_headers(es)))
    assert echo.count() == n
