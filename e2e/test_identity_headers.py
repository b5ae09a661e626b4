"""Identity headers cannot be forged in another spelling.

Envoy passes header names with underscores by default
(``headers_with_underscores_action: ALLOW``, which the harness keeps), and
``x_mse_consumer`` is a different header from ``x-mse-consumer`` to Envoy;
but upstreams that fold ``_`` into ``-`` (CGI, WSGI, many frameworks) read
both as one. So the plugin must remove every spelling (any case, ``_`` or
``-`` in any position) of every header it may set, on every path: an
authenticated forward, an anonymous forward, a disabled rule, single
sign-on's open paths. The positive control shows the forged spellings do
reach the upstream through an Envoy without the plugin.
"""

from __future__ import annotations

import json
import time

import pytest

import harness
import jose_forge as jf
from common import C1, assert_passed, consumers, issue_token

JWT_SECRET = "identity-headers-e2e-hmac-key-0123456789abcdef"
JWT_ISSUER = "https://idp.identity-headers.test"
JWKS = {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": jf.b64url(JWT_SECRET.encode())}]}
JWT_CONSUMER = {
    "name": "jwt-user",
    "issuer": JWT_ISSUER,
    "jwks": JWKS,
    "claims_to_headers": [{"claim": "email", "header": "x-user-email"}],
}
SSO_HEADERS = ["x-userinfo", "x-forwarded-access-token", "x-sso-email"]
IDENTITY = ["x-mse-consumer", "x-user-email", *SSO_HEADERS]


def spellings(header: str) -> set[str]:
    """Forged spellings of ``header`` that are other names to Envoy."""
    parts = header.split("-")
    title = [p.capitalize() for p in parts]
    return {
        "_".join(parts),                              # x_mse_consumer
        "_".join(parts).upper(),                      # X_MSE_CONSUMER
        "-".join(title[:-1]) + "_" + title[-1],       # X-Mse_Consumer
        parts[0] + "_" + "-".join(parts[1:]),         # x_mse-consumer
    }


def forged_headers() -> list[tuple[str, str]]:
    out = []
    for header in IDENTITY:
        out.append((header, "mallory"))
        out += [(s, "mallory") for s in sorted(spellings(header))]
    return out


def fold(name: str) -> str:
    return name.lower().replace("_", "-")


def identity_seen(echo: dict) -> dict[str, list[tuple[str, object]]]:
    """The upstream's headers that read as identity headers, by folded name."""
    out: dict[str, list[tuple[str, object]]] = {}
    for name, value in echo["headers"].items():
        if fold(name) in IDENTITY:
            out.setdefault(fold(name), []).append((name, value))
    return out


def sso_config() -> dict:
    idp_port = harness.free_port()
    return {
        "issuer": f"http://127.0.0.1:{idp_port}",
        "client_id": "edge-auth-e2e-app",
        "client_secret": "edge-auth-e2e-app-secret-0123456789abcdef",
        "cluster": "idp",
        "cookie_secret": "edge-auth-e2e-cookie-secret-I-0123456789abcdef01",
        "cookie_secure": False,
        "set_access_token_header": True,
        "set_userinfo_header": True,
        "claims_to_headers": [{"claim": "email", "header": "x-sso-email"}],
        "match_type": "whitelist",
        "match_list": [{"match_rule_domain": "", "match_rule_path": "/svc/public", "match_rule_type": "prefix"}],
    }


# global_auth true; route-b: a disabled rule; route-svc: single sign-on with
# an open (whitelisted) prefix. The IdP is never asked.
CONFIG = {
    "consumers": [*consumers(C1), JWT_CONSUMER],
    "global_auth": True,
    "_rules_": [
        {"_match_route_": ["route-b"], "_disable_": True},
        {"_match_route_": ["route-svc"], "oidc": sso_config()},
    ],
}
# The same identity headers; route-a open (anonymous forward), route-b checked.
OPEN_CONFIG = {
    "consumers": [*consumers(C1), JWT_CONSUMER],
    "global_auth": False,
    "_rules_": [
        {"_match_route_": ["route-b"], "allow": ["consumer1"]},
        {"_match_route_": ["route-svc"], "oidc": sso_config()},
    ],
}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


@pytest.fixture(scope="module")
def gw_open(start_gateway):
    return start_gateway(OPEN_CONFIG, name="open")


def jwt_token(email: str = "alice@example.test") -> str:
    now = int(time.time())
    claims = {"iss": JWT_ISSUER, "sub": "alice", "email": email, "iat": now, "exp": now + 600}
    return jf.hs_sign(claims, JWT_SECRET, header={"alg": "HS256", "typ": "JWT", "kid": "k1"})


def test_positive_control_forged_spellings_reach_an_upstream_without_the_plugin(echo):
    plain = harness.Envoy.with_filters([harness.router_filter()], echo.port, name="test_identity_headers-plain")
    with plain:
        r = plain.get("/a/x", headers=forged_headers())
    assert r.status == 200, r
    seen = identity_seen(r.json())
    for header in IDENTITY:
        names = {name for name, _ in seen.get(header, [])}
        # Envoy lower-cases names; every `_` spelling arrived as its own header.
        assert names == {header} | {s.lower() for s in spellings(header)}, seen


def test_authenticated_forward_keeps_only_the_real_consumer(gw):
    token = issue_token(gw, C1)
    r = gw.get("/a/x", headers=[("Authorization", f"Bearer {token}"), *forged_headers()])
    echo = assert_passed(r, C1, "GET", "/a/x")
    assert identity_seen(echo) == {"x-mse-consumer": [("x-mse-consumer", "consumer1")]}, echo["headers"]


def test_claim_headers_keep_only_the_real_value(gw):
    r = gw.get("/a/x", headers=[("Authorization", f"Bearer {jwt_token()}"), *forged_headers()])
    assert r.status == 200, r
    seen = identity_seen(r.json())
    assert seen == {
        "x-mse-consumer": [("x-mse-consumer", "jwt-user")],
        "x-user-email": [("x-user-email", "alice@example.test")],
    }, r.json()["headers"]


def test_disabled_rule_forwards_no_identity(gw):
    r = gw.get("/b/x", headers=forged_headers())
    echo = assert_passed(r, None, "GET", "/b/x")
    assert identity_seen(echo) == {}, echo["headers"]


def test_sso_open_path_forwards_no_identity(gw):
    r = gw.get("/svc/public/page", headers=forged_headers())
    echo = assert_passed(r, None, "GET", "/svc/public/page")
    assert identity_seen(echo) == {}, echo["headers"]


def test_anonymous_forward_on_an_open_route_forwards_no_identity(gw_open):
    r = gw_open.get("/a/x", headers=forged_headers())
    echo = assert_passed(r, None, "GET", "/a/x")
    assert identity_seen(echo) == {}, echo["headers"]
    # Same gateway, a checked route: the real consumer only.
    token = issue_token(gw_open, C1, path="/b/oauth2/token")  # served where a rule applies
    r = gw_open.get("/b/x", headers=[("Authorization", f"Bearer {token}"), *forged_headers()])
    echo = assert_passed(r, C1, "GET", "/b/x")
    assert identity_seen(echo) == {"x-mse-consumer": [("x-mse-consumer", "consumer1")]}, echo["headers"]


def test_token_request_is_not_affected(gw):
    """Forged identity headers on the token endpoint change nothing there."""
    r = gw.get(f"/oauth2/token?grant_type=client_credentials&client_id={C1.client_id}"
               f"&client_secret={C1.client_secret}", headers=forged_headers())
    assert r.status == 200, r
    assert json.loads(r.body)["token_type"] == "bearer"
