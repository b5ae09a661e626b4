"""Route-level rules: _match_route_, _match_route_prefix_, _disable_, first match wins."""

from __future__ import annotations

import pytest

from common import (
    C1,
    C2,
    C3,
    REALM_HOST,
    assert_forbidden,
    assert_passed,
    assert_token_response,
    assert_unauthorized,
    consumers,
    cred_params,
    issue_token,
    probe,
    query,
    upstream_saw,
    with_probe,
)

CONFIG = {
    "consumers": consumers(),
    "global_auth": True,
    "_rules_": [
        {"_match_route_": ["route-a"], "allow": ["consumer1"]},
        # route-svc through a route-name prefix
        {"_match_route_prefix_": ["route-s"], "allow": ["consumer2"]},
        {"_match_route_": ["route-b"], "_disable_": True},
        # never reached for route-a / route-b: the first matching rule wins
        {"_match_route_prefix_": ["route-a", "route-b"], "allow": ["consumer3"]},
    ],
}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


@pytest.fixture(scope="module")
def tokens(gw):
    return {c.name: issue_token(gw, c) for c in (C1, C2, C3)}


def auth(tokens, c):
    return {"Host": REALM_HOST, "Authorization": f"Bearer {tokens[c.name]}"}


# (path, consumer, expected status) -- None consumer: no token
CASES = [
    ("/a/orders", C1, 200),
    ("/a/orders", C2, 403),
    ("/a/orders", C3, 403),  # the later prefix rule allowing consumer3 is not consulted
    ("/svc/orders", C2, 200),
    ("/svc/orders", C1, 403),
    ("/svc/orders", C3, 403),
    ("/other/orders", C1, 200),  # no rule: global_auth true, any consumer
    ("/other/orders", C2, 200),
    ("/other/orders", C3, 200),
]


# the consumer each path allows (a positive control for its refusals)
ALLOWED = {"/a/orders": C1, "/svc/orders": C2, "/other/orders": C1}
assert all((p, ALLOWED[p], 200) in CASES for p in ALLOWED)


@pytest.mark.parametrize("path,consumer,status", CASES, ids=[f"{p}-{c.name}-{s}" for p, c, s in CASES])
def test_allow_lists(gw, tokens, echo, path, consumer, status):
    p = probe()
    r = gw.get(path, headers=with_probe(auth(tokens, consumer), p))
    if status == 200:
        assert_passed(r, consumer, "GET", path)
        assert len(upstream_saw(echo, p)) == 1
    else:
        assert_forbidden(r)
        assert upstream_saw(echo, p) == [], "a 403 must not reach the upstream"
        # Positive control: the path's allowed consumer passes.
        allowed = ALLOWED[path]
        p = probe()
        assert_passed(gw.get(path, headers=with_probe(auth(tokens, allowed), p)), allowed, "GET", path)
        assert len(upstream_saw(echo, p)) == 1


@pytest.mark.parametrize("path", ["/a/orders", "/svc/orders", "/other/orders"])
def test_rules_with_allow_still_need_a_token(gw, tokens, path):
    assert_unauthorized(gw.get(path, headers={"Host": REALM_HOST}), path, token_present=False)
    r = gw.get(path, headers={"Host": REALM_HOST, "Authorization": "Bearer x.y.z"})
    assert_unauthorized(r, path, token_present=True, description="malformed token")
    assert_passed(gw.get(path, headers=auth(tokens, ALLOWED[path])), ALLOWED[path], "GET", path)


def test_forbidden_even_with_spoofed_consumer_header(gw, tokens):
    r = gw.get("/a/orders", headers={**auth(tokens, C2), "X-Mse-Consumer": "consumer1"})
    assert_forbidden(r)
    assert_passed(gw.get("/a/orders", headers={**auth(tokens, C1), "X-Mse-Consumer": "consumer2"}), C1, "GET",
                  "/a/orders")


def test_disabled_route_passes_without_token(gw):
    r = gw.get("/b/public?x=1")
    assert_passed(r, None, "GET", "/b/public?x=1")
    r = gw.request("POST", "/b/public", headers={"Content-Type": "text/plain"}, body="hello")
    assert assert_passed(r, None, "POST", "/b/public")["body"] == "hello"


def test_disabled_route_ignores_invalid_token(gw):
    r = gw.get("/b/public", headers={"Authorization": "Bearer garbage"})
    echo = assert_passed(r, None, "GET", "/b/public")
    assert echo["headers"]["authorization"] == "Bearer garbage"


@pytest.mark.parametrize("spoof", [[("X-Mse-Consumer", "consumer1")], [("X-Mse-Consumer", "a"), ("X-Mse-Consumer", "b")]],
                         ids=["once", "twice"])
def test_disabled_route_removes_spoofed_consumer_header(gw, spoof):
    r = gw.get("/b/public", headers=spoof)
    assert_passed(r, None, "GET", "/b/public")


def test_token_endpoint_is_off_on_disabled_route(gw):
    path = query("/b/oauth2/token", cred_params(C1))
    r = gw.get(path)
    # Forwarded to the upstream like any other request on the disabled route.
    assert_passed(r, None, "GET", path)


def test_token_endpoint_works_on_rule_routes(gw):
    assert_token_response(gw.get(query("/a/oauth2/token", cred_params(C1))), C1)
    assert_token_response(gw.get(query("/svc/oauth2/token", cred_params(C2))), C2)
