"""Top-level settings and rule-local overrides (issuer, auth_path, token_ttl,
consumers, global_credentials, auth_header_name, keep_token)."""

from __future__ import annotations

import pytest

from common import (
    C1,
    C2,
    REALM_HOST,
    Consumer,
    assert_forbidden,
    assert_passed,
    assert_token_error,
    assert_unauthorized,
    consumers,
    cred_params,
    forged,
    issue_token,
    query,
)

PARTNER = Consumer("partner", "partner-client-9a8b7c6d5e4f3a2b1c0d", "partner-secret-Zx8Cv7Bn6Mm5Ll4Kk3Jj2Hh")

CONFIG = {
    "consumers": consumers(C1, C2),
    "issuer": "Edge-Gateway",
    "auth_path": "get-token",  # leading "/" is added
    "token_ttl": 3600,
    # Unmatched routes (route-default) use the top-level settings.
    "global_auth": True,
    "_rules_": [
        {"_match_route_": ["route-a"], "issuer": "Route-A-Issuer", "token_ttl": 60, "auth_path": "/login"},
        {"_match_route_": ["route-b"], "consumers": [PARTNER.config()]},
        {
            "_match_route_": ["route-svc"],
            "global_credentials": False,
            "auth_header_name": "X-Svc-Token",
            "keep_token": False,
        },
    ],
}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


def bearer_h(token, header="Authorization"):
    return {"Host": REALM_HOST, header: f"Bearer {token}"}


# --- top level ---------------------------------------------------------------


def test_top_level_issuer_ttl_and_auth_path(gw):
    token = issue_token(gw, C1, path="/get-token", issuer="Edge-Gateway", ttl=3600)
    assert_passed(gw.get("/x", headers=bearer_h(token)), C1, "GET", "/x")


def test_default_auth_path_is_replaced(gw):
    r = gw.get(query("/oauth2/token", cred_params(C1)), headers={"Host": REALM_HOST})
    assert_unauthorized(r, "/oauth2/token", token_present=False)


def test_top_level_issuer_is_verified(gw):
    assert_passed(gw.get("/x", headers=bearer_h(forged(C2, iss="Edge-Gateway"))), C2, "GET", "/x")
    r = gw.get("/x", headers=bearer_h(forged(C2)))  # iss Higress-Gateway
    assert_unauthorized(r, "/x", token_present=True)


# --- route-a: issuer, token_ttl, auth_path ------------------------------------


def test_rule_issuer_ttl_and_auth_path(gw):
    token = issue_token(gw, C1, path="/a/login", issuer="Route-A-Issuer", ttl=60)
    assert_passed(gw.get("/a/x", headers=bearer_h(token)), C1, "GET", "/a/x")
    # the rule's issuer is not the global one
    assert_unauthorized(gw.get("/x", headers=bearer_h(token)), "/x", token_present=True)


def test_global_token_rejected_on_rule_with_own_issuer(gw):
    token = issue_token(gw, C1, path="/get-token", issuer="Edge-Gateway", ttl=3600)
    assert_unauthorized(gw.get("/a/x", headers=bearer_h(token)), "/a/x", token_present=True)


def test_rule_auth_path_replaces_global_one(gw):
    r = gw.get(query("/a/get-token", cred_params(C1)), headers={"Host": REALM_HOST})
    assert_unauthorized(r, "/a/get-token", token_present=False)
    # and /login elsewhere is not an endpoint either
    r = gw.get(query("/b/login", cred_params(PARTNER)), headers={"Host": REALM_HOST})
    assert_unauthorized(r, "/b/login", token_present=False)


# --- route-b: consumers replaced, the rest inherited ---------------------------


def test_rule_consumers_issue_and_verify(gw):
    token = issue_token(gw, PARTNER, path="/b/get-token", issuer="Edge-Gateway", ttl=3600)
    assert_passed(gw.get("/b/orders", headers=bearer_h(token)), PARTNER, "GET", "/b/orders")
    # unknown to the global consumers
    assert_unauthorized(gw.get("/x", headers=bearer_h(token)), "/x", token_present=True)


def test_rule_consumers_replace_global_ones(gw):
    r = gw.get(query("/b/get-token", cred_params(C1)))
    assert_token_error(r, 400, "invalid_client", "invalid client_id or client_secret")
    global_token = issue_token(gw, C1, path="/get-token", issuer="Edge-Gateway", ttl=3600)
    assert_unauthorized(gw.get("/b/x", headers=bearer_h(global_token)), "/b/x", token_present=True)
    # partner cannot use the global token endpoint
    r = gw.get(query("/get-token", cred_params(PARTNER)))
    assert_token_error(r, 400, "invalid_client", "invalid client_id or client_secret")


# --- route-svc: global_credentials, auth_header_name, keep_token --------------


def test_rule_route_scoped_credentials_and_header(gw):
    token = issue_token(gw, C2, path="/svc/get-token", issuer="Edge-Gateway", ttl=3600, aud="route-svc")
    r = gw.get("/svc/x", headers={"X-Svc-Token": f"Bearer {token}", "Authorization": "Basic dXNlcjpwYXNz"})
    echo = assert_passed(r, C2, "GET", "/svc/x")
    assert "x-svc-token" not in echo["headers"], echo
    assert echo["headers"]["authorization"] == "Basic dXNlcjpwYXNz", echo


def test_rule_header_override_ignores_authorization(gw):
    token = issue_token(gw, C2, path="/svc/get-token", issuer="Edge-Gateway", ttl=3600, aud="route-svc")
    assert_unauthorized(gw.get("/svc/x", headers=bearer_h(token)), "/svc/x", token_present=False)


def test_rule_route_scoped_credentials_reject_global_audience(gw):
    global_token = issue_token(gw, C2, path="/get-token", issuer="Edge-Gateway", ttl=3600)  # aud "default"
    assert_forbidden(gw.get("/svc/x", headers={"X-Svc-Token": f"Bearer {global_token}"}))
    # the route-svc token works on route-svc only, not on routes with global credentials
    token = issue_token(gw, C2, path="/svc/get-token", issuer="Edge-Gateway", ttl=3600, aud="route-svc")
    assert_passed(gw.get("/svc/x", headers={"X-Svc-Token": f"Bearer {token}"}), C2, "GET", "/svc/x")
    assert_forbidden(gw.get("/x", headers=bearer_h(token)))
