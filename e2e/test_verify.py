"""Token verification on ordinary requests (global configuration, no rules)."""

from __future__ import annotations

import json
import time

import pytest

import jose_forge as jf
from common import (
    C1,
    C2,
    C3,
    REALM_HOST,
    assert_passed,
    assert_unauthorized,
    consumers,
    forged,
    issue_token,
    probe,
    upstream_saw,
)

CONFIG = {"consumers": consumers()}


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


@pytest.fixture(scope="module")
def tokens(gw):
    return {c.name: issue_token(gw, c) for c in (C1, C2, C3)}


# ---------------------------------------------------------------------------
# Accepted
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/a/x", "/b/y?z=1", "/svc/orders/7", "/", "/other/thing"])
@pytest.mark.parametrize("consumer", [C1, C2, C3], ids=lambda c: c.name)
def test_valid_token_passes_with_consumer_header(gw, tokens, consumer, path):
    token = tokens[consumer.name]
    r = gw.get(path, headers={"Authorization": f"Bearer {token}"})
    echo = assert_passed(r, consumer, "GET", path)
    # keep_token defaults to true: the upstream sees the credential unchanged.
    assert echo["headers"]["authorization"] == f"Bearer {token}", echo


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_bearer_scheme_is_case_insensitive(gw, tokens, scheme):
    r = gw.get("/a/case", headers={"Authorization": f"{scheme} {tokens['consumer1']}"})
    assert_passed(r, C1, "GET", "/a/case")


def test_request_body_and_method_forwarded(gw, tokens):
    body = json.dumps({"order": 42, "note": "héllo"})
    r = gw.request("POST", "/a/orders", headers={"Authorization": f"Bearer {tokens['consumer2']}",
                                                  "Content-Type": "application/json"}, body=body)
    echo = assert_passed(r, C2, "POST", "/a/orders")
    assert echo["body"] == body, echo
    r = gw.request("DELETE", "/b/orders/42", headers={"Authorization": f"Bearer {tokens['consumer2']}"})
    assert_passed(r, C2, "DELETE", "/b/orders/42")


@pytest.mark.parametrize("consumer", [C1, C2, C3], ids=lambda c: c.name)
def test_mse_format_token_verifies(gw, consumer):
    token = jf.mse_token(consumer.name, consumer.client_id, consumer.client_secret)
    r = gw.get("/a/mse", headers={"Authorization": f"Bearer {token}"})
    assert_passed(r, consumer, "GET", "/a/mse")


def test_iat_within_clock_skew_is_accepted(gw):
    now = int(time.time())
    token = forged(C1, iat=now + 20, exp=now + 7220)  # skew defaults to 60 s
    assert_passed(gw.get("/a/skew", headers={"Authorization": f"Bearer {token}"}), C1, "GET", "/a/skew")


@pytest.mark.parametrize(
    "spoof",
    [
        [("X-Mse-Consumer", "admin")],
        [("x-mse-consumer", "consumer2")],
        [("X-Mse-Consumer", "admin"), ("X-Mse-Consumer", "root")],
    ],
    ids=["one", "other-consumer", "twice"],
)
def test_spoofed_consumer_header_is_replaced(gw, tokens, spoof):
    r = gw.get("/a/spoof", headers=[("Authorization", f"Bearer {tokens['consumer1']}")] + spoof)
    assert_passed(r, C1, "GET", "/a/spoof")


def test_spoofed_consumer_header_without_token_is_rejected(gw, tokens, echo):
    p = probe()
    r = gw.get("/a/spoof", headers=[("Host", REALM_HOST), ("X-Mse-Consumer", "consumer1"), p])
    assert_unauthorized(r, "/a/spoof", token_present=False)
    assert upstream_saw(echo, p) == []
    assert_accepted(gw, echo, tokens["consumer1"], "/a/spoof")


# ---------------------------------------------------------------------------
# Rejected: 401
# ---------------------------------------------------------------------------


def _tampered_payload(token: str) -> str:
    h, p, s = token.split(".")
    claims = json.loads(jf.b64url_decode(p, strict=True))
    claims["exp"] += 3600
    return f"{h}.{jf.b64url(jf.compact(claims))}.{s}"


def _swapped_payload(token: str) -> str:
    h, p, s = token.split(".")
    claims = json.loads(jf.b64url_decode(p, strict=True))
    claims["sub"], claims["client_id"] = C2.name, C2.client_id
    return f"{h}.{jf.b64url(jf.compact(claims))}.{s}"


def _tampered_signature(token: str) -> str:
    h, p, s = token.split(".")
    # Change the first character: always changes the first signature byte
    # (the last character may only carry padding bits).
    return f"{h}.{p}.{('B' if s[0] != 'B' else 'C') + s[1:]}"


def _none_header(token: str, keep_signature: bool) -> str:
    h, p, s = token.split(".")
    nh = jf.b64url(jf.compact({"alg": "none", "typ": jf.AT_JWT_TYP}))
    return f"{nh}.{p}.{s if keep_signature else ''}"


TYP = jf.AT_JWT_TYP

# name -> function(tokens) -> Authorization header value (built lazily, at test time)
BAD = {
    "garbage": lambda t: "Bearer garbage",
    "three-garbage-segments": lambda t: "Bearer a.b.c",
    "four-segments": lambda t: f"Bearer {t['consumer1']}.x",
    "two-segments": lambda t: "Bearer " + ".".join(t["consumer1"].split(".")[:2]),
    "tampered-payload-exp": lambda t: "Bearer " + _tampered_payload(t["consumer1"]),
    "tampered-payload-consumer": lambda t: "Bearer " + _swapped_payload(t["consumer1"]),
    "tampered-signature": lambda t: "Bearer " + _tampered_signature(t["consumer1"]),
    "alg-none-unsigned": lambda t: "Bearer " + _none_header(t["consumer1"], False),
    "alg-none-with-signature": lambda t: "Bearer " + _none_header(t["consumer1"], True),
    "alg-none-hmac-over-none-header": lambda t: "Bearer " + forged(C1, header={"alg": "none", "typ": TYP}),
    "alg-HS512": lambda t: "Bearer " + forged(C1, header={"alg": "HS512", "typ": TYP}, alg="HS512"),
    "alg-RS256-header": lambda t: "Bearer " + forged(C1, header={"alg": "RS256", "typ": TYP}),
    "typ-JWT": lambda t: "Bearer " + forged(C1, header={"alg": "HS256", "typ": "JWT"}),
    "typ-missing": lambda t: "Bearer " + forged(C1, header={"alg": "HS256"}),
    "wrong-iss": lambda t: "Bearer " + forged(C1, iss="Other-Gateway"),
    "sub-other-consumer": lambda t: "Bearer " + forged(C1, sub=C2.name),
    "unknown-client-id": lambda t: "Bearer " + forged(C1, client_id="no-such-client"),
    "other-consumers-secret": lambda t: "Bearer " + forged(C1, secret=C2.client_secret),
    "other-consumers-id-own-claims": lambda t: "Bearer " + forged(C1, client_id=C2.client_id, secret=C2.client_secret),
    "expired": lambda t: "Bearer " + forged(C1, iat=int(time.time()) - 7300, exp=int(time.time()) - 100),
    "iat-in-future": lambda t: "Bearer " + forged(C1, iat=int(time.time()) + 600, exp=int(time.time()) + 7800),
    "nbf-in-future": lambda t: "Bearer " + forged(C1, nbf=int(time.time()) + 600),
}

# name -> the error_description the 401 must give (the reason the case is about)
REASON = {
    "garbage": "malformed token",
    "three-garbage-segments": "malformed token",
    "four-segments": "malformed token",
    "two-segments": "malformed token",
    "tampered-payload-exp": "signature verification failed",
    "tampered-payload-consumer": "signature verification failed",
    "tampered-signature": "signature verification failed",
    "alg-none-unsigned": "unsupported algorithm",
    "alg-none-with-signature": "unsupported algorithm",
    "alg-none-hmac-over-none-header": "unsupported algorithm",
    "alg-HS512": "unsupported algorithm",
    "alg-RS256-header": "unsupported algorithm",
    "typ-JWT": "unexpected token type",
    "typ-missing": "unexpected token type",
    "wrong-iss": "issuer not accepted",
    "sub-other-consumer": "subject does not match client",
    "unknown-client-id": "signature verification failed",
    "other-consumers-secret": "signature verification failed",
    "other-consumers-id-own-claims": "subject does not match client",
    "expired": "token expired",
    "iat-in-future": "token issued in the future",
    "nbf-in-future": "token not yet valid",
}
assert set(REASON) == set(BAD)


def assert_accepted(gw, echo, token: str, path: str, consumer=C1) -> None:
    """Positive control: the same gateway passes a valid token on the same
    path to the upstream (seen there once)."""
    p = probe()
    r = gw.get(path, headers=[("Host", REALM_HOST), ("Authorization", f"Bearer {token}"), p])
    assert_passed(r, consumer, "GET", path)
    assert len(upstream_saw(echo, p)) == 1


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_token_401(gw, tokens, echo, case):
    value = BAD[case](tokens)
    p = probe()
    r = gw.get("/a/resource?x=1&y=2", headers=[("Host", REALM_HOST), ("Authorization", value), p])
    assert_unauthorized(r, "/a/resource", token_present=True, description=REASON[case])
    assert upstream_saw(echo, p) == [], "a rejected request must not reach the upstream"
    assert_accepted(gw, echo, tokens["consumer1"], "/a/resource?x=1&y=2")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + "Y29uc3VtZXIxOnNlY3JldA=="},
        {"Authorization": "Token abc"},
        {"X-Token": "Bearer whatever"},
    ],
    ids=["no-header", "basic-scheme", "other-scheme", "other-header"],
)
def test_missing_token_401_without_error(gw, tokens, echo, headers):
    p = probe()
    r = gw.get("/b/thing?q=1", headers=[("Host", REALM_HOST), *headers.items(), p])
    assert_unauthorized(r, "/b/thing", token_present=False)
    assert upstream_saw(echo, p) == []
    assert_accepted(gw, echo, tokens["consumer1"], "/b/thing?q=1")


def test_realm_uses_host_and_path_without_query(gw):
    r = gw.get("/svc/deep/path/x.json?token=abc&b=%2F", headers={"Host": "api.example.org"})
    assert_unauthorized(r, "/svc/deep/path/x.json", host="api.example.org", token_present=False)
    r = gw.get("/", headers={"Host": "api.example.org", "Authorization": "Bearer nope"})
    assert_unauthorized(r, "/", host="api.example.org", token_present=True, description="malformed token")


def test_valid_token_in_wrong_header_is_not_read(gw, tokens, echo):
    p = probe()
    r = gw.get("/a/x", headers=[("Host", REALM_HOST), ("X-Token", f"Bearer {tokens['consumer1']}"), p])
    assert_unauthorized(r, "/a/x", token_present=False)
    assert upstream_saw(echo, p) == []
    assert_accepted(gw, echo, tokens["consumer1"], "/a/x")
