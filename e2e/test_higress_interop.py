"""Interop with the C++ Higress/MSE `oauth` plugin, both ways, in a real Envoy:

* the token its README shows (issued by that plugin; header `typ` written as
  `application\\/at+jwt`) verifies here under the README's config, with the
  plugin's own test setting `clock_skew_seconds: 3153600000`;
* tokens issued here pass the C++ plugin's verifier logic, ported below from
  `plugins/wasm-cpp/extensions/oauth/plugin.cc` (`checkPlugin`): the claim
  types it requires, HS256 with the consumer's secret, issuer, subject = the
  consumer name, header `typ`, audience `default` (or the route name when
  `global_credentials` is false), expiry with leeway."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from common import Consumer, cred_params, query

CPP_README_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6ImFwcGxpY2F0aW9uXC9hdCtqd3QifQ."
    "eyJhdWQiOiJkZWZhdWx0IiwiY2xpZW50X2lkIjoiMTIzNDU2NzgteHh4eC14eHh4LXh4eHgteHh4eHh4eHh4eHh4IiwiZXhwIjoxNjg3OTUxNDYzLCJpYXQiOjE2ODc5NDQyNjMsImlzcyI6IkhpZ3Jlc3MtR2F0ZXdheSIsImp0aSI6IjEwOTU5ZDFiLThkNjEtNGRlYy1iZWE3LTk0ODEwMzc1YjYzYyIsInN1YiI6ImNvbnN1bWVyMSJ9."
    "NkT_rG3DcV9543vBQgneVqoGfIhVeOuUBwLJJ4Wycb0"
)
README_C1 = Consumer("consumer1", "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx", "abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
README_C2 = Consumer("consumer2", "87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx", "hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
README_CONSUMERS = [c.config() for c in (README_C1, README_C2)]

CONFIGS = {
    # The README's instance-level example, plus the C++ test's skew.
    "readme": {"global_auth": True, "clock_skew_seconds": 3153600000, "consumers": README_CONSUMERS},
    # Same without the skew: the 2023 token is expired.
    "default-skew": {"global_auth": True, "consumers": README_CONSUMERS},
    # Route-scoped credentials (aud = route name).
    "route-scoped": {"global_auth": True, "global_credentials": False, "consumers": README_CONSUMERS},
}


@pytest.fixture(scope="module")
def gws(lazy_gateways):
    return lazy_gateways(CONFIGS)


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def cpp_check_plugin(token: str, consumers: list[Consumer], *, issuer: str = "Higress-Gateway",
                     leeway: int = 60, global_credentials: bool = True, route_name: str = "") -> str:
    """The C++ plugin's `checkPlugin` verification, step by step; returns the
    consumer name or raises AssertionError naming the failed step."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header, payload = json.loads(_b64(header_b64)), json.loads(_b64(payload_b64))
    # CLAIM_CHECK(token, claim, type) for each claim, in its order.
    for claim, kind in (("client_id", str), ("iss", str), ("sub", str), ("aud", str), ("exp", int), ("iat", int)):
        assert claim in payload, f"claim is missing: {claim}"
        assert isinstance(payload[claim], kind) and not isinstance(payload[claim], bool), f"claim is invalid: {claim}"
    by_client_id = {c.client_id: c for c in consumers}
    consumer = by_client_id.get(payload["client_id"])
    assert consumer is not None, "client_id not found"
    # jwt::verify().allow_algorithm(hs256{secret}).with_issuer().with_subject().with_type().leeway()
    assert header.get("alg") == "HS256", header
    expected = hmac.new(consumer.client_secret.encode(), f"{header_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(expected, _b64(signature_b64)), "signature"
    assert payload["iss"] == issuer, "issuer"
    assert payload["sub"] == consumer.name, "subject"
    assert header.get("typ") == "application/at+jwt", "type"
    now = int(time.time())
    assert now <= payload["exp"] + leeway, "expired"
    assert payload["iat"] <= now + leeway, "issued in the future"
    if not global_credentials:
        assert payload["aud"] == route_name, "audience is another route"
    return consumer.name


def test_the_cpp_plugins_readme_token_verifies_here(gws, echo):
    r = gws["readme"].get("/", headers={"Host": "test.com", "Authorization": f"Bearer {CPP_README_TOKEN}"})
    assert r.status == 200, r
    assert r.json()["headers"]["x-mse-consumer"] == "consumer1"
    # Control: under the default skew the same token is three years expired.
    r = gws["default-skew"].get("/", headers={"Host": "test.com", "Authorization": f"Bearer {CPP_README_TOKEN}"})
    assert r.status == 401, r


@pytest.mark.parametrize("consumer", [README_C1, README_C2], ids=lambda c: c.name)
def test_tokens_issued_here_pass_the_cpp_verifier(gws, consumer):
    r = gws["readme"].get(query("/oauth2/token", cred_params(consumer)), headers={"Host": "test.com"})
    assert r.status == 200, r
    body = r.json()
    # The C++ plugin's answer: {"token_type": "bearer", "access_token": ..., "expires_in": <token_ttl>}.
    assert body["token_type"] == "bearer" and body["expires_in"] == 7200, body
    assert cpp_check_plugin(body["access_token"], [README_C1, README_C2], leeway=60) == consumer.name
    # Control: the C++ logic refuses it under another consumer's secret.
    swapped = [Consumer(README_C1.name, consumer.client_id, README_C2.client_secret)] if consumer is README_C1 else \
        [Consumer(README_C2.name, consumer.client_id, README_C1.client_secret)]
    with pytest.raises(AssertionError, match="signature"):
        cpp_check_plugin(body["access_token"], swapped)


def test_route_scoped_tokens_pass_the_cpp_verifier_on_their_route(gws):
    r = gws["route-scoped"].get(query("/a/oauth2/token", cred_params(README_C1)), headers={"Host": "test.com"})
    assert r.status == 200, r
    token = r.json()["access_token"]
    assert cpp_check_plugin(token, [README_C1], global_credentials=False, route_name="route-a") == "consumer1"
    with pytest.raises(AssertionError, match="audience is another route"):
        cpp_check_plugin(token, [README_C1], global_credentials=False, route_name="route-b")
