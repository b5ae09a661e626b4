"""Invalid ``oidc`` blocks in a real Envoy: the plugin refuses to start and
its ``edge-auth: invalid configuration:`` log line names the field. Covers
``claims_to_headers`` (a claim must never be written into the identity
header, credentials, ``Host``, framing or pseudo-headers, nor the configured
auth header) and the URLs parsed when the configuration loads. The positive
control loads the same block with an ordinary header and serves."""

from __future__ import annotations

import pytest

import harness
from common import CONFIG_ERROR_PREFIX as PREFIX, assert_config_refused, probe, upstream_saw

COOKIE_SECRET = "e2e-cookie-secret-0123456789abcdef0123456789"


def sso(**over) -> dict:
    oidc = {
        "issuer": "http://127.0.0.1:9/idp",
        "client_id": "gateway",
        "client_secret": "gateway-secret",
        "cluster": "idp",
        "cookie_secret": COOKIE_SECRET,
        "match_type": "whitelist",
        "match_list": [{"match_rule_path": "/public", "match_rule_type": "prefix"}],
        "claims_to_headers": [{"claim": "email", "header": "x-user-email"}],
    }
    oidc.update(over)
    return {"oidc": oidc}


def claim_into(header: str) -> list[dict]:
    return [{"claim": "email", "header": "x-user-email"}, {"claim": "sub", "header": header}]


# id -> (plugin configuration, substrings the log line must contain after the prefix)
BAD = {
    "claim-into-x-mse-consumer": (sso(claims_to_headers=claim_into("x-mse-consumer")),
                                  ["oidc.claims_to_headers[1].header", "x-mse-consumer"]),
    "claim-into-x-mse-consumer-underscores": (sso(claims_to_headers=claim_into("X_Mse_Consumer")),
                                              ["oidc.claims_to_headers[1].header", "x_mse_consumer"]),
    "claim-into-authorization": (sso(claims_to_headers=claim_into("Authorization")),
                                 ["oidc.claims_to_headers[1].header", "authorization"]),
    "claim-into-cookie": (sso(claims_to_headers=claim_into("cookie")), ["oidc.claims_to_headers[1].header", "cookie"]),
    "claim-into-host": (sso(claims_to_headers=claim_into("host")), ["oidc.claims_to_headers[1].header", "host"]),
    "claim-into-pseudo-header": (sso(claims_to_headers=claim_into(":authority")),
                                 ["oidc.claims_to_headers[1].header", "not a valid HTTP header name"]),
    "claim-into-transfer-encoding": (sso(claims_to_headers=claim_into("transfer-encoding")),
                                     ["oidc.claims_to_headers[1].header", "transfer-encoding"]),
    "claim-into-envoy-header": (sso(claims_to_headers=claim_into("x-envoy-upstream-rq-timeout-ms")),
                                ["oidc.claims_to_headers[1].header", "x-envoy-upstream-rq-timeout-ms"]),
    "claim-into-the-auth-header": ({**sso(claims_to_headers=claim_into("x-gw-token")), "auth_header_name": "X-Gw-Token"},
                                   ["oidc.claims_to_headers[1].header", "auth header"]),
    "rule-claims-into-authorization": ({"_rules_": [{"_match_route_": ["route-a"],
                                                     **sso(claims_to_headers=claim_into("authorization"))}]},
                                       ["_rules_[0].oidc.claims_to_headers[1].header"]),
    "discovery-with-user-info": (sso(discovery="http://user@127.0.0.1:9/.well-known/openid-configuration"),
                                 ["oidc.discovery", "user info"]),
    "issuer-third-slash": (sso(issuer="https:///idp.test"), ["oidc.issuer", "host"]),
    "redirect-url-backslash": (sso(redirect_url="http://gw.test\\oauth2/callback"), ["oidc.redirect_url"]),
    "post-logout-protocol-relative": (sso(post_logout_redirect_uri="//evil.test/"), ["oidc.post_logout_redirect_uri"]),
    "end-session-not-http": (sso(end_session_endpoint="javascript:alert(1)"), ["oidc.end_session_endpoint"]),
    "allowed-redirect-domain-url": (sso(allowed_redirect_domains=["example.com", "https://evil.test"]),
                                    ["oidc.allowed_redirect_domains[1]"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sso_config_is_refused(case, echo, wasm):
    config, fields = BAD[case]
    gw = harness.gateway(config, echo.port, name=f"bad-sso-{case}", wasm=wasm)
    assert_config_refused(gw, echo, fields, path="/public/x")


def test_valid_sso_config_counterpart_loads_and_serves(echo, wasm):
    """The same path with an ordinary claim header (in another spelling) and
    Go durations loads: the whitelisted path reaches the upstream, a
    protected one is answered by the plugin itself (503 until the IdP's keys
    are in; there is no IdP here)."""
    config = sso(claims_to_headers=[{"claim": "sub", "header": "X-User_Sub"}],
                 cookie_expire="1.5h", cookie_refresh="500ms",
                 allowed_redirect_domains=[".example.com"], post_logout_redirect_uri="/bye")
    gw = harness.gateway(config, echo.port, name="good-sso", wasm=wasm)
    with gw:
        assert PREFIX not in gw.log_text()
        p = probe()
        r = gw.get("/public/x", headers=[p])
        assert r.status == 200 and r.json()["path"] == "/public/x", r
        assert len(upstream_saw(echo, p)) == 1
        p = probe()
        r = gw.get("/app", headers=[p])
        assert r.status == 503, r
        assert upstream_saw(echo, p) == []
