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
from urllib.parse import parse_qs, urlsplit

import pytest

import harness
import jose_forge as jf
from common import C1, C2, TOKEN_PATH, consumers, cred_params, query
from proxied_idp import ProxiedIdp, sign_in_until_callback, sso_gateway
from sso_browser import Browser

JWT_SECRET = "audit-trail-e2e-hmac-key-0123456789abcdefgh"
JWT_ISSUER = "https://idp.audit-trail.test"
JWT_CONSUMER = {
    "name": "jwt-user",
    "issuer": JWT_ISSUER,
    "jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": jf.b64url(JWT_SECRET.encode())}]},
}
# Single sign-on on route-svc against an identity provider that never
# answers (cluster "idp" does not exist): 503 "unreachable" for browsers.
SSO = {
    "issuer": f"http://127.0.0.1:{harness.free_port()}",
    "client_id": "audit-e2e-app",
    "client_secret": "audit-e2e-app-secret-0123456789abcdef",
    "cluster": "idp",
    "cookie_secret": "audit-e2e-cookie-secret-0123456789abcdef0123",
    "cookie_secure": False,
    "redirect_url": "/svc/oauth2/callback",
}
# route-a: any consumer; route-b: consumer2 only; route-svc: single sign-on.
CONFIG = {
    "consumers": [*consumers(C1, C2), JWT_CONSUMER],
    "global_auth": True,
    "_rules_": [
        {"_match_route_": ["route-a"], "allow": ["consumer1", "consumer2", "jwt-user"]},
        {"_match_route_": ["route-b"], "allow": ["consumer2"]},
        {"_match_route_": ["route-svc"], "oidc": SSO},
    ],
}
BROWSER = [("Accept", "text/html,application/xhtml+xml")]
EVIL_ID = '"><script>alert(1)</script>'
LINE = re.compile(
    r'^\[[^\]]+\] "(?P<method>\S+) (?P<path>\S+) \S+" (?P<status>\d+) (?P<flags>\S+) (?P<details>\S+) '
    r'route=(?P<route>\S+) request_id=(?P<rid>\S+) edge_auth="(?P<audit>[^"]*)"$'
)


# Access-log lines are flushed every 10 s by default: the tests read them.
FAST_FLUSH = ("--file-flush-interval-msec", "100")


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG, extra_args=list(FAST_FLUSH))


@pytest.fixture(scope="module")
def sso_site(echo, wasm):
    with ProxiedIdp("audit-trail", harness.free_port()) as idp:
        site = sso_gateway(idp, echo.port, wasm, "test_audit_trail-sso", "_audit_sso",
                           "audit-e2e-cookie-secret-S-0123456789abcdef0123", envoy_args=FAST_FLUSH)
        yield site, idp
        site.stop()


def send(gw, path: str, headers=None, rid: str | None = None):
    rid = rid or str(uuid.uuid4())
    r = gw.get(path, headers=[*(headers or []), ("x-request-id", rid)])
    return r, rid


def page_link(text: str) -> str:
    m = re.search(r'<a href="([^"]*)">', text)
    assert m, text
    return m.group(1)


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
    _, claims, _ = jf.decode(token)
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
    token = jf.hs_sign(claims, JWT_SECRET, header={"alg": "HS256", "typ": "JWT", "kid": "k1"})
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
    before = wasm_counter(gw, "route.route-b.consumer.consumer1.metric.edge_auth_denied")
    r, rid = send(gw, "/b/x", [("Authorization", f"Bearer {token}")])
    assert r.status == 403, r
    line = access_line(gw, rid)
    assert line["details"] == "edge_auth_denied{consumer_not_in_allow_list}"
    record = audit(line)
    # The refused consumer is named: who was turned away.
    assert (record["decision"], record["rule"], record["consumer"], record["kind"]) == \
        ("denied", "1", "consumer1", "gateway"), record
    assert wasm_counter(gw, "route.route-b.consumer.consumer1.metric.edge_auth_denied") == before + 1


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


def test_identity_provider_unreachable_page_for_browsers_only(gw):
    r, rid = send(gw, "/svc/app/orders?page=2&sort=asc", BROWSER)
    assert r.status == 503, r
    assert r.headers.get("Content-Type") == "text/html; charset=utf-8", r
    assert r.headers.get("Retry-After") == "5", r
    assert page_link(r.text) == "/svc/app/orders?page=2&amp;sort=asc", r.text
    assert f"<code>{rid}</code>" in r.text, r.text
    assert "keys" not in r.text, r.text  # no technical text
    line = access_line(gw, rid)
    assert line["details"] == "edge_auth_denied{idp_unreachable}"
    assert audit(line)["rule"] == "2"

    # An API client keeps the plain answer.
    r, rid = send(gw, "/svc/api/x")
    assert r.status == 503, r
    assert r.text == "Authentication keys are not available yet.", r
    assert access_line(gw, rid)["details"] == "edge_auth_denied{idp_unreachable}"


@pytest.mark.parametrize("path", [
    "/svc//evil.example/x",
    "/svc/x/%2e%2e/%2fevil.example",
    '/svc/x?"><script>alert(1)</script>',
])
def test_attacker_values_never_leave_the_page(gw, path):
    r, _ = send(gw, path, BROWSER, rid=EVIL_ID)
    assert r.status in (400, 503), r
    link = page_link(r.text)
    assert link.startswith("/") and not link.startswith("//"), r.text
    assert "<script>" not in r.text, r.text
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in r.text, r.text


def test_sign_in_error_page(gw):
    evil = "<script>alert(1)</script>"
    r, rid = send(gw, query("/svc/oauth2/callback", [("error", "access_denied"), ("error_description", evil),
                                                    ("state", "s")]), BROWSER)
    assert r.status == 403, r
    assert "<h1>Sign-in failed</h1>" in r.text, r.text
    assert page_link(r.text) == "/", r.text
    assert f"<code>{rid}</code>" in r.text, r.text
    assert "access_denied" not in r.text and "script" not in r.text, r.text
    line = access_line(gw, rid)
    assert line["details"] == "edge_auth_sso_refused{idp_error}"
    assert audit(line)["decision"] == "sso_refused"


def test_sso_sign_in_and_session_are_recorded(sso_site):
    site, idp = sso_site
    browser = Browser(name="audit")
    base = f"http://127.0.0.1:{site.listener_port}"
    deadline = time.monotonic() + 30
    while True:  # 503 until the IdP's discovery and keys are in
        rid = str(uuid.uuid4())
        r = browser.request("GET", base + "/app/page", headers=[("x-request-id", rid)])
        if r.status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status == 302, (r, site.log_tail(30))
    line = access_line(site, rid)
    assert line["details"] == "edge_auth_sso_login"
    assert audit(line)["decision"] == "sso_login"

    callback = sign_in_until_callback(site, idp, browser)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    rid = str(uuid.uuid4())
    r = browser.request("GET", callback, headers=[("x-request-id", rid)])
    assert r.status == 302, (r, site.log_tail(30))
    line = access_line(site, rid)
    assert line["details"] == "edge_auth_sso_signed_in"
    assert code not in str(line)  # the path is logged without its query

    rid = str(uuid.uuid4())
    r = browser.request("GET", base + "/app/page", headers=[("x-request-id", rid)])
    assert r.status == 200, r
    record = audit(access_line(site, rid))
    assert (record["decision"], record["consumer"], record["kind"], record["sub"]) == \
        ("allowed", "alice", "oidc", "alice"), record
    # A single sign-on user is not a metric label (a claim value is unbounded).
    names = site.stats("wasmcustom.route.")
    assert "wasmcustom.route.-.consumer.-.metric.edge_auth_allowed" in names, names
    assert not any("alice" in n for n in names), names
