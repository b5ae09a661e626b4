"""Browser single sign-on (the ``oidc`` block) in a real Envoy against a real
OpenID provider (``e2e/idp/server.js``, oidc-provider), driven by the
scripted browser of ``sso_browser.py``: redirects followed by hand, one
cookie jar per browser, the IdP's login, consent and logout forms filled in.

Gateways (each its own Envoy, listener port fixed before the IdP starts so
its callback and post-logout URLs can be registered there):

* ``main``   IdP A, whitelist (``/public`` prefix, ``/bye`` exact), secret A
* ``black``  IdP A, blacklist (``/private`` prefix), secret B
* ``expiry`` IdP B (access tokens live ``EXPIRY_TTL`` s): refresh
* ``big``    IdP C (a ``big_claim`` of ``BIG_CLAIM`` chars in ID tokens):
             cookie splitting
* ``late``   IdP D, started only after the gateway: 503, then recovery
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

import harness
import jose_forge as jf
from fault_proxy import FaultProxy
from common import (
    retry_after_ok,
)
from idp_control import APP1, ES256_RESOURCE, IDP_CLUSTER, RS256_RESOURCE, Idp, make_keyset
from sso_browser import Browser, Page, Resp

COOKIE = "_edge_auth_session"
CSRF_PREFIX = COOKIE + "_csrf_"
SECRET_A = "edge-auth-e2e-cookie-secret-A-9f3c1d7e5b2a4c6e8d0f"
SECRET_B = "edge-auth-e2e-cookie-secret-B-1a2b3c4d5e6f7a8b9c0d"
CALLBACK = "/oauth2/callback"
SIGN_OUT = "/oauth2/sign_out"
EXPIRY_TTL = 4  # seconds: IdP B's access tokens
# characters of IdP C's big_claim: ID tokens of 4-5 KB (over one cookie,
# under the default oidc max_token_size of 5 KB)
BIG_CLAIM = 2700
SSO_READY_WAIT = 30.0  # a fresh gateway fetching discovery + keys
LATE_START_WAIT = 60.0
XHR = {"X-Requested-With": "XMLHttpRequest"}
# Gateways seen redirecting browsers to log in before they held the IdP's
# signing keys (see Site.wait_sso_ready); asserted empty at the end.
STARTUP_RACES: list[tuple] = []
SPOOFED = {
    "x-user-email": "mallory@evil.test",
    "x-mse-consumer": "mallory",
    "x-userinfo": "eyJzdWIiOiJtYWxsb3J5In0",
    "x-forwarded-access-token": "forged-access-token",
}


# ---------------------------------------------------------------------------
# Configuration and sites
# ---------------------------------------------------------------------------


def sso_config(issuer: str, secret: str, **over) -> dict:
    oidc = {
        "issuer": issuer,
        "client_id": APP1.client_id,
        "client_secret": APP1.client_secret,
        "cluster": IDP_CLUSTER,
        "cookie_secret": secret,
        "cookie_secure": False,
        "scope": "openid email profile offline_access",
        "redirect_url": CALLBACK,
        "logout_path": SIGN_OUT,
        "post_logout_redirect_uri": "/bye",
        "token_endpoint_auth_method": "client_secret_basic",
        "cookie_name": COOKIE,
        "cookie_expire": "24h",
        "cookie_refresh": "1h",
        "match_type": "whitelist",
        "match_list": [
            {"match_rule_domain": "", "match_rule_path": "/public", "match_rule_type": "prefix"},
            {"match_rule_domain": "", "match_rule_path": "/bye", "match_rule_type": "exact"},
        ],
        "set_access_token_header": True,
        "set_userinfo_header": True,
        "claims_to_headers": [{"claim": "email", "header": "x-user-email"}],
        "accept_bearer": True,
        # the IdP's JWT access tokens name their resource server as aud
        "audiences": [RS256_RESOURCE, ES256_RESOURCE],
        "consumer_claim": "sub",
        "allowed_redirect_domains": [],
    }
    oidc.update(over)
    return {"oidc": oidc}


class Site:
    """One gateway (Envoy with edge-auth) on a fixed port in front of the
    echo upstream, its IdP reachable through the ``idp`` cluster."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.gw: harness.Envoy | None = None
        self.idp: Idp | None = None

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def callback(self) -> str:
        return self.url(CALLBACK)

    def post_logout_uris(self) -> list[str]:
        return [self.url("/"), self.url("/bye"), self.url("/after")]

    def start(self, config: dict, idp_port: int, echo_port: int, wasm) -> "Site":
        admin = harness.free_port()
        while admin == self.port:
            admin = harness.free_port()
        bootstrap = harness.build_bootstrap(
            listener_port=self.port, admin_port=admin, upstream_port=echo_port,
            http_filters=harness.gateway_filters(config, wasm))
        bootstrap["static_resources"]["clusters"].append(harness.static_cluster(IDP_CLUSTER, idp_port))
        self.gw = harness.Envoy(bootstrap, self.port, admin, name=f"test_sso-{self.name}")
        self.gw.start()
        return self

    def wait_sso_ready(self, protected: str = "/ready-probe", timeout: float = SSO_READY_WAIT,
                       bearer_identity: bool = True) -> Resp:
        """Poll an anonymous navigation to ``protected`` until the plugin
        stops answering 503; it must then redirect to the IdP. The contract:
        503 until discovery *and* keys are loaded, so a bearer API request
        made right after that first redirect must not get 503 (checked and
        recorded in :data:`STARTUP_RACES`); then wait until the bearer
        request is served (keys in the worker) so later tests do not depend
        on that race."""
        deadline = time.monotonic() + timeout
        probe = Browser(name="probe")
        token = self.idp.client_credentials_token(APP1, RS256_RESOURCE)
        bearer = {"Authorization": f"Bearer {token}"}
        while True:
            r = probe.request("GET", self.url(protected), cookies=False)
            if r.status != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.status == 302, (f"{self.name}: SSO not ready after {timeout}s", r, self.gw.log_tail(40))
        if not bearer_identity:
            # The client-credentials token has no identity under this
            # site's consumer_claim (e.g. email): bearer requests get 401.
            return r
        first = probe.request("GET", self.url(protected), headers=bearer, accept="application/json", cookies=False)
        if first.status == 503:
            STARTUP_RACES.append((self.name, "login redirect served while the bearer check still got 503",
                                  [ln for ln in self.gw.log_text().splitlines() if "wasm log" in ln][-5:]))
        b, _ = wait_until(lambda: probe.request("GET", self.url(protected), headers=bearer,
                                                accept="application/json", cookies=False),
                          lambda x: x.status != 503, timeout, 0.1)
        assert b.status == 200, (f"{self.name}: bearer check", b, self.gw.log_tail(40))
        return r

    def stop(self) -> None:
        if self.gw is not None:
            self.gw.stop()


def new_port(taken: set[int]) -> int:
    while True:
        p = harness.free_port()
        if p not in taken:
            taken.add(p)
            return p


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    taken: set[int] = set()
    return {k: new_port(taken) for k in ("idp_a", "idp_b", "idp_c", "idp_d", "idp_e",
                                         "main", "black", "expiry", "big", "late", "rotate")}


@pytest.fixture(scope="module")
def sites(ports):
    s = {k: Site(k, ports[k]) for k in ("main", "black", "expiry", "big", "late", "rotate")}
    yield s
    for site in s.values():
        site.stop()


def _idp(port: int, name: str, sites_: list[Site], **kw) -> Idp:
    env = {"IDP_ID_TOKEN_ALL_CLAIMS": "1", **kw.pop("env", {})}
    return Idp(port=port, name=name,
               redirect_uris=[s.callback for s in sites_],
               post_logout_redirect_uris=[u for s in sites_ for u in s.post_logout_uris()],
               env=env, **kw)


@pytest.fixture(scope="module")
def idp_a(ports, sites):
    with _idp(ports["idp_a"], "sso-a", [sites["main"], sites["black"]]) as idp:
        yield idp


@pytest.fixture(scope="module")
def main_site(sites, idp_a, echo, wasm) -> Site:
    site = sites["main"]
    site.idp = idp_a
    site.start(sso_config(idp_a.issuer, SECRET_A), idp_a.port, echo.port, wasm)
    site.wait_sso_ready()
    return site


@pytest.fixture(scope="module")
def black_site(sites, idp_a, echo, wasm) -> Site:
    site = sites["black"]
    site.idp = idp_a
    cfg = sso_config(idp_a.issuer, SECRET_B, match_type="blacklist",
                     match_list=[{"match_rule_domain": "", "match_rule_path": "/private", "match_rule_type": "prefix"}])
    site.start(cfg, idp_a.port, echo.port, wasm)
    site.wait_sso_ready("/private/ready-probe")  # / is not on the blacklist
    return site


@pytest.fixture(scope="module")
def expiry_site(ports, sites, echo, wasm) -> Site:
    site = sites["expiry"]
    # No IdP help needed for refresh tokens: the plugin sends
    # prompt=consent with offline_access, as OIDC Core 11 asks.
    with _idp(ports["idp_b"], "sso-b-expiry", [site], access_token_ttl=EXPIRY_TTL,
              env={}) as idp:
        site.idp = idp
        site.start(sso_config(idp.issuer, SECRET_A), idp.port, echo.port, wasm)
        site.wait_sso_ready()
        yield site
        site.stop()


@pytest.fixture(scope="module")
def big_site(ports, sites, echo, wasm) -> Site:
    site = sites["big"]
    with _idp(ports["idp_c"], "sso-c-big", [site], env={"IDP_BIG_CLAIM_BYTES": str(BIG_CLAIM)}) as idp:
        site.idp = idp
        site.start(sso_config(idp.issuer, SECRET_A), idp.port, echo.port, wasm)
        site.wait_sso_ready()
        yield site
        site.stop()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def authorize_endpoint(site: Site) -> str:
    return site.idp.discovery()["authorization_endpoint"]


def is_authorize(site: Site, url: str | None) -> bool:
    return url is not None and url.split("?", 1)[0] == authorize_endpoint(site)


def is_callback(site: Site):
    return lambda u: u.split("?", 1)[0] == site.callback


def echo_of(page: Page | Resp, path: str) -> dict:
    """The echo upstream's answer for ``path`` (the page was served)."""
    final = page.final if isinstance(page, Page) else page
    assert final.status == 200, page
    assert "application/json" in (final.headers.get("Content-Type") or ""), page
    echo = final.json()
    assert echo["path"] == path, (echo["path"], path, page)
    return echo


def cookie_names_in(header: str | list | None) -> list[str]:
    if header is None:
        return []
    if isinstance(header, list):
        header = "; ".join(header)
    return [p.split("=", 1)[0].strip() for p in header.split(";") if p.strip()]


def ours(name: str) -> bool:
    return name == COOKIE or name.startswith(COOKIE + "_")


def set_cookie_attrs(line: str) -> dict[str, str | bool]:
    out: dict[str, str | bool] = {}
    for p in line.split(";")[1:]:
        k, s, v = p.strip().partition("=")
        out[k.lower()] = v if s else True
    return out


def session_lines(resp: Resp) -> dict[str, str]:
    """Set-Cookie lines that store (not clear) a session cookie part."""
    return {n: line for n, line in resp.set_cookie_names().items()
            if (n == COOKIE or (n.startswith(COOKIE + "_") and n[len(COOKIE) + 1:].isdigit()))
            and set_cookie_attrs(line).get("max-age") != "0" and line.split(";", 1)[0] != f"{n}="}


def cleared(resp: Resp, name: str) -> bool:
    line = resp.set_cookie_names().get(name)
    return line is not None and set_cookie_attrs(line).get("max-age") == "0"


def sign_in(site: Site, path: str, browser: Browser | None = None, login: str = "alice") -> tuple[Browser, Page]:
    """A full browser login starting at ``path``; the page must be served."""
    browser = browser or Browser(login=login, name=f"{site.name}-{login}")
    page = browser.navigate(site.url(path))
    echo_of(page, path)
    return browser, page


def callback_response(page: Page, site: Site) -> Resp:
    hits = page.visited(lambda r: r.url.split("?", 1)[0] == site.callback)
    assert len(hits) == 1, page
    return hits[0]


def assert_login_redirect(site: Site, r: Resp) -> dict[str, str]:
    """302 to the IdP's authorization endpoint with a login cookie; the
    authorization request's parameters."""
    assert r.status == 302 and is_authorize(site, r.location), r
    q = query(r.location)
    assert q.get("response_type") == "code", q
    assert q.get("client_id") == APP1.client_id, q
    assert q.get("redirect_uri") == site.callback, q
    assert q.get("scope") == "openid email profile offline_access", q
    assert q.get("code_challenge_method") == "S256" and len(q.get("code_challenge", "")) == 43, q
    assert len(q.get("state", "")) >= 22 and len(q.get("nonce", "")) >= 22, q
    csrf = {n: line for n, line in r.set_cookie_names().items() if n.startswith(CSRF_PREFIX)}
    assert len(csrf) == 1, r
    attrs = set_cookie_attrs(next(iter(csrf.values())))
    assert attrs.get("httponly") is True and attrs.get("max-age") == "600", csrf
    assert "secure" not in attrs, csrf  # cookie_secure: false
    return q


def wait_until(fn, until, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    history = []
    while True:
        result = fn()
        history.append(result)
        if until(result) or time.monotonic() > deadline:
            return result, history
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Login
# ---------------------------------------------------------------------------


def test_navigation_redirects_to_idp_and_xhr_gets_401(main_site, echo):
    site = main_site
    before = echo.count()
    b = Browser(name="anon")
    q = assert_login_redirect(site, b.request("GET", site.url("/app/page?x=1")))
    q2 = assert_login_redirect(site, b.request("HEAD", site.url("/app/page")))
    assert q["state"] != q2["state"] and q["nonce"] != q2["nonce"], (q, q2)

    def assert_401(r: Resp) -> None:
        assert r.status == 401, r
        assert r.text == "Authentication required.", r
        ch = r.headers.get_all("WWW-Authenticate") or []
        assert len(ch) == 1 and ch[0].startswith("Bearer realm="), r
        assert not any(ours(n) for n in r.set_cookie_names()), r

    assert_401(b.request("GET", site.url("/app/api"), headers=XHR))
    assert_401(b.request("GET", site.url("/app/api"), accept="application/json"))
    assert_401(b.request("GET", site.url("/app/api"), accept=None))
    assert_401(b.request("POST", site.url("/app/form"), body="a=1",
                         headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert echo.count() == before, "nothing may reach the upstream unauthenticated"


def test_login_forwards_verified_id_token(main_site):
    site, idp = main_site, main_site.idp
    b = Browser(login="alice", name="alice")
    b.jar.set("theme", "dark")  # an application cookie: must reach the upstream
    path = "/app/profile?tab=1&q=ab"
    page = b.navigate(site.url(path))
    echo = echo_of(page, path)
    assert b.forms_submitted == ["login", "consent"], (b.forms_submitted, page)

    # The authorization request and the callback.
    auth = page.visited(lambda r: is_authorize(site, r.url))
    assert auth, page
    nonce = query(auth[0].url)["nonce"]
    cb = callback_response(page, site)
    assert cb.status == 302 and cb.headers["Location"] == path, cb
    stored = session_lines(cb)
    assert list(stored) == [COOKIE], cb
    attrs = set_cookie_attrs(stored[COOKIE])
    assert attrs.get("httponly") is True and attrs.get("path") == "/" and "secure" not in attrs, stored
    assert attrs.get("max-age") == str(24 * 3600), stored
    csrf = [n for n in cb.set_cookie_names() if n.startswith(CSRF_PREFIX)]
    assert len(csrf) == 1 and cleared(cb, csrf[0]), cb
    assert not b.jar.matching(lambda n: n.startswith(CSRF_PREFIX)), b.jar

    # What the upstream saw.
    h = echo["headers"]
    scheme, _, id_token = h["authorization"].partition(" ")
    assert scheme == "Bearer" and id_token.count(".") == 2, h
    header, claims, _ = jf.decode(id_token)
    assert header.get("kid") in idp.keys and jf.verify(id_token, idp.keys[header["kid"]]), header
    assert claims["iss"] == idp.issuer, claims
    assert claims["aud"] == APP1.client_id or APP1.client_id in claims["aud"], claims
    assert claims["nonce"] == nonce, (claims, nonce)
    assert claims["sub"] == "alice" and claims["exp"] > time.time(), claims
    assert h.get("x-mse-consumer") == "alice", h
    assert h.get("x-user-email") == "alice@example.test", h
    assert b64url_json(h["x-userinfo"]) == claims, h["x-userinfo"]
    assert h.get("x-forwarded-access-token"), h
    sent = cookie_names_in(h.get("cookie"))
    assert "theme" in sent, h.get("cookie")
    assert not [n for n in sent if ours(n)], h.get("cookie")

    # Signed in: the next navigation goes straight through, nothing re-set;
    # identity headers a client sends are replaced, not passed on.
    r = b.request("GET", site.url("/app/next"), headers=SPOOFED)
    h2 = echo_of(r, "/app/next")["headers"]
    assert not session_lines(r), r
    assert h2["authorization"] == h["authorization"], h2
    for name in SPOOFED:
        # The plugin's own value, once (the same as on the unspoofed request).
        assert h2.get(name) == h[name] and isinstance(h[name], str), (name, h2.get(name))
    assert h2["x-mse-consumer"] == "alice" and h2["x-user-email"] == "alice@example.test", h2
    assert h2["x-userinfo"] == h["x-userinfo"], h2
    # XHR with the session cookie is served too.
    echo_of(b.request("GET", site.url("/app/api"), headers=XHR, accept="application/json"), "/app/api")


@pytest.mark.parametrize("path", ["/app/search?q=a%20b", "/app/search?next=%2Fhome&x=%C3%A9", "/app/a%20b"])
def test_login_returns_to_urls_with_encoded_characters(main_site, path):
    """The original URL comes back exactly, percent-encoding included (an
    encoded space or slash in a query is an ordinary link)."""
    b = Browser(login="alice", name="encoded")
    page = b.navigate(main_site.url(path))
    cb = callback_response(page, main_site)
    assert cb.status == 302 and session_lines(cb), cb
    assert cb.headers["Location"] == path, ("callback sent the browser elsewhere", cb.headers["Location"], path)
    echo_of(page, path)


def test_parallel_logins_finish_in_reverse_order(main_site):
    site = main_site
    b = Browser(login="carol", name="two-tabs")
    r1 = b.request("GET", site.url("/app/one?tab=1"))
    r2 = b.request("GET", site.url("/app/two?tab=2"))
    q1, q2 = assert_login_redirect(site, r1), assert_login_redirect(site, r2)
    assert q1["state"] != q2["state"]
    assert len(b.jar.matching(lambda n: n.startswith(CSRF_PREFIX))) == 2, b.jar
    # Tab two signs in (login form) and lands on its own page ...
    p2 = b.navigate(r2.location)
    echo_of(p2, "/app/two?tab=2")
    assert b.forms_submitted == ["login", "consent"], b.forms_submitted
    # ... then tab one continues at the IdP (already signed in there).
    p1 = b.navigate(r1.location)
    echo_of(p1, "/app/one?tab=1")
    # No second login form; the consent page comes back because the plugin
    # asks for prompt=consent with offline_access (OIDC Core 11).
    assert b.forms_submitted == ["login", "consent", "consent"], ("no second login expected", b.forms_submitted)
    assert not b.jar.matching(lambda n: n.startswith(CSRF_PREFIX)), b.jar
    assert echo_of(b.request("GET", site.url("/app/three")), "/app/three")["headers"]["x-mse-consumer"] == "carol"


# ---------------------------------------------------------------------------
# Cookies that must not open a session
# ---------------------------------------------------------------------------


def _flip(value: str, at: int) -> str:
    c = value[at]
    return value[:at] + ("A" if c != "A" else "B") + value[at + 1:]


def test_tampered_truncated_and_foreign_cookies_redirect_to_idp(main_site, black_site):
    site = main_site
    b, _ = sign_in(site, "/app/mine", login="dave")
    value = b.jar.get(COOKIE).value
    assert len(value) > 100, value

    def visit(v: str, name: str = COOKIE) -> Resp:
        other = Browser(name="stolen")
        other.jar.set(name, v)
        return other.request("GET", site.url("/app/mine"))

    # Control: the unmodified value, in another browser, is a session.
    assert echo_of(visit(value), "/app/mine")["headers"]["x-mse-consumer"] == "dave"

    bad = {
        "flipped-middle": _flip(value, len(value) // 2),
        "flipped-start": _flip(value, 3),
        "flipped-end": _flip(value, len(value) - 3),
        "truncated-half": value[: len(value) // 2],
        "truncated-1": value[:-1],
        "truncated-4": value[:-4],
        "extended": value + "AAAA",
        "empty": "",
        "garbage": "not-a-sealed-value",
    }
    for label, v in bad.items():
        r = visit(v)
        assert r.status == 302 and is_authorize(site, r.location), (label, r)
        assert_login_redirect(site, r)
    # A session split into parts is read as one: a lone part is no session.
    r = visit(value, name=COOKIE + "_1")
    assert r.status == 302 and is_authorize(site, r.location), r

    # Sealed with another cookie_secret (the blacklist gateway's), by the
    # same IdP for the same client: no session here.
    bb, _ = sign_in(black_site, "/private/x", login="dave")
    foreign = bb.jar.get(COOKIE).value
    assert echo_of(bb.request("GET", black_site.url("/private/y")), "/private/y")["headers"]["x-mse-consumer"] == "dave"
    r = visit(foreign)
    assert r.status == 302 and is_authorize(site, r.location), r
    # The login cookie's sealed state is bound to its own name too.
    r = visit(value, name=CSRF_PREFIX + "x")
    assert r.status == 302 and is_authorize(site, r.location), r


# ---------------------------------------------------------------------------
# Callback refusals
# ---------------------------------------------------------------------------


def test_replayed_callback_is_refused(main_site):
    site, idp = main_site, main_site.idp
    b = Browser(login="erin", name="victim")
    page = b.navigate(site.url("/app/replay"), stop_at=is_callback(site))
    cb_url = page.final.location
    assert cb_url and is_callback(site)(cb_url) and "code" in query(cb_url), page
    login_cookies = [(c.name, c.value) for c in b.jar.matching(lambda n: n.startswith(CSRF_PREFIX))]
    assert len(login_cookies) == 1, b.jar
    done = b.navigate(cb_url)
    echo_of(done, "/app/replay")

    # Same browser, same URL again: its login cookie is gone.
    r = b.request("GET", cb_url)
    assert r.status == 403, r
    assert not session_lines(r), r

    # An attacker with the URL and the login cookie: the plugin exchanges
    # the code again and the IdP refuses it.
    tokens_before = len(idp.request_lines("POST", "/token"))
    a = Browser(name="attacker")
    for name, value in login_cookies:
        a.jar.set(name, value)
    r = a.request("GET", cb_url)
    assert r.status == 403, r
    assert "text/html" in (r.headers.get("Content-Type") or ""), r
    assert not session_lines(r), r
    assert COOKIE not in a.jar.names(), a.jar
    lines = idp.request_lines("POST", "/token")[tokens_before:]
    assert any(" 400 " in ln for ln in lines), ("the IdP should have refused a second exchange", lines)
    # The attacker is not signed in.
    r = a.request("GET", site.url("/app/replay"))
    assert r.status == 302 and is_authorize(site, r.location), r


def test_callback_without_matching_login_is_refused(main_site):
    site = main_site
    b = Browser(name="forger")
    r = b.request("GET", site.url("/app/start"))
    q = assert_login_redirect(site, r)
    cases = {
        "no state": f"{CALLBACK}?code=abc",
        "no code": f"{CALLBACK}?state={q['state']}",
        "other state": f"{CALLBACK}?code=abc&state=not-the-state",
        "nothing": CALLBACK,
    }
    for label, path in cases.items():
        r = b.request("GET", site.url(path))
        assert r.status == 403, (label, r)
        assert not session_lines(r), (label, r)
    # The right state, but no login cookie (another browser).
    r = Browser(name="other").request("GET", site.url(f"{CALLBACK}?code=abc&state={quote(q['state'])}"))
    assert r.status == 403, r


def test_idp_error_gets_a_403_page_without_its_text(main_site):
    site = main_site
    # A person pressing "Cancel" on the IdP's consent page.
    b = Browser(login="frank", name="refuser")
    page = b.navigate(site.url("/app/denied"), consent="abort")
    assert b.forms_submitted == ["login", "abort"], b.forms_submitted
    assert page.status == 403, page
    assert is_callback(site)(page.url) and query(page.url).get("error") == "access_denied", page
    assert "text/html" in (page.final.headers.get("Content-Type") or ""), page
    # No technical text on the page (the reason is in the access log's
    # response code details, edge_auth_sso_refused{idp_error}); a way back.
    assert "access_denied" not in page.text and "End-User aborted interaction" not in page.text, page
    assert '<a href="/">Sign in again</a>' in page.text, page
    assert COOKIE not in b.jar.names(), b.jar

    # An error with markup in it: shown escaped.
    r = b.request("GET", site.url("/app/x"))
    q = assert_login_redirect(site, r)
    evil = "<script>alert(1)</script>"
    r = b.request("GET", site.url(CALLBACK + "?" + urlencode(
        {"error": "access_denied", "error_description": evil, "state": q["state"]})))
    assert r.status == 403, r
    assert "access_denied" not in r.text and "script" not in r.text, r
    assert not session_lines(r), r


# ---------------------------------------------------------------------------
# Sign-out
# ---------------------------------------------------------------------------


def test_sign_out_ends_the_idp_session(main_site, echo):
    site, idp = main_site, main_site.idp
    b, page = sign_in(site, "/app/before", login="grace")
    id_token = echo_of(page, "/app/before")["headers"]["authorization"].split(" ", 1)[1]

    # Control: without the gateway cookie, the live IdP session signs the
    # browser in again without a login form (only the consent that
    # prompt=consent asks for with offline_access).
    b.jar.delete(COOKIE)
    again = b.navigate(site.url("/app/silent"), sign_in=False)
    echo_of(again, "/app/silent")
    assert b.forms_submitted == ["login", "consent", "consent"], b.forms_submitted
    assert b.jar.get(COOKIE) is not None

    r = b.request("GET", site.url(SIGN_OUT))
    assert r.status == 302, r
    assert cleared(r, COOKIE), r
    assert COOKIE not in b.jar.names(), b.jar
    end = idp.discovery()["end_session_endpoint"]
    assert r.location.split("?", 1)[0] == end, r
    q = query(r.location)
    assert q.get("client_id") == APP1.client_id, q
    assert q.get("post_logout_redirect_uri") == site.url("/bye"), q
    hint = q.get("id_token_hint")
    assert hint and jf.decode(hint)[1]["sub"] == "grace", q
    assert jf.decode(hint)[1]["iss"] == idp.issuer

    # The IdP asks, the person confirms, the IdP sends the browser to /bye.
    bye = b.navigate(r.location, sign_in=False)
    assert b.forms_submitted[-1] == "logout", b.forms_submitted
    assert bye.status == 200 and urlsplit(bye.url).path == "/bye", bye
    assert bye.url.startswith(site.url("/bye")), bye

    # The IdP session is gone: the next protected page needs the login form.
    nxt = b.navigate(site.url("/app/after"), sign_in=False)
    assert Browser.is_login_page(nxt.final), nxt
    assert nxt.url.startswith(idp.issuer), nxt
    assert id_token.count(".") == 2


@pytest.mark.parametrize("rd", [
    "//evil.com",
    "//evil.com/path",
    "/\\evil.com",
    "\\\\evil.com",
    "https:evil.com",
    "http:/evil.com",
    "https://evil.com/",
    "https://127.0.0.1.evil.com/",
    "https://127.0.0.1@evil.com/",
    "%2F%2Fevil.com",
    "/%2F%2Fevil.com",
    "%252F%252Fevil.com",
    "/\t/evil.com",
    "javascript:alert(1)",
])
def test_sign_out_refuses_open_redirects(main_site, rd):
    site = main_site
    for raw in (quote(rd, safe=""), rd if all(c not in rd for c in " \t#&") else None):
        if raw is None:
            continue
        r = Browser(name="rd").request("GET", site.url(f"{SIGN_OUT}?rd={raw}"))
        assert r.status == 302, (rd, raw, r)
        target = query(r.location).get("post_logout_redirect_uri")
        assert target == site.url("/bye"), (rd, raw, r.location)
        assert "evil" not in r.location, (rd, raw, r.location)


def test_sign_out_follows_a_safe_rd(main_site):
    site = main_site
    for rd, expected in (("/after", site.url("/after")), (site.url("/after"), site.url("/after")),
                         ("/after?x=1", site.url("/after?x=1"))):
        r = Browser(name="rd").request("GET", site.url(f"{SIGN_OUT}?rd={quote(rd, safe='')}"))
        assert r.status == 302, r
        assert query(r.location).get("post_logout_redirect_uri") == expected, (rd, r.location)
        assert "id_token_hint" not in query(r.location), r.location  # no session: no hint


# ---------------------------------------------------------------------------
# Match rules
# ---------------------------------------------------------------------------


def test_whitelist_paths_skip_auth(main_site):
    site = main_site
    b = Browser(name="anon")
    for path in ("/public", "/public/docs?x=1", "/bye"):
        r = b.request("GET", site.url(path), headers=SPOOFED)
        h = echo_of(r, path)["headers"]
        assert "authorization" not in h, h
        for name in SPOOFED:
            assert name not in h, ("client-sent identity header passed on anonymously", name, h)
        assert not r.set_cookies, r
    echo_of(b.request("GET", site.url("/public/api"), headers=XHR, accept="application/json"), "/public/api")
    # /bye is an exact rule: /bye/more is protected.
    assert_login_redirect(site, b.request("GET", site.url("/bye/more")))


def test_blacklist_only_listed_paths_need_auth(black_site):
    site = black_site
    b = Browser(login="heidi", name="black")
    for path in ("/", "/open", "/app/x", "/priv"):
        h = echo_of(b.request("GET", site.url(path), headers=SPOOFED), path)["headers"]
        assert not [n for n in SPOOFED if n in h], h
    assert_login_redirect(site, b.request("GET", site.url("/private")))
    assert_login_redirect(site, b.request("GET", site.url("/private/x?y=1")))
    assert b.request("GET", site.url("/private/x"), headers=XHR).status == 401
    _, page = sign_in(site, "/private/x?y=1", browser=b)
    h = echo_of(page, "/private/x?y=1")["headers"]
    assert h["x-mse-consumer"] == "heidi" and h["x-user-email"] == "heidi@example.test", h


# ---------------------------------------------------------------------------
# API clients with IdP access tokens
# ---------------------------------------------------------------------------


def test_bearer_api_client(main_site):
    site, idp = main_site, main_site.idp
    api = Browser(name="api")
    for resource in (RS256_RESOURCE, ES256_RESOURCE):
        token = idp.client_credentials_token(APP1, resource)
        sub = jf.decode(token)[1]["sub"]
        r = api.request("GET", site.url("/api/orders"), accept="application/json",
                        headers={"Authorization": f"Bearer {token}", **SPOOFED}, cookies=False)
        h = echo_of(r, "/api/orders")["headers"]
        assert h.get("x-mse-consumer") == sub, (resource, h)
        assert not r.set_cookies, r
    # A token signed by a stranger's key, or expired: refused, not sent to log in.
    stranger = jf.rsa_key("RS256", kid=next(iter(idp.keys)))
    forged = jf.sign_jwt(jf.claims(idp.issuer, RS256_RESOURCE, sub="mallory"), stranger, typ="at+jwt")
    now = int(time.time())
    expired = idp.forge("RS256", sub="late-app", iat=now - 7200, exp=now - 3600)
    for bad in (forged, expired, "not.a.jwt"):
        r = api.request("GET", site.url("/api/orders"), accept="application/json",
                        headers={"Authorization": f"Bearer {bad}"}, cookies=False)
        assert r.status == 401, r
        assert r.headers.get("Location") is None, r


# ---------------------------------------------------------------------------
# Refresh
# ---------------------------------------------------------------------------


def test_refresh_after_access_token_expiry(expiry_site):
    site, idp = expiry_site, expiry_site.idp
    b = Browser(login="ivan", name="refresher")
    page = b.navigate(site.url("/app/r"), stop_at=is_callback(site))
    cb_url = page.final.location
    login_cookies = [(c.name, c.value) for c in b.jar.matching(lambda n: n.startswith(CSRF_PREFIX))]
    page = b.navigate(cb_url)
    h0 = echo_of(page, "/app/r")["headers"]
    first = b.jar.get(COOKIE).value
    at0 = h0["x-forwarded-access-token"]
    token_calls = len(idp.request_lines("POST", "/token"))

    # Wait until the access token (EXPIRY_TTL s) has expired: the next
    # request is refreshed before it is forwarded, with a new cookie.
    def step():
        return b.request("GET", site.url("/app/r"))

    r, hist = wait_until(step, lambda r: r.status != 200 or bool(session_lines(r)), EXPIRY_TTL + 15, 0.5)
    assert r.status == 200 and session_lines(r), (r, [x.status for x in hist])
    h1 = echo_of(r, "/app/r")["headers"]
    assert list(session_lines(r)) == [COOKIE], r
    assert b.jar.get(COOKIE).value != first
    assert h1["x-forwarded-access-token"] != at0, "a refreshed session should carry the new access token"
    assert h1["x-mse-consumer"] == "ivan", h1
    assert len(idp.request_lines("POST", "/token")) > token_calls, idp.log_tail()
    # The refreshed cookie is a session on its own (no second refresh yet).
    r2 = b.request("GET", site.url("/app/r2"))
    echo_of(r2, "/app/r2")

    # Refresh refused: replaying the code makes the IdP revoke the grant
    # (and its refresh token). After the next expiry, an XHR gets 401 and
    # the session cookie cleared; a navigation goes to log in.
    a = Browser(name="replayer")
    for name, value in login_cookies:
        a.jar.set(name, value)
    assert a.request("GET", cb_url).status == 403
    xhr_browser = Browser(name="xhr-copy")
    xhr_browser.jar.set(COOKIE, b.jar.get(COOKIE).value)

    r, hist = wait_until(lambda: xhr_browser.request("GET", site.url("/app/api"), headers=XHR,
                                                     accept="application/json"),
                         lambda r: r.status != 200, EXPIRY_TTL + 15, 0.5)
    assert r.status == 401, (r, [x.status for x in hist])
    assert cleared(r, COOKIE), r
    r = b.request("GET", site.url("/app/r3"))
    assert r.status == 302 and is_authorize(site, r.location), r
    assert cleared(r, COOKIE), r
    assert COOKIE not in b.jar.names(), b.jar


# ---------------------------------------------------------------------------
# Big ID tokens: the session split over several cookies
# ---------------------------------------------------------------------------


def test_large_id_token_is_split_over_cookies(big_site):
    site = big_site
    b, page = sign_in(site, "/app/big", login="judy")
    cb = callback_response(page, site)
    parts = session_lines(cb)
    names = sorted(parts)
    assert len(names) >= 2 and names == [f"{COOKIE}_{i}" for i in range(len(names))], cb
    for line in parts.values():
        assert len(line) < 4096, len(line)
        attrs = set_cookie_attrs(line)
        assert attrs.get("httponly") is True and attrs.get("path") == "/", line
    h = echo_of(page, "/app/big")["headers"]
    id_token = h["authorization"].split(" ", 1)[1]
    claims = jf.decode(id_token)[1]
    assert len(claims.get("big_claim", "")) == BIG_CLAIM, sorted(claims)
    assert len(id_token) >= 4096, len(id_token)
    assert h["x-mse-consumer"] == "judy", h
    assert not [n for n in cookie_names_in(h.get("cookie")) if ours(n)], h.get("cookie")

    # The parts together are the session: served without the IdP.
    r = b.request("GET", site.url("/app/big2"))
    assert echo_of(r, "/app/big2")["headers"]["x-mse-consumer"] == "judy"
    assert not session_lines(r), r
    # One part missing: no session.
    c = Browser(name="half")
    c.jar.set(f"{COOKIE}_0", b.jar.get(f"{COOKIE}_0").value)
    r = c.request("GET", site.url("/app/big3"))
    assert r.status == 302 and is_authorize(site, r.location), r

    # Sign-out clears every part.
    r = b.request("GET", site.url(SIGN_OUT))
    assert r.status == 302, r
    for n in names:
        assert cleared(r, n), (n, r)
    assert not b.jar.matching(ours), b.jar


# ---------------------------------------------------------------------------
# IdP down when Envoy starts
# ---------------------------------------------------------------------------


def test_idp_down_at_start_then_recovers(ports, sites, echo, wasm):
    site = sites["late"]
    idp = _idp(ports["idp_d"], "sso-d-late", [site])
    site.idp = idp
    try:
        site.start(sso_config(idp.issuer, SECRET_A), idp.port, echo.port, wasm)
        b = Browser(login="kim", name="early")
        # Public paths do not need the IdP.
        echo_of(b.request("GET", site.url("/public/status")), "/public/status")
        for r in (b.request("GET", site.url("/app/early")),
                  b.request("GET", site.url("/app/early"), headers=XHR, accept="application/json")):
            assert r.status == 503, r
            values = r.headers.get_all("Retry-After") or []
            assert len(values) == 1 and retry_after_ok(values[0]), r
            assert not any(ours(n) for n in r.set_cookie_names()), r
        idp.start()
        t0 = time.monotonic()
        r, hist = wait_until(lambda: b.request("GET", site.url("/app/early"), cookies=False),
                             lambda r: r.status != 503, LATE_START_WAIT, 0.5)
        assert r.status == 302 and is_authorize(site, r.location), (r, len(hist))
        # At once, as a quick browser would: sign in; the callback needs the keys.
        quick = b.navigate(site.url("/app/quick"))
        if quick.status != 200:
            STARTUP_RACES.append((site.name, f"sign-in right after recovery: {quick.status} {quick.text[:200]}",
                                  [ln for ln in site.gw.log_text().splitlines() if "wasm log" in ln][-5:]))
        print(f"late IdP: gateway recovered {time.monotonic() - t0:.1f}s after the IdP started")
        # Recovery proper (the race above is test_no_login_redirect_before_signing_keys's
        # business): once the keys are in (a bearer request is served), signing in works.
        bearer = {"Authorization": f"Bearer {idp.client_credentials_token(APP1, RS256_RESOURCE)}"}
        r, _ = wait_until(lambda: b.request("GET", site.url("/app/api"), headers=bearer,
                                            accept="application/json", cookies=False),
                          lambda r: r.status != 503, LATE_START_WAIT, 0.2)
        assert r.status == 200, r
        b = Browser(login="kim", name="later")
        page = b.navigate(site.url("/app/early"))
        assert echo_of(page, "/app/early")["headers"]["x-mse-consumer"] == "kim"
    finally:
        site.stop()
        idp.stop()


def test_sign_in_right_after_idp_key_rotation(ports, sites, echo, wasm):
    """The IdP rotates its signing keys (new kids, old ones gone). The next
    sign-in's ID token names a kid the gateway has never seen: the callback
    fetches the IdP's JWKS once and the sign-in succeeds at once, with no
    wait for the periodic key refresh (10 minutes by default)."""
    site = sites["rotate"]
    with _idp(ports["idp_e"], "sso-e-rotate", [site]) as idp:
        site.idp = idp
        try:
            site.start(sso_config(idp.issuer, SECRET_A), idp.port, echo.port, wasm)
            site.wait_sso_ready()
            sign_in(site, "/app/before", login="lee")
            rotated, _ = make_keyset(tag="rotated")
            idp.restart(keyset=rotated)
            fetches = idp.jwks_fetches()
            browser, page = sign_in(site, "/app/after", login="lee")
            assert echo_of(page, "/app/after")["headers"]["x-mse-consumer"] == "lee"
            assert idp.jwks_fetches() == fetches + 1, idp.log_tail(20)
            # The session made with the new keys is good on the next request.
            again = browser.request("GET", site.url("/app/again"))
            assert echo_of(again, "/app/again")["headers"]["x-mse-consumer"] == "lee"
        finally:
            site.stop()


def test_no_login_redirect_before_signing_keys(ports, echo, wasm):
    """Contract: until discovery *and* keys are loaded, protected requests get
    503. A gateway that already redirects to the IdP but still lacks the
    keys turns a quick sign-in into a 403 ("signing keys not available
    yet") after burning the code.

    The gateway reaches its IdP through a fault proxy that refuses the JWKS:
    once the proxy has seen discovery served and a key fetch refused (the
    JWKS URL is only known from discovery), the gateway is held in exactly
    the state the contract is about, for as long as the test needs. Then
    the keys are let through and the same browser signs in (the positive
    control: the 503s were about the keys, not a broken site)."""
    taken = set(ports.values())
    site = Site("nokeys", new_port(taken))
    with _idp(new_port(taken), "sso-f-nokeys", [site]) as idp, FaultProxy(idp.port) as proxy:
        site.idp = idp
        discovery_path = "/.well-known/openid-configuration"
        jwks_path = urlsplit(idp.discovery()["jwks_uri"]).path
        proxy.refuse(jwks_path)
        try:
            site.start(sso_config(idp.issuer, SECRET_A), proxy.port, echo.port, wasm)
            proxy.wait_for(lambda: proxy.seen(discovery_path, 200) >= 1 and proxy.seen(jwks_path, 503) >= 1,
                           SSO_READY_WAIT, "discovery served, then a refused key fetch")
            b = Browser(login="nina", name="nokeys")
            bearer = {"Authorization": f"Bearer {idp.client_credentials_token(APP1, RS256_RESOURCE)}"}
            for r in (b.request("GET", site.url("/app/early")),
                      b.request("GET", site.url("/app/early"), headers=XHR, accept="application/json"),
                      b.request("GET", site.url("/app/api"), headers=bearer, accept="application/json")):
                assert r.status == 503, (r, site.gw.log_tail(20))
                values = r.headers.get_all("Retry-After") or []
                assert len(values) == 1 and retry_after_ok(values[0]), r
                assert r.location is None, r
                assert not any(ours(n) for n in r.set_cookie_names()), r
            # Still refused while we looked: the 503s above were answered without keys.
            assert proxy.seen(jwks_path, 200) == 0
            assert idp.request_count("GET", "/auth") == 0, idp.log_tail(10)

            proxy.allow(jwks_path)
            r, _ = wait_until(lambda: b.request("GET", site.url("/app/early"), cookies=False),
                              lambda r: r.status != 503, LATE_START_WAIT, 0.2)
            assert r.status == 302 and is_authorize(site, r.location), r
            assert proxy.seen(jwks_path, 200) >= 1
            page = b.navigate(site.url("/app/now"))
            assert echo_of(page, "/app/now")["headers"]["x-mse-consumer"] == "nina"
        finally:
            site.stop()
    # The other gateway starts in this module are watched for the same race
    # (see Site.wait_sso_ready); empty when this test runs alone.
    assert not STARTUP_RACES, STARTUP_RACES
