"""Token endpoint: issuance by GET / POST / Basic and every error response."""

from __future__ import annotations

import time

import pytest

import jose_forge as jf
from common import (
    C1,
    C2,
    C3,
    FORM,
    TOKEN_PATH,
    assert_passed,
    assert_token_error,
    assert_token_json_headers,
    assert_token_response,
    assert_unauthorized,
    basic,
    consumers,
    cred_params,
    probe,
    query,
    upstream_saw,
    with_probe,
)
from harness import form

CONFIG = {"consumers": consumers()}
INVALID_CLIENT = "invalid client_id or client_secret"


@pytest.fixture(scope="module")
def gw(start_gateway):
    return start_gateway(CONFIG)


# ---------------------------------------------------------------------------
# Successful issuance
# ---------------------------------------------------------------------------


def test_get_issues_token(gw, echo):
    p = probe()
    t0 = time.time()
    r = gw.get(query(TOKEN_PATH, cred_params(C1)), headers=[p])
    t1 = time.time()
    token, claims = assert_token_response(r, C1, t_before=t0, t_after=t1)
    assert upstream_saw(echo, p) == [], "the token endpoint must answer locally"
    # The signature is exactly HS256(secret) and nothing else verifies it.
    assert not jf.hs_verify(token, C2.client_secret)


def test_post_form_issues_token(gw, echo):
    p = probe()
    r = gw.post_form(TOKEN_PATH, cred_params(C2), headers=[p])
    assert_token_response(r, C2)
    # The echo upstream records a request as soon as its headers arrive, so
    # headers sent on ahead of the body would show here.
    assert upstream_saw(echo, p) == [], "a token POST must never reach the upstream"


def test_post_token_request_never_reaches_upstream(gw, echo):
    """Nothing of a POST token request reaches the upstream: not its
    headers, not its body, whatever credentials or forged headers it has
    (e2e/test_token_body.py covers late, chunked and unfinished bodies)."""
    token = assert_token_response(gw.get(query(TOKEN_PATH, cred_params(C1))), C1)[0]
    p = probe()
    for i in range(5):
        # keep a pooled upstream connection warm so headers could go out at once
        gw.get(f"/b/warm{i}", headers={"Authorization": f"Bearer {token}"})
        r = gw.post(TOKEN_PATH, "grant_type=client_credentials",
                    headers=[("Content-Type", FORM), ("Authorization", basic(C2.client_id, C2.client_secret)),
                             ("X-Mse-Consumer", "consumer1"), p])
        assert_token_response(r, C2)
        r = gw.post_form(TOKEN_PATH, cred_params(C2), headers=[("X-Mse-Consumer", "consumer1"), p])
        assert_token_response(r, C2)
    # Positive control for the detector: a request after them that does go
    # upstream is seen.
    barrier = probe()
    assert gw.get("/b/after", headers=[("Authorization", f"Bearer {token}"), barrier]).status == 200
    assert echo.wait_seen(barrier[1])
    assert upstream_saw(echo, p) == []


def test_post_form_with_charset_parameter(gw):
    r = gw.post(TOKEN_PATH, form(cred_params(C1)), headers={"Content-Type": FORM + "; charset=UTF-8"})
    assert_token_response(r, C1)


def test_basic_credentials_get(gw):
    r = gw.get(f"{TOKEN_PATH}?grant_type=client_credentials",
               headers={"Authorization": basic(C1.client_id, C1.client_secret)})
    assert_token_response(r, C1)


def test_basic_credentials_post(gw):
    r = gw.post(TOKEN_PATH, "grant_type=client_credentials",
                headers={"Content-Type": FORM, "Authorization": basic(C2.client_id, C2.client_secret)})
    assert_token_response(r, C2)


def test_basic_credentials_are_url_decoded(gw):
    # C3's id and secret contain ':', '@', '/', '+', ' ', '%', '=', '&', '?', ';', '#'.
    r = gw.get(f"{TOKEN_PATH}?grant_type=client_credentials",
               headers={"Authorization": basic(C3.client_id, C3.client_secret)})
    assert_token_response(r, C3)


def test_percent_encoded_parameters(gw):
    r = gw.get(query(TOKEN_PATH, cred_params(C3)))
    assert_token_response(r, C3)
    r = gw.post_form(TOKEN_PATH, cred_params(C3))
    assert_token_response(r, C3)


def test_scope_claim_only_when_requested(gw):
    r = gw.get(query(TOKEN_PATH, cred_params(C1, scope="read write")))
    assert_token_response(r, C1, scope="read write")
    r = gw.post_form(TOKEN_PATH, cred_params(C1, scope="orders:read"))
    assert_token_response(r, C1, scope="orders:read")


def test_jti_unique_per_issue(gw):
    jtis = set()
    for _ in range(3):
        _, claims = assert_token_response(gw.get(query(TOKEN_PATH, cred_params(C1))), C1)
        jtis.add(claims["jti"])
    assert len(jtis) == 3, jtis


@pytest.mark.parametrize("path", ["/a/oauth2/token", "/b/x/oauth2/token", "/svc/oauth2/token", "/anything/oauth2/token"])
def test_any_path_ending_with_auth_path_is_the_endpoint(gw, echo, path):
    p = probe()
    r = gw.get(query(path, cred_params(C2)), headers=[p])
    assert_token_response(r, C2)
    assert upstream_saw(echo, p) == []


@pytest.mark.parametrize("path", ["/oauth2/token/", "/oauth2/tokens", "/oauth2/token/x", "/oauth2"])
def test_paths_not_ending_with_auth_path_need_a_token(gw, path):
    r = gw.get(query(path, cred_params(C1)), headers={"Host": "gw.example.test"})
    assert_unauthorized(r, path, token_present=False)


def test_issued_token_is_accepted(gw):
    token = assert_token_response(gw.post_form(TOKEN_PATH, cred_params(C1)), C1)[0]
    r = gw.get("/a/orders?id=1", headers={"Authorization": f"Bearer {token}"})
    assert_passed(r, C1, "GET", "/a/orders?id=1")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_get_without_query(gw, echo):
    p = probe()
    assert_token_error(gw.get(TOKEN_PATH, headers=[p]), 400, "invalid_request", "grant_type is missing")
    assert upstream_saw(echo, p) == []


def test_missing_grant_type_get_and_post(gw):
    assert_token_error(gw.get(query(TOKEN_PATH, cred_params(C1, grant_type=None))),
                       400, "invalid_request", "grant_type is missing")
    assert_token_error(gw.post_form(TOKEN_PATH, cred_params(C1, grant_type=None)),
                       400, "invalid_request", "grant_type is missing")


@pytest.mark.parametrize("grant", ["password", "authorization_code", "CLIENT_CREDENTIALS"])
def test_unsupported_grant_type(gw, grant):
    assert_token_error(gw.get(query(TOKEN_PATH, cred_params(C1, grant_type=grant))), 400, "unsupported_grant_type")


def test_missing_client_id(gw):
    p = [("grant_type", "client_credentials"), ("client_secret", C1.client_secret)]
    assert_token_error(gw.get(query(TOKEN_PATH, p)), 400, "invalid_request", "client_id is missing")
    assert_token_error(gw.post_form(TOKEN_PATH, p), 400, "invalid_request", "client_id is missing")


def test_missing_client_secret(gw):
    p = [("grant_type", "client_credentials"), ("client_id", C1.client_id)]
    assert_token_error(gw.get(query(TOKEN_PATH, p)), 400, "invalid_request", "client_secret is missing")
    assert_token_error(gw.post_form(TOKEN_PATH, p), 400, "invalid_request", "client_secret is missing")


@pytest.mark.parametrize(
    "client_id,client_secret",
    [
        ("no-such-client", C1.client_secret),
        (C1.client_id, C2.client_secret),
        (C1.client_id, C1.client_secret + "x"),
        (C1.client_id, C1.client_secret[:-1]),
        (C1.client_id.upper(), C1.client_secret),
    ],
    ids=["unknown-id", "other-secret", "secret-suffix", "secret-prefix", "id-case"],
)
def test_invalid_client_parameters(gw, client_id, client_secret):
    p = [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", client_secret)]
    r = gw.get(query(TOKEN_PATH, p))
    assert_token_error(r, 400, "invalid_client", INVALID_CLIENT)
    assert r.headers.get("WWW-Authenticate") is None, r
    assert_token_error(gw.post_form(TOKEN_PATH, p), 400, "invalid_client", INVALID_CLIENT)


@pytest.mark.parametrize(
    "client_id,client_secret",
    [("no-such-client", C1.client_secret), (C1.client_id, C2.client_secret), (C3.client_id, "wrong")],
    ids=["unknown-id", "other-secret", "wrong-secret"],
)
def test_invalid_basic_credentials(gw, client_id, client_secret):
    r = gw.get(f"{TOKEN_PATH}?grant_type=client_credentials",
               headers={"Authorization": basic(client_id, client_secret)})
    assert_token_error(r, 401, "invalid_client", INVALID_CLIENT)
    challenges = r.headers.get_all("WWW-Authenticate") or []
    assert len(challenges) == 1 and challenges[0].startswith("Basic"), r


def test_basic_and_parameters_together(gw):
    r = gw.get(query(TOKEN_PATH, cred_params(C1)), headers={"Authorization": basic(C1.client_id, C1.client_secret)})
    assert_token_error(r, 400, "invalid_request")
    r = gw.post(TOKEN_PATH, form(cred_params(C1)),
                headers={"Content-Type": FORM, "Authorization": basic(C1.client_id, C1.client_secret)})
    assert_token_error(r, 400, "invalid_request")


@pytest.mark.parametrize("param", ["grant_type", "client_id", "client_secret", "scope"])
def test_repeated_parameter(gw, param):
    p = cred_params(C1, scope="a")
    p.append((param, dict(p)[param]))
    assert_token_error(gw.get(query(TOKEN_PATH, p)), 400, "invalid_request")
    assert_token_error(gw.post_form(TOKEN_PATH, p), 400, "invalid_request")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_405(gw, echo, method):
    p = probe()
    r = gw.request(method, query(TOKEN_PATH, cred_params(C1)), headers=[("Content-Type", FORM), p],
                   body=form(cred_params(C1)))
    assert_token_error(r, 405, "invalid_request")
    assert r.headers.get_all("Allow") == ["GET, POST"], r
    assert upstream_saw(echo, p) == [], "a 405 from the token endpoint must not reach the upstream"


@pytest.mark.parametrize("ctype", [None, "application/json", "text/plain", "multipart/form-data; boundary=x"])
def test_post_wrong_content_type(gw, echo, ctype):
    p = probe()
    headers = [p] if ctype is None else [("Content-Type", ctype), p]
    r = gw.post(TOKEN_PATH, form(cred_params(C1)), headers=headers)
    assert_token_error(r, 400, "invalid_request")
    assert upstream_saw(echo, p) == []


def test_post_empty_body(gw, echo):
    p = probe()
    r = gw.post(TOKEN_PATH, b"", headers=[("Content-Type", FORM), p])
    assert_token_error(r, 400, "invalid_request", "request body is missing")
    assert upstream_saw(echo, p) == []


def test_post_reads_parameters_from_body_only(gw):
    # Credentials in the query string of a POST are ignored.
    r = gw.post(query(TOKEN_PATH, cred_params(C1)), b"", headers={"Content-Type": FORM})
    assert_token_error(r, 400, "invalid_request", "request body is missing")
    p = [("client_id", C1.client_id), ("client_secret", C1.client_secret)]
    r = gw.post(query(TOKEN_PATH, p), "grant_type=client_credentials", headers={"Content-Type": FORM})
    assert_token_error(r, 400, "invalid_request", "client_id is missing")


def test_get_ignores_body(gw):
    # GET reads the query string; a form body does not supply parameters.
    r = gw.request("GET", TOKEN_PATH, headers={"Content-Type": FORM}, body=form(cred_params(C1)))
    assert_token_error(r, 400, "invalid_request", "grant_type is missing")


def test_error_responses_are_json_no_store(gw):
    for r in (
        gw.get(TOKEN_PATH),
        gw.get(query(TOKEN_PATH, cred_params(C1, grant_type="password"))),
        gw.request("DELETE", TOKEN_PATH),
        gw.get(f"{TOKEN_PATH}?grant_type=client_credentials", headers={"Authorization": basic("x", "y")}),
    ):
        assert_token_json_headers(r)
        assert set(r.json()) == {"error", "error_description"}, r
