"""Shared test data and assertions for the edge-auth end-to-end tests."""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import quote, urlencode

import jose_forge as jf
from harness import Envoy, EnvoyError, Response


@dataclass(frozen=True)
class Consumer:
    name: str
    client_id: str
    client_secret: str

    def config(self) -> dict:
        return {"name": self.name, "client_id": self.client_id, "client_secret": self.client_secret}


C1 = Consumer("consumer1", "c1-7c4a8d09ca3762af61e59520943dc264", "s1-Yk3pX9vQe2Lm7Rt5Wz8Nb4Hc6Jd1Fg0Sa")
C2 = Consumer("consumer2", "c2-0f5e3a1b9d8c7b6a5f4e3d2c1b0a9f8e", "s2-Qw9Er8Ty7Ui6Op5As4Df3Gh2Jk1Lz0Xc")
# Reserved characters in id and secret: Basic credentials must be
# urlencode(id):urlencode(secret) and form/query values percent-encoded.
C3 = Consumer("consumer3", "svc:partner@corp/3", "p+a/s s:w%rd=&?;#-3f9a1c77e2b84d05a6")

ALL = (C1, C2, C3)
TOKEN_PATH = "/oauth2/token"
FORM = "application/x-www-form-urlencoded"
INVALID_JWT_BODY = b"Invalid Jwt token."
DENIED_BODY = b"Access Denied."
REALM_HOST = "gw.example.test"
# What the plugin logs when it refuses a configuration.
CONFIG_ERROR_PREFIX = "edge-auth: invalid configuration:"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)


PROBE_HEADER = "X-E2e-Probe"


def probe() -> tuple[str, str]:
    """A unique request header; :func:`upstream_saw` finds the requests that
    carried it to the echo upstream. (Counting all upstream requests would
    race with requests of earlier tests that the upstream records late.)"""
    return (PROBE_HEADER, uuid.uuid4().hex)


def with_probe(headers, p: tuple[str, str]) -> list[tuple[str, str]]:
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    return items + [p]


def upstream_saw(echo, p: tuple[str, str]) -> list[dict]:
    """The requests the echo upstream received with probe ``p``."""
    return [q for q in echo.requests if q["headers"].get(PROBE_HEADER.lower()) == p[1]]


def consumers(*cs: Consumer) -> list[dict]:
    return [c.config() for c in (cs or ALL)]


# ---------------------------------------------------------------------------
# Token endpoint
# ---------------------------------------------------------------------------


def cred_params(c: Consumer, grant_type: str | None = "client_credentials", **extra: str) -> list[tuple[str, str]]:
    p: list[tuple[str, str]] = []
    if grant_type is not None:
        p.append(("grant_type", grant_type))
    p += [("client_id", c.client_id), ("client_secret", c.client_secret)]
    p += list(extra.items())
    return p


def query(path: str, params: Iterable[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(list(params))}"


def basic(client_id: str, client_secret: str) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def bearer(token: str, header: str = "Authorization", scheme: str = "Bearer") -> list[tuple[str, str]]:
    return [(header, f"{scheme} {token}")]


def assert_token_json_headers(r: Response) -> None:
    assert r.headers.get_all("Content-Type") == ["application/json"], r
    assert r.headers.get_all("Cache-Control") == ["no-store"], r


def assert_token_error(r: Response, status: int, error: str, description: str | None = None) -> dict:
    """A token endpoint error: status, JSON headers, body
    ``{"error": error, "error_description": description-or-any-string}``."""
    assert r.status == status, r
    assert_token_json_headers(r)
    body = r.json()
    assert isinstance(body, dict) and set(body) == {"error", "error_description"}, r
    assert body["error"] == error, r
    assert isinstance(body["error_description"], str) and body["error_description"], r
    if description is not None:
        assert body["error_description"] == description, r
    return body


def assert_token_response(
    r: Response,
    c: Consumer,
    *,
    issuer: str = "Higress-Gateway",
    ttl: int = 7200,
    aud: str = "default",
    scope: str | None = None,
    t_before: float | None = None,
    t_after: float | None = None,
) -> tuple[str, dict]:
    """A successful issuance for consumer ``c``; returns (token, claims)."""
    assert r.status == 200, r
    assert_token_json_headers(r)
    body = r.json()
    assert set(body) == {"token_type", "access_token", "expires_in"}, r
    assert body["token_type"] == "bearer", r
    assert body["expires_in"] == ttl and type(body["expires_in"]) is int, r
    token = body["access_token"]
    assert isinstance(token, str), r
    header, claims, _ = jf.decode_strict(token)
    assert header == {"alg": "HS256", "typ": "application/at+jwt"}, header
    assert jf.hs_verify(token, c.client_secret), "signature is not HS256 with the consumer's secret"
    expected_keys = {"iss", "sub", "client_id", "aud", "iat", "exp", "jti"} | ({"scope"} if scope is not None else set())
    assert set(claims) == expected_keys, claims
    assert claims["iss"] == issuer, claims
    assert claims["sub"] == c.name, claims
    assert claims["client_id"] == c.client_id, claims
    assert claims["aud"] == aud, claims
    assert type(claims["iat"]) is int and type(claims["exp"]) is int, claims
    assert claims["exp"] == claims["iat"] + ttl, claims
    if t_before is not None:
        assert int(t_before) - 1 <= claims["iat"], (t_before, claims)
    if t_after is not None:
        assert claims["iat"] <= int(t_after) + 1, (t_after, claims)
    assert isinstance(claims["jti"], str) and UUID4.match(claims["jti"]), claims
    if scope is not None:
        assert claims["scope"] == scope, claims
    return token, claims


def issue_token(gw: Envoy, c: Consumer, path: str = TOKEN_PATH, headers=None, **expect: Any) -> str:
    """GET-issue a token for ``c`` at ``path`` (asserting the full response)."""
    t0 = time.time()
    r = gw.get(query(path, cred_params(c)), headers=headers)
    t1 = time.time()
    token, _ = assert_token_response(r, c, t_before=t0, t_after=t1, **expect)
    return token


# ---------------------------------------------------------------------------
# Verification outcomes
# ---------------------------------------------------------------------------

_CHALLENGE = re.compile(
    r'^Bearer realm="(?P<realm>[^"]*)"'
    r'(?P<err>, error="invalid_token"(, error_description="(?P<description>[^"]*)")?)?$'
)


def assert_unauthorized(r: Response, path: str, host: str = REALM_HOST, token_present: bool | None = True,
                        description: str | None = None) -> None:
    """401 ``Invalid Jwt token.`` with one ``WWW-Authenticate: Bearer
    realm="http://<host><path without query>"`` challenge: with
    ``error="invalid_token"`` (and, if given, exactly this
    ``error_description``) when ``token_present``, without an error when it
    is False, either when None."""
    assert r.status == 401, r
    assert r.body == INVALID_JWT_BODY, r
    challenges = r.headers.get_all("WWW-Authenticate") or []
    assert len(challenges) == 1, r
    realm = f"http://{host}{path.split('?', 1)[0]}"
    m = _CHALLENGE.match(challenges[0])
    assert m and m.group("realm") == realm, (challenges[0], realm)
    if token_present is True:
        assert m.group("err"), (challenges[0], "expected error=\"invalid_token\"")
    elif token_present is False:
        assert not m.group("err"), (challenges[0], "no error parameter expected without a token")
    if description is not None:
        assert m.group("description") == description, (challenges[0], description)


def assert_forbidden(r: Response) -> None:
    assert r.status == 403, r
    assert r.body == DENIED_BODY, r
    assert r.headers.get("WWW-Authenticate") is None, r


def assert_passed(r: Response, consumer: Consumer | None, method: str, path: str) -> dict:
    """The request reached the echo upstream unchanged; ``x-mse-consumer`` is
    exactly ``consumer.name`` once (or absent for ``None``). Returns the echo."""
    assert r.status == 200, r
    echo = r.json()
    assert echo["method"] == method, echo
    assert echo["path"] == path, echo
    if consumer is None:
        assert "x-mse-consumer" not in echo["headers"], echo
    else:
        assert echo["headers"].get("x-mse-consumer") == consumer.name, echo
    return echo


def forged(c: Consumer, secret: str | None = None, header: dict | None = None, alg: str = "HS256", **claims: Any) -> str:
    """A token for ``c`` in the MSE format with claims overridden by
    ``claims`` (value ``None`` deletes the claim), HMAC-``alg`` signed with
    ``secret`` (default the consumer's own)."""
    base = jf.override(jf.mse_claims(c.name, c.client_id), **claims)
    return jf.hs_sign(base, c.client_secret if secret is None else secret, header=header, alg=alg)


def bearer_headers(token: str | None, *extra: tuple[str, str], host: str = REALM_HOST) -> list[tuple[str, str]]:
    """``Host`` (the realm host) and ``Authorization: Bearer <token>``."""
    h = [("Host", host)]
    if token is not None:
        h.append(("Authorization", f"Bearer {token}"))
    return h + list(extra)


def assert_consumer(r: Response, name: str, method: str = "GET", path: str | None = None) -> dict:
    """The request reached the echo upstream as consumer ``name``
    (``x-mse-consumer`` exactly once); returns the echo."""
    assert r.status == 200, r
    assert r.headers.get("WWW-Authenticate") is None, r
    echo = r.json()
    assert echo["method"] == method, echo
    if path is not None:
        assert echo["path"] == path, echo
    assert echo["headers"].get("x-mse-consumer") == name, echo
    return echo


def retry_after_ok(value: str | None) -> bool:
    """A valid ``Retry-After`` value: delta-seconds or an HTTP-date."""
    if value is None:
        return False
    value = value.strip()
    if re.fullmatch(r"\d+", value):
        return True
    from email.utils import parsedate_to_datetime

    try:
        parsedate_to_datetime(value)
        return True
    except (TypeError, ValueError):
        return False


def assert_unavailable(r: Response) -> None:
    """503 with a ``Retry-After`` header (keys not fetched yet)."""
    assert r.status == 503, r
    values = r.headers.get_all("Retry-After") or []
    assert len(values) == 1 and retry_after_ok(values[0]), r
    assert b"x-mse-consumer" not in r.body, r


def assert_config_refused(gw: Envoy, echo, fields: Iterable[str], path: str = "/x") -> None:
    """Spawns ``gw`` (built with an invalid plugin configuration): it never
    serves through its listener (up but refusing, or exited non-zero), and
    its first ``invalid configuration`` line names every one of ``fields``.
    Stops the gateway."""
    gw.spawn()
    try:
        try:
            gw.wait_ready(timeout=60)
            ready = True
        except EnvoyError:
            ready = False
        if ready:
            # Still up: it must not serve anything through the listener.
            p = probe()
            try:
                served = gw.get(path, headers=[p]).status == 200
            except OSError:
                served = False
            assert not served and upstream_saw(echo, p) == [], "envoy served requests with an invalid plugin config"
        else:
            rc = gw.wait_exit(30)
            assert rc is not None, "envoy neither became ready nor exited\n" + gw.log_tail()
            assert rc != 0, "envoy exited 0 on an invalid plugin config\n" + gw.log_tail()
        lines = gw.wait_log(CONFIG_ERROR_PREFIX, timeout=10)
        assert lines, f"no log line with {CONFIG_ERROR_PREFIX!r}\n" + gw.log_tail()
        said = lines[0].split(CONFIG_ERROR_PREFIX, 1)[1]
        missing = [f for f in fields if f not in said]
        assert not missing, f"the line does not name {missing}: {lines[0]}"
    finally:
        gw.stop()
