"""An identity provider's answer over the size limit (512 KiB) is an error on
every path, never truncated into something that still parses.

The IdP is the real one behind a fault proxy (``proxied_idp.py``) that
appends whitespace to its token answers: a valid token response followed by
enough whitespace to pass the limit. Cut at the limit, that answer is still
valid JSON; read whole, it is too large. The single sign-on code exchange must
refuse it (no session), while the same answer without the padding signs the
browser in (positive control).
"""

from __future__ import annotations

import harness
from proxied_idp import ProxiedIdp, sign_in_until_callback, sso_site_fixtures
from sso_browser import Browser

LIMIT = 512 * 1024
COOKIE = "_edge_auth_session"


idp, site = sso_site_fixtures("idp_answer_limit", COOKIE, "edge-auth-e2e-cookie-secret-L-0123456789abcdef01")


def session_cookies(r) -> list[str]:
    """Session cookies (not the login's CSRF cookie) set with a value."""
    out = []
    for name, line in r.set_cookie_names().items():
        value = line.split("=", 1)[1].split(";", 1)[0] if "=" in line else ""
        if name.startswith(COOKIE) and not name.startswith(COOKIE + "_csrf") and value:
            out.append(name)
    return out


def login_then_callback(gw: harness.Envoy, idp: ProxiedIdp) -> tuple[Browser, object]:
    """Signs in at the IdP, then comes back to the callback; the callback's
    answer (after the gateway's code exchange through the proxy)."""
    browser = Browser(name="limit")
    callback = sign_in_until_callback(gw, idp, browser)
    return browser, browser.request("GET", callback)


def test_token_answer_within_the_limit_signs_in(site, idp):
    idp.pad_token_answers(0)
    before = idp.token_requests()
    browser, r = login_then_callback(site, idp)
    assert idp.token_requests() == before + 1
    assert r.status == 302, (r, site.log_tail(30))
    assert session_cookies(r), r


def test_padded_token_answer_over_the_limit_is_refused(site, idp):
    # Valid JSON up to the limit and beyond: only reading it whole shows it
    # is too large.
    idp.pad_token_answers(LIMIT + 1024)
    before = idp.token_requests()
    browser, r = login_then_callback(site, idp)
    assert idp.token_requests() == before + 1
    # The flow's answer to an unusable token response.
    assert r.status == 403, (r, site.log_tail(30))
    assert b"<h1>Sign-in failed</h1>" in r.body, r
    assert session_cookies(r) == [], r
    assert site.wait_log("over the 524288-byte limit; refused", timeout=5), site.log_tail(30)
