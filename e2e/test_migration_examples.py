"""The example configs under ``examples/`` (the README examples of the
plugins edge-auth replaces, values unchanged; see README "Moving from
Higress oauth / jwt-auth / oidc, MSE, ASM, APIG") load UNCHANGED into a
real Envoy and behave as their plugins document:

* ``higress-oauth.yaml``: a client-credentials token from the token
  endpoint opens the upstream as ``consumer1``.
* ``higress-jwt-auth.yaml``: the token printed in the C++ jwt_auth README
  (HS256, ``iss: abcd``) opens the upstream as ``consumer1``.
* ``higress-jwt-auth-remote-jwks.yaml``: keys fetched from the mesh
  service ``jwks.static`` (a real IdP behind cluster
  ``outbound|8080||jwks.static``).
* ``higress-oidc-*.yaml`` and ``apig-oidc.yaml``: whitelisted / not
  blacklisted requests pass; protected ones are answered by the plugin
  (503: the IdPs named there are not reachable from the test, fail closed).
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

import harness
from common import probe, upstream_saw
from idp_control import Idp, gateway as gateway_with_clusters, poll

EXAMPLES = harness.REPO_ROOT / "examples"
PREFIX = "edge-auth: invalid configuration:"
# The C++ jwt_auth README's token: {"alg":"HS256","typ":"JWT","kid":"123"}
# {"iss":"abcd","sub":"test","iat":1665660527,"exp":1865673819}.
JWT_AUTH_README_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjEyMyJ9."
    "eyJpc3MiOiJhYmNkIiwic3ViIjoidGVzdCIsImlhdCI6MTY2NTY2MDUyNywiZXhwIjoxODY1NjczODE5fQ."
    "-vBSV0bKeDwQcuS6eeSZN9dLTUnSnZVk8eVCXdooCQ4"
)


def example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


@pytest.fixture(scope="module")
def idp():
    with Idp(name="migration-examples") as server:
        yield server


def start(config: dict, echo, wasm, name: str, clusters: dict | None = None) -> harness.Envoy:
    gw = gateway_with_clusters(config, echo.port, clusters=clusters or {}, name=name, wasm=wasm)
    return gw.start()


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_matches_the_schema(name):
    schema = json.loads((harness.REPO_ROOT / "plugin-config-schema.json").read_text())
    jsonschema.validate(example(name), schema)


def test_every_example_is_covered_here():
    names = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert names == sorted(COVERED), names


def test_higress_oauth_example(echo, wasm):
    gw = start(example("higress-oauth.yaml"), echo, wasm, "ex-oauth")
    try:
        assert PREFIX not in gw.log_text()
        r = gw.post_form("/oauth2/token", [("grant_type", "client_credentials"),
                                           ("client_id", "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx"),
                                           ("client_secret", "abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx")])
        assert r.status == 200, r
        token = r.json()["access_token"]
        p = probe()
        r = gw.get("/api", headers=[("Authorization", f"Bearer {token}"), p])
        assert r.status == 200, r
        assert r.json()["headers"]["x-mse-consumer"] == "consumer1"
        r = gw.get("/api", headers=[("Authorization", f"Bearer {token}x")])
        assert r.status == 401 and r.body == b"Invalid Jwt token.", r
    finally:
        gw.stop()


def test_higress_jwt_auth_example_accepts_its_readme_token(echo, wasm):
    gw = start(example("higress-jwt-auth.yaml"), echo, wasm, "ex-jwt-auth")
    try:
        for headers, path in (([("Authorization", f"Bearer {JWT_AUTH_README_TOKEN}")], "/test"),
                              ([], f"/test?access_token={JWT_AUTH_README_TOKEN}")):
            p = probe()
            r = gw.get(path, headers=headers + [p])
            assert r.status == 200, r
            assert r.json()["headers"]["x-mse-consumer"] == "consumer1"
            assert len(upstream_saw(echo, p)) == 1
        r = gw.get("/test")
        assert r.status == 401 and r.body == b"Invalid Jwt token.", r
    finally:
        gw.stop()


def test_higress_jwt_auth_remote_jwks_example(echo, wasm, idp):
    config = example("higress-jwt-auth-remote-jwks.yaml")
    issuer = config["consumers"][0]["issuer"]
    gw = start(config, echo, wasm, "ex-remote-jwks", clusters={"outbound|8080||jwks.static": idp.port})
    try:
        assert PREFIX not in gw.log_text()
        token = idp.forge("RS256", iss=issuer)
        r, _ = poll(lambda: gw.get("/api", headers=[("Authorization", f"Bearer {token}")]),
                    until=lambda r: r.status != 503, timeout=30)
        assert r.status == 200, r
        assert r.json()["headers"]["x-mse-consumer"] == "consumer1"
        # The fetch went to the configured path with the configured host.
        lines = idp.request_lines("GET", "/jwks")
        assert lines and all("host=127.0.0.1:8080" in ln for ln in lines), lines
        forged = idp.forge("RS256", iss="http://elsewhere.test")
        r = gw.get("/api", headers=[("Authorization", f"Bearer {forged}")])
        assert r.status == 401, r
    finally:
        gw.stop()


@pytest.mark.parametrize("name,open_path,protected_path", [
    ("higress-oidc-auth0.yaml", "/foo/x", "/other"),
    ("higress-oidc-keycloak.yaml", "/other", "/headers"),
    ("apig-oidc.yaml", "/other", "/headers"),
])
def test_oidc_examples_load_unchanged_and_fail_closed(echo, wasm, name, open_path, protected_path):
    gw = start(example(name), echo, wasm, "ex-" + name.removesuffix(".yaml"))
    try:
        assert PREFIX not in gw.log_text()
        p = probe()
        r = gw.get(open_path, headers=[("Host", "foo.bar.com"), p])
        assert r.status == 200 and r.json()["path"] == open_path, r
        assert len(upstream_saw(echo, p)) == 1
        p = probe()
        r = gw.get(protected_path, headers=[("Host", "foo.bar.com"), ("Accept", "text/html"), p])
        assert r.status == 503, r
        assert upstream_saw(echo, p) == []
    finally:
        gw.stop()


COVERED = [
    "higress-oauth.yaml",
    "higress-jwt-auth.yaml",
    "higress-jwt-auth-remote-jwks.yaml",
    "higress-oidc-auth0.yaml",
    "higress-oidc-keycloak.yaml",
    "apig-oidc.yaml",
]
