"""Domain-level rules (_match_domain_): wildcard subdomain, exact, prefix."""

from __future__ import annotations

import pytest

from common import (
    C1,
    C2,
    C3,
    assert_forbidden,
    assert_passed,
    assert_unauthorized,
    consumers,
    issue_token,
)

CONFIG = {
    "consumers": consumers(),
    "global_auth": False,
    "_rules_": [
        {"_match_domain_": ["*.example.com"], "allow": ["consumer1"]},
        {"_match_domain_": ["example.com"], "allow": ["consumer2"]},
        {"_match_domain_": ["api*"], "allow": ["consumer3"]},
    ],
}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


@pytest.fixture(scope="module")
def tokens(gw):
    # The token endpoint is served where a rule applies (global_auth is false).
    return {c.name: issue_token(gw, c, headers={"Host": "api.example.com"}) for c in (C1, C2, C3)}


# host -> the consumer its rule allows (None: no rule matches)
HOSTS = {
    "foo.example.com": C1,
    "a.b.example.com": C1,
    "FOO.Example.COM": C1,
    "foo.example.com:8443": C1,
    "apix.example.com": C1,  # rule 1 matches before the api* prefix rule
    "example.com": C2,
    "EXAMPLE.com": C2,
    "example.com:8080": C2,
    "api.other.org": C3,
    "API-gw.test": C3,
    "api": C3,
    "api.other.org:9000": C3,
    "other.org": None,
    "xexample.com": None,
    "example.com.evil.org": None,
    "myapi.example.org": None,
}


@pytest.mark.parametrize("host", sorted(HOSTS))
@pytest.mark.parametrize("consumer", [C1, C2, C3], ids=lambda c: c.name)
def test_domain_allow_lists(gw, tokens, host, consumer):
    r = gw.get("/a/x", headers={"Host": host, "Authorization": f"Bearer {tokens[consumer.name]}"})
    allowed = HOSTS[host]
    if allowed is None:
        # global_auth false and no rule: passes through unchecked.
        assert_passed(r, None, "GET", "/a/x")
    elif allowed == consumer:
        assert_passed(r, consumer, "GET", "/a/x")
    else:
        assert_forbidden(r)
        # Positive control: the host's allowed consumer passes.
        r = gw.get("/a/x", headers={"Host": host, "Authorization": f"Bearer {tokens[allowed.name]}"})
        assert_passed(r, allowed, "GET", "/a/x")


@pytest.mark.parametrize("host", [h for h in sorted(HOSTS) if HOSTS[h] is not None and ":" not in h])
def test_domain_rules_need_a_token(gw, tokens, host):
    assert_unauthorized(gw.get("/a/x?q=1", headers={"Host": host}), "/a/x", host=host, token_present=False)
    r = gw.get("/a/x", headers={"Host": host, "Authorization": "Bearer not-a-jwt"})
    assert_unauthorized(r, "/a/x", host=host, token_present=True, description="malformed token")
    # Positive control: the host's allowed consumer passes.
    allowed = HOSTS[host]
    r = gw.get("/a/x?q=1", headers={"Host": host, "Authorization": f"Bearer {tokens[allowed.name]}"})
    assert_passed(r, allowed, "GET", "/a/x?q=1")


@pytest.mark.parametrize("host", [h for h in sorted(HOSTS) if HOSTS[h] is None])
def test_unmatched_domain_passes_without_token(gw, host):
    assert_passed(gw.get("/b/y", headers={"Host": host}), None, "GET", "/b/y")
    # not checked at all: an invalid token does not matter either
    r = gw.get("/b/y", headers={"Host": host, "Authorization": "Bearer garbage"})
    assert_passed(r, None, "GET", "/b/y")


def test_unmatched_domain_removes_spoofed_consumer_header(gw):
    r = gw.get("/b/y", headers=[("Host", "other.org"), ("X-Mse-Consumer", "consumer1")])
    assert_passed(r, None, "GET", "/b/y")
