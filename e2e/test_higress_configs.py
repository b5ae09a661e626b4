"""Higress / APIG configs in a real Envoy against a real IdP (e2e/idp):

* a flat Higress ``oidc`` plugin config (``oidc_issuer_url`` at the top
  level, the IdP reached as the Higress service ``keycloak.static``) sends
  browsers to the IdP's login with the configured client and callback, and
  its CSRF cookie is HttpOnly, Secure and SameSite=Lax (``""``);
* a rule's ``allow`` against an array claim (``allow_claim: groups``):
  any listed element admits, nothing else does;
* refusals naming the key: non-ASCII consumer names (X-Mse-Consumer,
  Higress issue 2995), regex match rules, ``cookie_httponly: false``,
  SameSite none without Secure, a non-OIDC ``provider``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

import harness
from common import CONFIG_ERROR_PREFIX as PREFIX, assert_config_refused, probe, upstream_saw
from idp_control import APP1, Idp, gateway as gateway_with_clusters, poll

CALLBACK = "http://foo.bar.com/oauth2/callback"
COOKIE_SECRET = "nqavJrGvRmQxWwGNptLdyUVKcBNZ2b18Guc1n_8DCfY="
SERVICE_CLUSTER = "outbound|80||keycloak.static"


@pytest.fixture(scope="module")
def idp():
    with Idp(name="higress-configs", redirect_uris=[CALLBACK]) as server:
        yield server


def flat_oidc(idp: Idp, **over) -> dict:
    config = {
        "redirect_url": CALLBACK,
        "oidc_issuer_url": idp.issuer,
        "client_id": APP1.client_id,
        "client_secret": APP1.client_secret,
        "scope": "openid email",
        "cookie_secret": COOKIE_SECRET,
        "cookie_samesite": "",
        "service_name": "keycloak.static",
        "service_port": 80,
        "service_host": f"127.0.0.1:{idp.port}",
        "match_type": "blacklist",
        "match_list": [{"match_rule_domain": "*.bar.com", "match_rule_path": "/headers",
                        "match_rule_type": "prefix"}],
    }
    config.update(over)
    return config


def test_flat_higress_oidc_config_sends_browsers_to_the_idp(echo, wasm, idp):
    gw = gateway_with_clusters(flat_oidc(idp), echo.port, clusters={SERVICE_CLUSTER: idp.port},
                               name="flat-oidc", wasm=wasm).start()
    try:
        assert PREFIX not in gw.log_text()
        # Not blacklisted: passes untouched.
        p = probe()
        r = gw.get("/other", headers=[("Host", "foo.bar.com"), p])
        assert r.status == 200 and r.json()["path"] == "/other", r
        # Blacklisted: a browser is sent to the IdP once discovery is in.
        browser = [("Host", "foo.bar.com"), ("Accept", "text/html")]
        r, _ = poll(lambda: gw.get("/headers/x", headers=browser), until=lambda r: r.status != 503, timeout=30)
        assert r.status == 302, r
        target = urlsplit(r.headers["Location"])
        auth = urlsplit(idp.discovery()["authorization_endpoint"])
        assert (target.scheme, target.netloc, target.path) == (auth.scheme, auth.netloc, auth.path), r
        q = parse_qs(target.query)
        assert q["client_id"] == [APP1.client_id], q
        assert q["redirect_uri"] == [CALLBACK], q
        assert q["scope"] == ["openid email"], q
        assert q["response_type"] == ["code"], q
        cookies = r.headers.get_all("Set-Cookie") or []
        assert len(cookies) == 1, cookies
        attrs = [a.strip() for a in cookies[0].split(";")[1:]]
        assert "HttpOnly" in attrs and "Secure" in attrs and "SameSite=Lax" in attrs, cookies
        # An API client is refused, never forwarded.
        p = probe()
        r = gw.get("/headers/x", headers=[("Host", "foo.bar.com"), p])
        assert r.status == 401, r
        assert upstream_saw(echo, p) == []
    finally:
        gw.stop()


def test_allow_list_matches_any_element_of_an_array_claim(echo, wasm, idp):
    config = {
        "oidc": {"issuer": idp.issuer, "client_id": APP1.client_id, "client_secret": APP1.client_secret,
                 "cluster": "idp", "cookie_secret": COOKIE_SECRET, "accept_bearer": True,
                 "allow_claim": "groups"},
        "_rules_": [{"_match_domain_": ["admin.example.com"], "allow": ["admins"]}],
    }
    gw = gateway_with_clusters(config, echo.port, clusters={"idp": idp.port}, name="array-allow",
                               wasm=wasm).start()
    try:
        def call(groups):
            token = idp.forge("RS256", aud=APP1.client_id, sub="alice", groups=groups)
            p = probe()
            r = gw.get("/x", headers=[("Host", "admin.example.com"), ("Authorization", f"Bearer {token}"), p])
            return r, upstream_saw(echo, p)

        r, _ = poll(lambda: call(["users", "admins"])[0], until=lambda r: r.status != 503, timeout=30)
        for groups in (["users", "admins"], ["admins"], "admins"):
            r, seen = call(groups)
            assert r.status == 200, (groups, r)
            assert r.json()["headers"]["x-mse-consumer"] == "alice", r
            assert len(seen) == 1
        for groups in (["users"], [], "users,admins", ["Admins"], [["admins"]]):
            r, seen = call(groups)
            assert (r.status, r.body) == (403, b"Access Denied."), (groups, r)
            assert seen == []
    finally:
        gw.stop()


BAD = {
    "non-ascii-consumer-name": (
        {"consumers": [{"name": "\u5f20\u4e09", "client_id": "id-1", "client_secret": "s" * 32}]},
        ["consumers[0].name", "printable ASCII", "X-Mse-Consumer"]),
    "regex-match-rule": (
        {"match_list": [{"match_rule_path": "/api/.*", "match_rule_type": "regex"}]},
        ["match_list[0].match_rule_type", "regex is not supported"]),
    "cookie-httponly-false": ({"cookie_httponly": False}, ["cookie_httponly"]),
    "samesite-none-without-secure": ({"cookie_samesite": "none", "cookie_secure": False}, ["cookie_secure"]),
    "github-provider": ({"provider": "github"}, ["provider", "github"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_unsafe_higress_settings_are_refused_by_key(case, echo, wasm):
    over, fields = BAD[case]
    if "consumers" in over:
        config = over
    else:
        config = {"redirect_url": CALLBACK, "oidc_issuer_url": "http://127.0.0.1:9/idp", "client_id": "c",
                  "client_secret": "s", "cookie_secret": COOKIE_SECRET, "service_name": "idp.static", **over}
    gw = harness.gateway(config, echo.port, name=f"bad-higress-{case}", wasm=wasm)
    assert_config_refused(gw, echo, fields)
