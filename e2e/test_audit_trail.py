"""Every decision is in Envoy's access log (README, "Audit trail"): the
plugin's audit record via ``%FILTER_STATE(wasm.edge_auth:PLAIN)%``, local
replies explained by ``%RESPONSE_CODE_DETAILS%``, and the per-route,
per-consumer counters on /stats. The gateway uses the documented format
(harness.ACCESS_LOG_FORMAT); each request carries its own x-request-id so
its line is found without guessing.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

import jwt_hs256 as jwt
from common import C1, C2, TOKEN_PATH, consumers, cred_params, query

JWT_SECRET = "audit-trail-e2e-hmac-key-0123456789abcdefgh"
JWT_ISSUER = "https://idp.audit-trail.test"
JWT_CONSUMER = {
    "name": "jwt-user",
    "issuer": JWT_ISSUER,
    "jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": jwt.b64url_encode(JWT_SECRET.encode())}]},
}
# route-a: any consumer; route-b: consumer2 only.
CONFIG = {
    "consumers": [*consumers(C1, C2), JWT_CONSUMER],
    "global_auth": True,
    "_rules_": [
        {"_match_route_": ["route-a"], "allow": ["consumer1", "consumer2", "jwt-user"]},
        {"_match_route_": ["route-b"], "allow": ["consumer2"]},
    ],
}
LINE = re.compile(
    r'^\[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) \S+" (?P<status>\d+) (?P<flags>\S+) (?P<details>\S+) '
    r'route=(?P<route>\S+) request_id=(?P<rid>\S+) edge_auth="(?P<audit>[^"]*)"$'
)


@pytest.fixture(scope="module")
def gw(start_gateway):
    # Access-log lines are flushed every 10 s by default: the test reads them.
    return start_gateway(CONFIG, extra_args=["--file-flush-interval-msec", "100"])


def send(gw, path: str, headers=None):
    rid = str(uuid.uuid4())
    r = gw.get(path, headers=[*(headers or []), ("x-request-id", rid)])
    return r, rid


def access_line(gw, rid: str) -> dict[str, str]:
    """The access-log line of the request ``rid``, parsed (waits for it)."""
    found = gw.wait_log(f"request_id={rid} ")
    assert len(found) == 1, gw.log_tail()
    m = LINE.match(found[0])
    assert m, found[0]
    return m.groupdict()


def audit(line: dict[str, str]) -> dict[str, str]:
    return dict(field.split("=", 1) for field in line["audit"].split(" "))


def wasm_counter(gw, name: str) -> int:
    return gw.stats("wasmcustom.").get(f"wasmcustom.{name}", 0)


def issue(gw, c) -> tuple[str, dict[str, str]]:
    r, rid = send(gw, query("/a" + TOKEN_PATH, cred_params(c)))
    assert r.status == 200, r
    return r.json()["access_token"], access_line(gw, rid)


def test_token_issued_and_allowed_gateway_token(gw):
    before = wasm_counter(gw, "route.route-a.consumer.consumer1.metric.edge_auth_allowed")
    token, line = issue(gw, C1)
    record = audit(line)
    _, claims, _ = jwt.decode(token)
    assert record == {"decision": "token_issued", "reason": "-", "rule": "0", "consumer": "consumer1",
                      "kind": "gateway", "sub": "consumer1", "jti": claims["jti"]}
    assert line["details"] == "edge_auth_token_issued"
    assert line["path"] == "/a/oauth2/token"  # the secret in the query is not logged
    assert token not in str(line)

    r, rid = send(gw, "/a/x", [("Authorization", f"Bearer {token}")])
    assert r.status == 200, r
    line = access_line(gw, rid)
    assert audit(line) == {"decision": "allowed", "reason": "-", "rule": "0", "consumer": "consumer1",
                           "kind": "gateway", "sub": "consumer1", "jti": claims["jti"]}
    assert line["details"] == "via_upstream"
    assert line["route"] == "route-a"
    assert token not in str(line)
    assert wasm_counter(gw, "route.route-a.consumer.consumer1.metric.edge_auth_allowed") == before + 1
    assert wasm_counter(gw, "route.route-a.consumer.consumer1.metric.edge_auth_token_issued") >= 1


def test_allowed_jwt_consumer(gw):
    now = int(time.time())
    claims = {"iss": JWT_ISSUER, "sub": "alice", "jti": "jwt-id-1", "iat": now, "exp": now + 600}
    token = jwt.sign(claims, JWT_SECRET, header={"alg": "HS256", "typ": "JWT", "kid": "k1"})
    before = wasm_counter(gw, "route.route-a.consumer.jwt-user.metric.edge_auth_allowed")
    r, rid = send(gw, "/a/x", [("Authorization", f"Bearer {token}")])
    assert r.status == 200, r
    assert audit(access_line(gw, rid)) == {"decision": "allowed", "reason": "-", "rule": "0",
                                           "consumer": "jwt-user", "kind": "jwt", "sub": "alice",
                                           "jti": "jwt-id-1"}
    assert wasm_counter(gw, "route.route-a.consumer.jwt-user.metric.edge_auth_allowed") == before + 1


@pytest.mark.parametrize(
    "path, headers, status, reason, rule",
    [
        ("/a/x", [], 401, "no_bearer_token", "0"),
        ("/b/x", [], 401, "no_bearer_token", "1"),
        ("/unruled/x", [], 401, "no_bearer_token", "-"),
    ],
)
def test_denied_missing_token(gw, path, headers, status, reason, rule):
    r, rid = send(gw, path, headers)
    assert r.status == status, r
    line = access_line(gw, rid)
    assert line["details"] == f"edge_auth_denied{{{reason}}}"
    assert audit(line) == {"decision": "denied", "reason": reason, "rule": rule, "consumer": "-",
                           "kind": "-", "sub": "-", "jti": "-"}


def test_denied_bad_signature_and_by_allow_list(gw):
    token, _ = issue(gw, C1)
    head, payload, sig = token.split(".")
    forged = f"{head}.{payload}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"
    before = wasm_counter(gw, "route.route-a.consumer.-.metric.edge_auth_denied")
    r, rid = send(gw, "/a/x", [("Authorization", f"Bearer {forged}")])
    assert r.status == 401, r
    line = access_line(gw, rid)
    assert line["details"] == "edge_auth_denied{bad_signature}"
    assert audit(line)["reason"] == "bad_signature"
    assert forged not in str(line)
    assert wasm_counter(gw, "route.route-a.consumer.-.metric.edge_auth_denied") == before + 1

    # consumer1's token (global credentials) on route-b, which admits consumer2 only.
    before = wasm_counter(gw, "route.route-b.consumer.-.metric.edge_auth_denied")
    r, rid = send(gw, "/b/x", [("Authorization", f"Bearer {token}")])
    assert r.status == 403, r
    line = access_line(gw, rid)
    assert line["details"] == "edge_auth_denied{consumer_not_in_allow_list}"
    assert audit(line)["decision"] == "denied"
    assert audit(line)["rule"] == "1"
    assert wasm_counter(gw, "route.route-b.consumer.-.metric.edge_auth_denied") == before + 1


def test_token_endpoint_refusal(gw):
    r, rid = send(gw, query("/a" + TOKEN_PATH, [("grant_type", "client_credentials"), ("client_id", C1.client_id), ("client_secret", "wrong-secret")]))
    assert r.status in (400, 401), r
    line = access_line(gw, rid)
    assert line["details"] == "edge_auth_token_refused{invalid_client}"
    assert audit(line) == {"decision": "token_refused", "reason": "invalid_client", "rule": "0",
                           "consumer": "-", "kind": "-", "sub": "-", "jti": "-"}
    assert "wrong-secret" not in str(line)


def test_unconfigured_route_names_share_one_metric_bucket(gw):
    names = [n for n in gw.stats("wasmcustom.route.")]
    routes = {n.split(".")[2] for n in names}
    assert routes <= {"route-a", "route-b", "-"}, names
    consumers_seen = {n.split(".")[4] for n in names}
    assert consumers_seen <= {"consumer1", "consumer2", "jwt-user", "-"}, names
