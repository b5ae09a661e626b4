"""A request the plugin holds while it asks the identity provider (the code
exchange at the callback, a session refresh) never goes upstream early.

With ``allow_on_headers_stop_iteration`` Envoy delivers the body of a
request whose headers the plugin paused. If the plugin let that body
"continue" while its call to the IdP is out, Envoy would send the headers
on with it: before the session is checked and before forged identity
headers are removed. The leak detector is the echo upstream (records at
header arrival); a barrier request through an open path, sent after the
body, must be seen first.

The IdP is the real one; its token answers are held in a fault proxy
(``proxied_idp.py``) so the gateway's call stays out while the body comes.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import harness
from common import probe
from harness import SlowRequest
from proxied_idp import base_url, sign_in_until_callback, sso_site_fixtures
from sso_browser import Browser

COOKIE = "_edge_auth_session"
BODY = b"note=hello&x=" + b"y" * 64


# Access tokens live 1 s: the session needs a refresh right after sign-in.
idp, site = sso_site_fixtures(
    "held_requests", COOKIE, "edge-auth-e2e-cookie-secret-H-0123456789abcdef01", access_token_ttl=1,
    match_type="whitelist",
    match_list=[{"match_rule_domain": "", "match_rule_path": "/open", "match_rule_type": "prefix"}])


def held_post(gw: harness.Envoy, url: str, browser: Browser, p) -> SlowRequest:
    u = urlsplit(url)
    headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Content-Length", str(len(BODY))),
               ("X-Mse-Consumer", "mallory"), ("x_mse_consumer", "mallory"), p]
    cookie = browser.jar.header_for(url)
    if cookie:
        headers.append(("Cookie", cookie))
    return SlowRequest(gw.listener_port, "POST", u.path + (f"?{u.query}" if u.query else ""), headers)


def body_arrives_while_the_call_is_out(gw, idp, echo, req: SlowRequest, p) -> harness.Response:
    """Waits until the plugin's call is at the IdP, sends the body, proves
    with a barrier that nothing went upstream, then lets the IdP answer."""
    try:
        assert idp.token_answer_held(15), gw.log_tail(30)
        req.send(BODY)
        barrier = probe()
        assert gw.get("/open/barrier", headers=[barrier]).status == 200
        assert echo.wait_seen(barrier[1]), "barrier never reached the upstream"
        assert echo.requests_seen(p[1]) == [], "held request went upstream while the IdP call was out"
    finally:
        idp.release()
    return req.response()


def test_callback_with_a_body_is_not_forwarded_during_the_code_exchange(site, idp, echo):
    browser = Browser(name="held-callback")
    callback = sign_in_until_callback(site, idp, browser)
    idp.hold_token_answers()
    p = probe()
    with held_post(site, callback, browser, p) as req:
        r = body_arrives_while_the_call_is_out(site, idp, echo, req, p)
    # The callback is answered by the plugin: a session and a redirect.
    assert r.status == 302, r
    assert any(c.startswith(COOKIE + "=") for c in r.headers.get_all("Set-Cookie") or []), r
    assert echo.requests_seen(p[1]) == []


def test_post_during_a_session_refresh_waits_and_goes_up_with_the_real_identity(site, idp, echo):
    browser = Browser(name="held-refresh")
    callback = sign_in_until_callback(site, idp, browser)
    r = browser.request("GET", callback)
    assert r.status == 302, (r, site.log_tail(30))
    signed_in = int(time.time())
    while int(time.time()) < signed_in + 2:  # the access token has expired
        time.sleep(0.05)
    idp.hold_token_answers()
    p = probe()
    with held_post(site, base_url(site) + "/app/form", browser, p) as req:
        r = body_arrives_while_the_call_is_out(site, idp, echo, req, p)
    # After the refresh the request goes upstream once, with its body, as
    # alice and without the forged identity.
    assert r.status == 200, (r, site.log_tail(30))
    seen = echo.requests_seen(p[1])
    assert len(seen) == 1 and seen[0]["state"] == "complete", seen
    assert seen[0]["body"] == BODY.decode(), seen
    assert seen[0]["headers"].get("x-mse-consumer") == "alice", seen
    assert "x_mse_consumer" not in seen[0]["headers"], seen
