"""Path and host spellings that must not get around a decision (issue 8 §2).

Every gateway here runs in an Envoy with its own normalization explicitly
OFF (``normalize_path: false``, ``merge_slashes: false``,
``path_with_escaped_slashes_action: KEEP_UNCHANGED``): the plugin must decide
on the canonical path and host by itself, whatever Envoy is told.

* SSO blacklist (``/admin`` prefix, ``/secret`` exact, host
  ``api.example.com``) and whitelist (``/public`` prefix, ``/bye`` exact)
  against a real IdP: no session, every spelling of a listed / unlisted
  path, and whether the echo upstream was reached.
* The token endpoint (``/oauth2/token``): dot segments, doubled slashes and
  escapes of it are the token endpoint, answered by the plugin, never
  forwarded.
* ``_match_domain_`` rules: case, port, one trailing dot, absolute form;
  an authority that does not parse gets 400.

What was chosen (README "Security model"): paths compare case-sensitively
except blacklist entries (case-insensitive: ``/ADMIN`` is ``/admin`` to many
upstreams); a blacklist entry also matches the path without ``;parameters``
and without a trailing slash; a whitelist entry must match both the path and
the path without ``;parameters``. A path with no safe canonical form
(``%2F``, ``%5C``, ``\\``, ``%00``, ``%252e``, ``..;``) needs authentication;
on an SSO route a browser without a session gets 400 for it (it cannot be a
login's return address), an API client 401.
"""

from __future__ import annotations

import pytest

import harness
from common import (
    C1,
    C2,
    TOKEN_PATH,
    assert_passed,
    assert_token_response,
    consumers,
    cred_params,
    probe,
    query,
    upstream_saw,
    with_probe,
)
from idp_control import IDP_CLUSTER, Idp
from sso_browser import Browser
from test_sso import SECRET_A, SECRET_B, Site, sso_config

NAV = {"Accept": "text/html"}
XHR = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}


def normalization_off(bootstrap: dict) -> dict:
    """Envoy's own path normalization explicitly off (the defaults today,
    spelled out so a changed default cannot hide a plugin bug)."""
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["normalize_path"] = False
    hcm["merge_slashes"] = False
    hcm["path_with_escaped_slashes_action"] = "KEEP_UNCHANGED"
    return bootstrap


def start_raw_gateway(config: dict, echo_port: int, wasm, name: str, port: int | None = None,
                      idp_port: int | None = None) -> harness.Envoy:
    listener = port or harness.free_port()
    admin = harness.free_port()
    while admin == listener:
        admin = harness.free_port()
    bootstrap = harness.build_bootstrap(
        listener_port=listener, admin_port=admin, upstream_port=echo_port,
        http_filters=harness.gateway_filters(config, wasm))
    if idp_port is not None:
        bootstrap["static_resources"]["clusters"].append(harness.static_cluster(IDP_CLUSTER, idp_port))
    gw = harness.Envoy(normalization_off(bootstrap), listener, admin, name=f"test_bypass_paths-{name}")
    return gw.start()


class RawSite(Site):
    """test_sso's Site, on an Envoy with normalization off."""

    def start(self, config: dict, idp_port: int, echo_port: int, wasm) -> "RawSite":
        self.gw = start_raw_gateway(config, echo_port, wasm, self.name, port=self.port, idp_port=idp_port)
        return self


def send(gw: harness.Envoy, path: str, headers=None, method: str = "GET", host: str | None = None):
    """One request with a fresh probe; (response, did the upstream see it)."""
    p = probe()
    items = with_probe(headers, p)
    if host is not None:
        items.append(("Host", host))
    r = gw.request(method, path, headers=items)
    return r, bool(upstream_saw_after(gw, p, r))


_echo = None


def upstream_saw_after(gw, p, r) -> list[dict]:
    # The echo upstream records a request before it answers, so once the
    # client has its answer the record is there if the request got through.
    return upstream_saw(_echo, p)


@pytest.fixture(scope="module", autouse=True)
def _bind_echo(echo):
    global _echo
    _echo = echo
    yield
    _echo = None


# ---------------------------------------------------------------------------
# SSO match lists
# ---------------------------------------------------------------------------


BLACKLIST = [
    {"match_rule_domain": "", "match_rule_path": "/admin", "match_rule_type": "prefix"},
    {"match_rule_domain": "", "match_rule_path": "/secret", "match_rule_type": "exact"},
    {"match_rule_domain": "api.example.com", "match_rule_path": "/", "match_rule_type": "prefix"},
]
WHITELIST = [
    {"match_rule_domain": "", "match_rule_path": "/public", "match_rule_type": "prefix"},
    {"match_rule_domain": "", "match_rule_path": "/bye", "match_rule_type": "exact"},
]


@pytest.fixture(scope="module")
def sso_sites(echo, wasm):
    taken: set[int] = set()

    def port() -> int:
        while True:
            p = harness.free_port()
            if p not in taken:
                taken.add(p)
                return p

    black, white = RawSite("black", port()), RawSite("white", port())
    idp = Idp(port=port(), name="bypass-paths",
              redirect_uris=[black.callback, white.callback],
              post_logout_redirect_uris=[u for s in (black, white) for u in s.post_logout_uris()],
              env={"IDP_ID_TOKEN_ALL_CLAIMS": "1"})
    with idp:
        for site, secret, over in (
            (black, SECRET_B, {"match_type": "blacklist", "match_list": BLACKLIST}),
            (white, SECRET_A, {"match_type": "whitelist", "match_list": WHITELIST}),
        ):
            site.idp = idp
            site.start(sso_config(idp.issuer, secret, **over), idp.port, echo.port, wasm)
        black.wait_sso_ready("/admin/ready-probe")
        white.wait_sso_ready("/app/ready-probe")
        yield {"black": black, "white": white}
        black.stop()
        white.stop()


def assert_login(site: Site, r) -> None:
    """A login redirect to the IdP (the request needed authentication)."""
    authorize = site.idp.discovery()["authorization_endpoint"]
    assert r.status == 302, r
    assert r.headers["Location"].split("?", 1)[0] == authorize, r


def assert_bad_request(r) -> None:
    assert r.status == 400, r


# Blacklist (/admin prefix, /secret exact): spellings of listed paths. Each
# needs authentication: a navigation is sent to log in. All but the ones
# marked "guard" reached the upstream with 200 before the fix.
BLACK_LISTED = [
    "//admin/x",
    "/./admin/x",
    "/x/../admin/x",
    "/%61dmin/x",
    "/adm%69n/x",
    "/%2e/admin/x",
    "/x/%2e%2e/admin/x",
    "/x/.%2E/admin/x",
    "///admin",
    "/ADMIN/x",  # case: blacklist entries match case-insensitively
    "/Admin",
    "/admin",  # guard
    "/admin/",  # guard
    "/admin/.",  # guard
    "/admin;x",  # guard (prefix)
    "/secret;jsessionid=1",  # exact entry, Tomcat-style parameter
    "/secret%3Bjsessionid=1",  # the same, escaped
    "/secret/",  # exact entry, trailing slash
    "//secret",
    "/x/../secret",
    "/secret/.",
    "/%73ecret",
    "/SECRET",
]
# Unsafe spellings around listed paths: no canonical form. Navigation: 400.
BLACK_UNSAFE = [
    "/admin%2Fx",
    "/x%2F..%2Fadmin",
    "/admin%5Cx",
    "/x%5C..%5Cadmin",
    "/x\\..\\admin",
    "/admin%00",
    "/secret%00",
    "/x/%252e%252e/admin",
    "/x/..;/admin",
    "/admin%zz",
]
# Not listed: served without a session.
BLACK_OPEN = ["/", "/app", "/app/admin", "/secretx", "/secret/x", "/x/admin/.."]


@pytest.mark.parametrize("path", BLACK_LISTED)
def test_blacklist_spellings_need_a_session(sso_sites, path):
    site = sso_sites["black"]
    r, reached = send(site.gw, path, NAV)
    assert_login(site, r)
    assert not reached, (path, r)
    r, reached = send(site.gw, path, XHR)
    assert r.status == 401 and r.text == "Authentication required.", r
    assert not reached, (path, r)


@pytest.mark.parametrize("path", BLACK_UNSAFE)
def test_blacklist_unsafe_paths_are_refused(sso_sites, path):
    site = sso_sites["black"]
    r, reached = send(site.gw, path, NAV)
    assert_bad_request(r)
    assert not reached, (path, r)
    r, reached = send(site.gw, path, XHR)
    assert r.status in (400, 401), r
    assert not reached, (path, r)


@pytest.mark.parametrize("path", BLACK_OPEN)
def test_blacklist_unlisted_paths_pass(sso_sites, path):
    r, reached = send(sso_sites["black"].gw, path, NAV)
    assert r.status == 200 and r.json()["path"] == path, r
    assert reached


@pytest.mark.parametrize("host", ["api.example.com", "API.Example.COM", "api.example.com.",
                                  "api.example.com.:80", "Api.Example.Com.:443"])
def test_blacklist_domain_spellings_need_a_session(sso_sites, host):
    site = sso_sites["black"]
    r, reached = send(site.gw, "/anything", NAV, host=host)
    assert_login(site, r)
    assert not reached, (host, r)


def test_blacklist_bad_authority_is_400(sso_sites):
    site = sso_sites["black"]
    for host in ("api.example.com..", "api.example.com..:80", ".api.example.com"):
        r, reached = send(site.gw, "/anything", NAV, host=host)
        assert_bad_request(r)
        assert not reached, (host, r)


# Whitelist (/public prefix, /bye exact): spellings that leave the listed
# paths. Each reached /app (or /secret) with 200 before the fix.
WHITE_LEAVING = [
    "/public/../app",
    "/public/%2e%2e/app",
    "/public/.%2e/app",
    "/public/%2E./app",
    "/public/x/../../app",
    "/bye/../app",
    "/bye;x",  # exact entry: only /bye itself
    "/bye/",
    "/PUBLIC/x",  # case-sensitive whitelist (guard: also before the fix)
]
WHITE_UNSAFE = [
    "/public/..%2Fapp",
    "/public%2F..%2Fapp",
    "/public/..%5Capp",
    "/public\\..\\app",
    "/public/%252e%252e/app",
    "/public/..;/app",
    "/public/..%3B/app",
    "/public/.;/../app",
    "/public/x%00",
    "/public/%2",
]
# Listed: served without a session, whatever the spelling.
WHITE_LISTED = ["/public", "/public/x", "//public/x", "/./public/x", "/x/../public/x", "/%70ublic/x",
                "/public/x?next=/../app", "/bye", "/public;x", "/public/x;y"]


@pytest.mark.parametrize("path", WHITE_LEAVING)
def test_whitelist_escapes_need_a_session(sso_sites, path):
    site = sso_sites["white"]
    r, reached = send(site.gw, path, NAV)
    assert_login(site, r)
    assert not reached, (path, r)


@pytest.mark.parametrize("path", WHITE_UNSAFE)
def test_whitelist_unsafe_paths_are_refused(sso_sites, path):
    site = sso_sites["white"]
    r, reached = send(site.gw, path, NAV)
    assert_bad_request(r)
    assert not reached, (path, r)
    r, reached = send(site.gw, path, XHR)
    assert r.status in (400, 401), r
    assert not reached, (path, r)


def echoed_path(path: str) -> str:
    """The path as the echo upstream reports it (Python's http.server folds
    a leading ``//`` into ``/``)."""
    return "/" + path.lstrip("/") if path.startswith("//") else path


@pytest.mark.parametrize("path", WHITE_LISTED)
def test_whitelist_listed_spellings_pass(sso_sites, path):
    r, reached = send(sso_sites["white"].gw, path, NAV)
    assert r.status == 200 and r.json()["path"] == echoed_path(path), r
    assert reached


def test_unsafe_path_with_a_session_is_forwarded(sso_sites):
    """An unsafe path needs authentication; it is not refused outright: a
    signed-in browser gets it (as sent) from the upstream."""
    site = sso_sites["white"]
    b = Browser(login="alice", name="bypass-alice")
    page = b.navigate(site.url("/app/home"))
    assert page.final.status == 200 and page.final.json()["path"] == "/app/home", page
    for path in ("/public/..%2Fapp", "/app%2Fx", "/public/..;/app"):
        r = b.request("GET", site.url(path))
        assert r.status == 200, r
        echo = r.json()
        assert echo["path"] == path and echo["headers"].get("x-mse-consumer") == "alice", echo


def test_callback_and_sign_out_spellings(sso_sites):
    """The callback and sign-out paths are recognized in any spelling (a
    callback spelled differently is a callback, not a page to log in for)."""
    site = sso_sites["white"]
    for path in ("/oauth2//callback?code=x&state=y", "/oauth2/./callback?code=x&state=y",
                 "/x/../oauth2/callback?code=x&state=y"):
        r, reached = send(site.gw, path, NAV)
        assert r.status == 403 and "Sign-in failed" in r.text, r  # unknown state: refused
        assert not reached, r
    for path in ("/oauth2//sign_out", "/oauth2/%73ign_out", "/oauth2/x/../sign_out"):
        r, reached = send(site.gw, path, NAV)
        assert r.status == 302, r
        assert any(c.startswith("_edge_auth_session=") for c in r.headers.get_all("Set-Cookie") or []), r
        assert not reached, r


# ---------------------------------------------------------------------------
# Token endpoint
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_gw(echo, wasm):
    """Every route open (global_auth false): a token-endpoint spelling that
    is not recognized would be forwarded."""
    gw = start_raw_gateway({"consumers": consumers(C1, C2), "global_auth": False}, echo.port, wasm, "open")
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def closed_gw(echo, wasm):
    gw = start_raw_gateway({"consumers": consumers(C1, C2)}, echo.port, wasm, "closed")
    yield gw
    gw.stop()


TOKEN_SPELLINGS = [
    "/oauth2/./token",
    "/oauth2//token",
    "//oauth2/token",
    "/x/../oauth2/token",
    "/oauth2/x/../token",
    "/oauth2/%74oken",
    "/%6Fauth2/token",
    "/oauth2/%2e/token",
    "/a/internal/../oauth2/token",
    TOKEN_PATH,  # guard
]


@pytest.mark.parametrize("path", TOKEN_SPELLINGS)
def test_token_endpoint_spellings_are_answered_here(open_gw, path):
    r, reached = send(open_gw, query(path, cred_params(C1)))
    assert_token_response(r, C1)
    assert not reached, (path, r)


@pytest.mark.parametrize("path", ["/oauth2%2Ftoken", "/oauth2%5Ctoken", "/oauth2/token%00", "/oauth2/..;/oauth2/token"])
def test_unsafe_token_paths_are_not_the_token_endpoint(closed_gw, path):
    """No canonical form: not the token endpoint; authentication applies."""
    r, reached = send(closed_gw, query(path, cred_params(C1)))
    assert r.status == 401, r
    assert not reached, (path, r)


# ---------------------------------------------------------------------------
# _match_domain_ rules
# ---------------------------------------------------------------------------


DOMAIN_CONFIG = {
    "consumers": consumers(C1, C2),
    "_rules_": [
        {"_match_domain_": ["api.example.com"], "allow": ["consumer1"]},
        {"_match_domain_": ["*.internal.test"], "allow": ["consumer2"]},
    ],
}


@pytest.fixture(scope="module")
def domain_gw(echo, wasm):
    gw = start_raw_gateway(DOMAIN_CONFIG, echo.port, wasm, "domains")
    yield gw
    gw.stop()


# Hosts a rule with an allow list covers: no token, 401. All but the guards
# reached the upstream with 200 before the fix.
RULED_HOSTS = [
    "api.example.com",  # guard
    "API.EXAMPLE.COM",  # guard
    "api.example.com:80",  # guard
    "api.example.com.",
    "api.example.com.:80",
    "API.Example.Com.:10000",
    "db.internal.test.",
    "DB.Internal.Test.:8080",
]


@pytest.mark.parametrize("host", RULED_HOSTS)
def test_domain_rule_spellings_need_a_token(domain_gw, host):
    r, reached = send(domain_gw, "/x", host=host)
    assert r.status == 401, r
    assert not reached, (host, r)


def test_domain_rule_trailing_dot_applies_the_allow_list(domain_gw):
    from common import issue_token

    # The token endpoint is served where a rule applies (global_auth is absent).
    t1 = issue_token(domain_gw, C1, headers={"Host": "api.example.com"})
    t2 = issue_token(domain_gw, C2, headers={"Host": "api.example.com"})
    r, reached = send(domain_gw, "/x", [("Authorization", f"Bearer {t1}")], host="api.example.com.")
    assert_passed(r, C1, "GET", "/x")
    r, reached = send(domain_gw, "/x", [("Authorization", f"Bearer {t2}")], host="Api.Example.Com.:80")
    assert r.status == 403, r
    assert not reached, r


def test_domain_rule_absolute_form(domain_gw):
    """`GET http://api.example.com./x`: Envoy takes the host from the URL."""
    for target in ("http://api.example.com./x", "http://API.example.com.:80/x", "http://api.example.com/x"):
        r, reached = send(domain_gw, target, host="other.test")
        assert r.status == 401, (target, r)
        assert not reached, (target, r)
    r, reached = send(domain_gw, "http://other.test./x", host="api.example.com")
    assert r.status == 200 and r.json()["path"] == "/x", r
    assert reached


@pytest.mark.parametrize("host", ["api.example.com..", "api.example.com..:80", "..", "a..b",
                                  ".api.example.com", "api.example.com:99999"])
def test_bad_authority_is_400(domain_gw, host):
    r, reached = send(domain_gw, "/x", host=host)
    assert r.status == 400, r
    assert not reached, (host, r)


def test_other_hosts_stay_open(domain_gw):
    for host in ("other.example.com", "example.com.", "internal.test", "api.example.com.evil.test"):
        r, reached = send(domain_gw, "/x", host=host)
        assert r.status == 200 and r.json()["path"] == "/x", (host, r)
        assert reached
