"""README promises of the ``oidc`` block that no other test held the plugin
to, against the real IdP (e2e/idp) and a real Envoy:

``opts`` gateway (client ``edge-auth-app2``, registered at the IdP with
``client_secret_post``), reaching the IdP through a recording
:class:`FaultProxy` that shows how the code exchange authenticated:
  ``token_endpoint_auth_method: client_secret_post``, a full-URL
  ``redirect_url`` (``http://127.0.0.1:<port>/app/cb``), ``cookie_expire: 0``,
  ``cookie_domain``/``cookie_path``, ``cookie_samesite: strict``,
  ``pass_authorization_header: "access_token"``, an ``end_session_endpoint``
  override and ``allowed_redirect_domains``.
``claim`` gateway (client ``edge-auth-app``):
  ``consumer_claim: email`` with a rule whose ``allow`` lists an email, and
  ``pass_authorization_header: false``.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from fault_proxy import FaultProxy
from idp_control import APP1, APP2, Idp
from sso_browser import Browser
from test_sso import (
    COOKIE,
    SECRET_A,
    SECRET_B,
    Site,
    b64url_json,
    echo_of,
    new_port,
    query,
    session_lines,
    set_cookie_attrs,
    sso_config,
)

END_SESSION = "http://logout.example.test/end"
PARTNER = "partner.example.test"


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    taken: set[int] = set()
    return {k: new_port(taken) for k in ("idp", "opts", "claim")}


@pytest.fixture(scope="module")
def sites(ports):
    s = {k: Site(k, ports[k]) for k in ("opts", "claim")}
    yield s
    for site in s.values():
        site.stop()


def opts_callback(site: Site) -> str:
    return site.url("/app/cb")


@pytest.fixture(scope="module")
def idp(ports, sites):
    opts, claim = sites["opts"], sites["claim"]
    clients = [
        {"client_id": APP1.client_id, "client_secret": APP1.client_secret},
        {"client_id": APP2.client_id, "client_secret": APP2.client_secret,
         "token_endpoint_auth_method": "client_secret_post"},
    ]
    with Idp(port=ports["idp"], name="sso-promises",
             redirect_uris=[opts_callback(opts), claim.callback],
             post_logout_redirect_uris=[u for s in (opts, claim) for u in s.post_logout_uris()],
             env={"IDP_ID_TOKEN_ALL_CLAIMS": "1", "IDP_CLIENTS": json.dumps(clients)}) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(idp):
    with FaultProxy(idp.port) as p:
        yield p


@pytest.fixture(scope="module")
def opts(sites, idp, proxy, echo, wasm) -> Site:
    site = sites["opts"]
    site.idp = idp
    config = sso_config(
        idp.issuer, SECRET_A,
        client_id=APP2.client_id, client_secret=APP2.client_secret,
        token_endpoint_auth_method="client_secret_post",
        redirect_url=opts_callback(site),
        logout_path="/app/sign_out",
        cookie_expire="0", cookie_refresh="0",
        cookie_domain="127.0.0.1", cookie_path="/app", cookie_samesite="strict",
        pass_authorization_header="access_token", set_userinfo_header=True,
        end_session_endpoint=END_SESSION,
        allowed_redirect_domains=[PARTNER],
        match_list=[],
    )
    site.start(config, proxy.port, echo.port, wasm)
    site.wait_sso_ready("/app/ready-probe")
    return site


@pytest.fixture(scope="module")
def claim(sites, idp, echo, wasm) -> Site:
    site = sites["claim"]
    site.idp = idp
    config = sso_config(idp.issuer, SECRET_B, consumer_claim="email", pass_authorization_header=False,
                        match_list=[])
    config["_rules_"] = [{"_match_route_": ["route-a"], "allow": ["alice@example.test"]}]
    site.start(config, idp.port, echo.port, wasm)
    site.wait_sso_ready("/b/ready-probe", bearer_identity=False)
    return site


def callback_hits(page, url: str):
    return page.visited(lambda r: r.url.split("?", 1)[0] == url)


# ---------------------------------------------------------------------------
# opts
# ---------------------------------------------------------------------------


def test_client_secret_post_and_full_url_redirect_url(opts, proxy):
    site = opts
    token_path = urlsplit(site.idp.discovery()["token_endpoint"]).path
    before = len(proxy.requests(token_path))
    b = Browser(login="carol", name="post")
    # The authorization request names the configured URL, whatever Host the
    # browser used (a path redirect_url would take the request's host).
    r = b.request("GET", site.url("/app/x"), headers={"Host": "alias.example.test"}, cookies=False)
    assert r.status == 302, r
    assert query(r.location)["redirect_uri"] == opts_callback(site), r.location
    # A whole sign-in: the IdP comes back to /app/cb, which is the callback.
    page = b.navigate(site.url("/app/x"))
    assert echo_of(page, "/app/x")["headers"]["x-mse-consumer"] == "carol"
    hits = callback_hits(page, opts_callback(site))
    assert len(hits) == 1 and hits[0].status == 302, page
    # The code exchange authenticated in the body, never with Basic.
    exchanges = proxy.requests(token_path)[before:]
    assert [(x["method"], x["status"]) for x in exchanges] == [("POST", 200)], exchanges
    form = query("?" + exchanges[0]["body"].decode())
    assert form["client_id"] == APP2.client_id and form["client_secret"] == APP2.client_secret, form
    assert form["grant_type"] == "authorization_code" and form["redirect_uri"] == opts_callback(site), form
    assert "authorization" not in exchanges[0]["headers"], exchanges[0]["headers"]


def test_session_cookie_attributes(opts):
    site = opts
    b = Browser(login="dave", name="cookie")
    page = b.navigate(site.url("/app/c"))
    echo_of(page, "/app/c")
    cb = callback_hits(page, opts_callback(site))[0]
    lines = session_lines(cb)
    assert list(lines) == [COOKIE], cb
    attrs = set_cookie_attrs(lines[COOKIE])
    # cookie_expire 0: a browser-session cookie (neither Max-Age nor Expires).
    assert "max-age" not in attrs and "expires" not in attrs, lines
    assert attrs.get("domain") == "127.0.0.1" and attrs.get("path") == "/app", lines
    assert attrs.get("samesite") == "Strict" and attrs.get("httponly") is True, lines
    # End to end: the cookie goes to /app only, so /elsewhere has no session.
    assert echo_of(b.request("GET", site.url("/app/again")), "/app/again")["headers"]["x-mse-consumer"] == "dave"
    r = b.request("GET", site.url("/elsewhere"))
    assert r.status == 302 and r.location.startswith(site.idp.discovery()["authorization_endpoint"]), r


def test_pass_authorization_header_access_token(opts):
    site = opts
    b = Browser(login="erin", name="at")
    h = echo_of(b.navigate(site.url("/app/t")), "/app/t")["headers"]
    access = h["x-forwarded-access-token"]
    assert h["authorization"] == f"Bearer {access}", h
    # Not the ID token: that is a JWT carrying the login's nonce.
    parts = access.split(".")
    if len(parts) == 3:
        assert "nonce" not in b64url_json(parts[1]), h
    assert "nonce" in b64url_json(h["x-userinfo"]), h


def test_end_session_override_and_allowed_redirect_domain(opts):
    site = opts
    b = Browser(login="frank", name="out")
    echo_of(b.navigate(site.url("/app/o")), "/app/o")
    r = b.request("GET", site.url(f"/app/sign_out?rd=http://{PARTNER}/after"))
    assert r.status == 302, r
    assert r.location.split("?", 1)[0] == END_SESSION, r.location
    q = query(r.location)
    assert q["post_logout_redirect_uri"] == f"http://{PARTNER}/after", q
    assert q["client_id"] == APP2.client_id and q.get("id_token_hint"), q
    assert not b.jar.matching(lambda n: n == COOKIE), b.jar
    # Control: a domain not on the list is dropped for post_logout_redirect_uri ("/bye").
    b2 = Browser(login="frank", name="out2")
    echo_of(b2.navigate(site.url("/app/o")), "/app/o")
    r = b2.request("GET", site.url("/app/sign_out?rd=http://evil.example.test/after"))
    assert r.status == 302 and r.location.split("?", 1)[0] == END_SESSION, r
    assert query(r.location)["post_logout_redirect_uri"] == site.url("/bye"), r.location


# ---------------------------------------------------------------------------
# claim
# ---------------------------------------------------------------------------


def test_allow_over_email_consumer_claim(claim):
    site = claim
    alice = Browser(login="alice", name="alice")
    h = echo_of(alice.navigate(site.url("/a/x")), "/a/x")["headers"]
    assert h["x-mse-consumer"] == "alice@example.test", h
    # pass_authorization_header: false
    assert "authorization" not in h, h
    bob = Browser(login="bob", name="bob")
    page = bob.navigate(site.url("/a/x"))
    assert page.status == 403, page
    assert "alice" not in page.text, page
    # Control: bob is signed in and served where no allow list applies.
    h = echo_of(bob.request("GET", site.url("/b/x")), "/b/x")["headers"]
    assert h["x-mse-consumer"] == "bob@example.test" and "authorization" not in h, h
    # and is still refused on /a.
    assert bob.request("GET", site.url("/a/y")).status == 403
