"""The JWT attack suite, against one Envoy whose consumers hold RS256 and
ES256 keys: remote (the IdP, by jwks_uri and by OIDC discovery) and inline.

Every forged token must get 401 ``Invalid Jwt token.`` with an
``error="invalid_token"`` challenge and never reach the upstream. ``jku`` /
``x5u`` / ``jwk`` / ``x5c`` headers point at recording_server.py (which also
has Envoy clusters a careless plugin could use) and the last test asserts it
was never contacted. Each family has a control: the same token built
honestly passes.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import jose_forge as jf
from common import (
    assert_consumer,
    assert_unauthorized,
    bearer_headers,
)
from idp_control import (
    APP1,
    ES256_RESOURCE,
    IDP_CLUSTER,
    RS256_RESOURCE,
    Gateways,
    Idp,
    gateway,
    poll,
)
from recording_server import RecordingServer

INLINE_AUD = "urn:edge-auth:inline"
INLINE_RS = jf.rsa_key("RS256", kid="inline-rs-1")
INLINE_ES = jf.ec_key("ES256", kid="inline-es-1")
ATTACKER_RS = jf.rsa_key("RS256", kid="attacker-rs")
ATTACKER_ES = jf.ec_key("ES256", kid="attacker-es")
PATH = "/a/attack"
# Spelled out (they are the contract's example values) so the time tests
# do not depend on defaults.
STRICT = {"clock_skew_seconds": 60, "require_exp": True}
KEY_WAIT = 30.0


@dataclass(frozen=True)
class Target:
    """A consumer under attack: where its key comes from and what a valid
    token for it looks like."""

    id: str
    consumer: str
    alg: str

    def key(self, idp: Idp) -> jf.Key:
        return {"inline-rs": INLINE_RS, "inline-es": INLINE_ES}.get(self.id) or idp.key(self.alg)

    def claims(self, idp: Idp, **override) -> dict:
        if self.id.startswith("inline"):
            base = jf.claims(f"https://{self.id}.example", INLINE_AUD, client_id="inline-client")
        else:
            base = jf.claims(idp.issuer, RS256_RESOURCE if self.alg == "RS256" else ES256_RESOURCE,
                             sub=APP1.client_id, client_id=APP1.client_id, scope="read write")
        for k, v in override.items():
            if v is None:
                base.pop(k, None)
            else:
                base[k] = v
        return base

    def valid(self, idp: Idp, header: dict | None = None, **claims) -> str:
        return jf.sign_jwt(self.claims(idp, **claims), self.key(idp), header)


TARGETS = [
    Target("rs", "rs-app", "RS256"),  # IdP, jwks_uri
    Target("es", "es-app", "ES256"),  # IdP, OIDC discovery
    Target("inline-rs", "inline-rs-app", "RS256"),
    Target("inline-es", "inline-es-app", "ES256"),
]
RSA_TARGETS = [t for t in TARGETS if t.alg == "RS256"]
TID = lambda t: t.id  # noqa: E731


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorder():
    with RecordingServer() as rec:
        rec.serve_jwks(jf.jwks(ATTACKER_RS, ATTACKER_ES))
        rec.serve_pem(jf.self_signed_cert(ATTACKER_RS).public_bytes(serialization.Encoding.PEM))
        yield rec


@pytest.fixture(scope="module")
def idp():
    with Idp(name="test_jwt_attacks") as server:
        yield server


@pytest.fixture(scope="module")
def started_at():
    return time.monotonic()


@pytest.fixture(scope="module")
def gw(idp, recorder, echo, wasm, started_at):
    config = {
        "consumers": [
            {"name": "rs-app", "issuer": idp.issuer, "audiences": [RS256_RESOURCE],
             "jwks_uri": idp.url("/jwks"), "cluster": IDP_CLUSTER, **STRICT},
            {"name": "es-app", "oidc_issuer": idp.issuer, "cluster": IDP_CLUSTER, "audiences": [ES256_RESOURCE],
             **STRICT},
            {"name": "inline-rs-app", "issuer": "https://inline-rs.example", "audiences": [INLINE_AUD],
             "jwks": jf.jwks(INLINE_RS), **STRICT},
            {"name": "inline-es-app", "issuer": "https://inline-es.example", "audiences": [INLINE_AUD],
             "jwks": json.dumps(jf.jwks(INLINE_ES)), **STRICT},
        ],
        "global_auth": True,
    }
    clusters = {
        IDP_CLUSTER: idp.port,
        # Clusters a plugin could (wrongly) map a token's URL to.
        "attacker": recorder.port,
        f"127.0.0.1:{recorder.port}": recorder.port,
        f"outbound|{recorder.port}||127.0.0.1": recorder.port,
    }

    def ready(g):
        # Both remote key sets loaded: the IdP's tokens pass (bounded wait;
        # the control tests report it if they never do).
        for resource in (RS256_RESOURCE, ES256_RESOURCE):
            token = idp.client_credentials_token(APP1, resource)
            poll(lambda: g.get("/b/ready", headers=bearer_headers(token)), lambda r: r.status == 200, KEY_WAIT)

    gws = Gateways({"attacks": (config, clusters)}, echo.port, "test_jwt_attacks", wasm, {"attacks": ready})
    yield gws["attacks"]
    gws.stop_all()


def reject(gw, echo, token: str, path: str = PATH, headers=()) -> None:
    """The token is refused with 401 and the upstream sees nothing."""
    n = echo.count()
    r = gw.get(path, headers=bearer_headers(token, *headers))
    assert_unauthorized(r, path)
    assert echo.count() == n, "the upstream was reached"


# ---------------------------------------------------------------------------
# Controls
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("resource", [RS256_RESOURCE, ES256_RESOURCE], ids=["rs256", "es256"])
def test_control_idp_tokens_pass(gw, idp, resource):
    token = idp.client_credentials_token(APP1, resource)
    name = "rs-app" if resource == RS256_RESOURCE else "es-app"
    assert_consumer(gw.get(PATH, headers=bearer_headers(token)), name, "GET", PATH)


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_control_forged_with_the_right_key_passes(gw, idp, target):
    assert_consumer(gw.get(PATH, headers=bearer_headers(target.valid(idp))), target.consumer, "GET", PATH)


# ---------------------------------------------------------------------------
# alg: none
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_sig", [False, True], ids=["no-sig", "with-sig"])
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_alg_none(gw, idp, echo, target, alg, with_sig):
    valid = target.valid(idp)
    sig = valid.split(".")[2] if with_sig else ""
    kid = target.key(idp).kid
    reject(gw, echo, jf.unsigned(target.claims(idp), alg, {"kid": kid}, signature=sig))
    reject(gw, echo, jf.unsigned(target.claims(idp), alg, signature=sig))  # no kid


# ---------------------------------------------------------------------------
# HS* signed with the public key (algorithm confusion)
# ---------------------------------------------------------------------------


def public_key_forms(target: Target, idp: Idp) -> dict[str, bytes]:
    key = target.key(idp)
    jwk = key.public_jwk()
    forms = {
        "pem": key.public_pem(),
        "pem-no-newline": key.public_pem().rstrip(b"\n"),
        "der": key.public_der(),
        "jwk-json": json.dumps(jwk).encode(),
        "jwk-json-compact": jf.compact(jwk),
    }
    if key.kty == "RSA":
        forms["pem-pkcs1"] = key.public_pem(pkcs1=True)
        forms["der-pkcs1"] = key.public_der(pkcs1=True)
    else:
        forms["point"] = key.public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if not target.id.startswith("inline"):
        # The exact bytes the IdP publishes for this key.
        body = published_jwks(idp)
        published = next(k for k in json.loads(body)["keys"] if k["kid"] == key.kid)
        forms["jwk-json-published"] = json.dumps(published, separators=(",", ":")).encode()
        forms["jwks-json"] = body
    return forms


_published: dict[int, bytes] = {}


def published_jwks(idp: Idp) -> bytes:
    """The IdP's /jwks body (read once per IdP)."""
    if idp.port not in _published:
        r = idp.jwks()
        assert r.status == 200, r
        _published[idp.port] = r.body
    return _published[idp.port]


def _forms_of(target: Target) -> list[str]:
    forms = ["pem", "pem-no-newline", "der", "jwk-json", "jwk-json-compact"]
    forms += ["pem-pkcs1", "der-pkcs1"] if target.alg == "RS256" else ["point"]
    if not target.id.startswith("inline"):
        forms += ["jwk-json-published", "jwks-json"]
    return forms


HMAC_CASES = [(t, f) for t in TARGETS for f in _forms_of(t)]


@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("target,form", HMAC_CASES, ids=[f"{t.id}-{f}" for t, f in HMAC_CASES])
def test_hmac_with_public_key(gw, idp, echo, target, form, hs):
    secret = public_key_forms(target, idp)[form]
    kid = target.key(idp).kid
    reject(gw, echo, jf.hmac_jwt(target.claims(idp), secret, {"kid": kid}, alg=hs))
    reject(gw, echo, jf.hmac_jwt(target.claims(idp), secret, alg=hs))  # no kid


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_other_algorithm_with_the_right_key(gw, idp, echo, target):
    """The algorithm comes from the key: an RS256 key used for PS256/RS512, a
    P-256 key signing ES384 (SHA-384) is refused."""
    key = target.key(idp)
    others = ["PS256", "RS512", "PS512"] if key.kty == "RSA" else ["ES384", "ES512"]
    for alg in others:
        token = jf.sign_jwt(target.claims(idp), key, {"alg": alg}, sign_alg=alg)
        reject(gw, echo, token)


# ---------------------------------------------------------------------------
# Signature and payload tampering, malformed tokens
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_stripped_signature(gw, idp, echo, target):
    valid = target.valid(idp)
    reject(gw, echo, jf.strip_signature(valid))
    reject(gw, echo, jf.strip_signature(valid, keep_dot=False))


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_tampered_signature(gw, idp, echo, target):
    valid = target.valid(idp)
    reject(gw, echo, jf.tamper_signature(valid))
    h, p, s = valid.split(".")
    sig = jf.b64url_decode(s)
    reject(gw, echo, f"{h}.{p}.{jf.b64url(sig[:-1])}")  # truncated
    reject(gw, echo, f"{h}.{p}.{jf.b64url(sig + bytes(1))}")  # extended
    reject(gw, echo, f"{h}.{p}.{jf.b64url(bytes(len(sig)))}")  # zeros
    if target.alg == "ES256":
        # ECDSA: DER instead of JOSE r||s, and (r, n - s) malleability is not "the same".
        reject(gw, echo, f"{h}.{p}.{jf.b64url(jf.jose_to_der_ecdsa(sig))}")


@pytest.mark.parametrize("change", ["client_id", "exp", "aud", "iss", "sub", "extra"])
@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_tampered_payload(gw, idp, echo, target, change):
    valid = target.valid(idp)
    claims = jf.decode(valid)[1]
    changes = {
        "client_id": {"client_id": "edge-auth-app2"},
        "exp": {"exp": claims["exp"] + 3600},
        "aud": {"aud": [claims["aud"], "urn:other"]},
        "iss": {"iss": claims["iss"] + "/"},
        "sub": {"sub": "admin"},
        "extra": {"admin": True},
    }[change]
    reject(gw, echo, jf.tamper_payload(valid, **changes))


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_tampered_header(gw, idp, echo, target):
    """Header changed after signing (typ, kid order): the signing input changed."""
    valid = target.valid(idp)
    h, p, s = valid.split(".")
    header = jf.decode(valid)[0]
    for new in ({**header, "typ": "JWT+x"}, {"kid": header["kid"], "alg": header["alg"]}):
        reject(gw, echo, f"{jf.b64url(jf.compact(new))}.{p}.{s}")


_NO_ALG = jf.b64url(jf.compact({"typ": "JWT"}))
_ALG_NUM = jf.b64url(jf.compact({"alg": 256}))
MALFORMED = {
    "one-part": "abc",
    "two-parts": "abc.def",
    "four-parts": "a.b.c.d",
    "empty-parts": "..",
    "not-base64": "!!!.@@@.###",
    "header-not-json": f"{jf.b64url(b'not json')}.{jf.b64url(b'{}')}.AAAA",
    "header-array": f"{jf.b64url(b'[1,2]')}.{jf.b64url(b'{}')}.AAAA",
    "header-no-alg": f"{_NO_ALG}.{jf.b64url(b'{}')}.AAAA",
    "alg-number": f"{_ALG_NUM}.{jf.b64url(b'{}')}.AAAA",
    "jws-json-serialization": json.dumps({"payload": "e30", "signatures": []}),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_tokens(gw, echo, case):
    reject(gw, echo, MALFORMED[case])


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_payload_not_json_or_bad_types(gw, idp, echo, target):
    key = target.key(idp)
    reject(gw, echo, jf.sign_jwt(b"not json", key))
    reject(gw, echo, jf.sign_jwt(b"[1,2,3]", key))
    reject(gw, echo, jf.sign_jwt(target.claims(idp, exp=str(int(time.time()) + 600)), key))  # exp as a string
    reject(gw, echo, jf.sign_jwt(target.claims(idp, exp=None), key))  # no exp (require_exp: true)


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_duplicate_alg_member(gw, idp, echo, target):
    """A header with two ``alg`` members, the last one ``none``."""
    key = target.key(idp)
    hb = ('{"alg":"%s","kid":"%s","alg":"none"}' % (key.alg, key.kid)).encode()
    pb = jf.compact(target.claims(idp))
    signing_input = f"{jf.b64url(hb)}.{jf.b64url(pb)}".encode()
    signed = f"{signing_input.decode()}.{jf.b64url(key.sign(signing_input))}"
    reject(gw, echo, signed)
    reject(gw, echo, f"{signing_input.decode()}.")


# ---------------------------------------------------------------------------
# kid path traversal and injection
# ---------------------------------------------------------------------------

KID_ATTACKS = {
    "dev-null": ("../../dev/null", b""),
    "dev-null-deep": ("../../../../../../../../dev/null", b""),
    "etc-passwd": ("/etc/passwd", None),  # secret: this machine's /etc/passwd
    "etc-passwd-rel": ("../../../../../../etc/passwd", None),
    "sql-or": ("' OR 1=1 --", b"1"),
    "sql-union": ("x' UNION SELECT 'secret' --", b"secret"),
    "json-inject": ('x" , "kid":"', b""),
    "nul": ("inline-rs-1\x00x", b""),
    "url": ("http://127.0.0.1:1/jwks", b""),
}


def _kid_secret(secret: bytes | None) -> bytes:
    if secret is not None:
        return secret
    p = Path("/etc/passwd")
    return p.read_bytes() if p.exists() else b"root:x:0:0:root:/root:/bin/bash\n"


@pytest.mark.parametrize("case", list(KID_ATTACKS))
@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_kid_traversal_and_injection(gw, idp, echo, target, case):
    kid, secret = KID_ATTACKS[case]
    claims = target.claims(idp)
    # HMAC with the "key" a file or query would return.
    reject(gw, echo, jf.hmac_jwt(claims, _kid_secret(secret), {"kid": kid}))
    # Properly signed by the consumer's real key, but under the bogus kid.
    reject(gw, echo, jf.sign_jwt(claims, target.key(idp), kid=kid))
    # Injection around the real kid.
    reject(gw, echo, jf.sign_jwt(claims, target.key(idp), kid=f'{target.key(idp).kid}" , "kid":"{kid}'))


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_unknown_kid_signed_with_real_key(gw, idp, echo, target):
    """No fallback to 'try every key' when the kid is unknown."""
    reject(gw, echo, jf.sign_jwt(target.claims(idp), target.key(idp), kid="no-such-kid"))


# ---------------------------------------------------------------------------
# Keys named by the token: jku, x5u, jwk, x5c
# ---------------------------------------------------------------------------


def _attacker(target: Target) -> jf.Key:
    return ATTACKER_RS if target.alg == "RS256" else ATTACKER_ES


def _x5c(key: jf.Key) -> list[str]:
    der = jf.self_signed_cert(key).public_bytes(serialization.Encoding.DER)
    return [base64.b64encode(der).decode()]


def _kid_variants(target: Target, idp: Idp) -> dict[str, str | bool]:
    return {"attacker-kid": True, "real-kid": target.key(idp).kid, "no-kid": False}


@pytest.mark.parametrize("kid", ["attacker-kid", "real-kid", "no-kid"])
@pytest.mark.parametrize("header", ["jku", "jku-https", "x5u", "jwk", "x5c", "all"])
@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_token_named_keys_are_ignored(gw, idp, echo, recorder, target, header, kid):
    attacker = _attacker(target)
    hdr = {
        "jku": {"jku": recorder.url("/jwks.json")},
        "jku-https": {"jku": f"https://127.0.0.1:{recorder.port}/jwks.json"},
        "x5u": {"x5u": recorder.url("/cert.pem")},
        "jwk": {"jwk": attacker.public_jwk()},
        "x5c": {"x5c": _x5c(attacker)},
        "all": {"jku": recorder.url("/.well-known/jwks.json"), "x5u": recorder.url("/x.crt"),
                "jwk": attacker.public_jwk(), "x5c": _x5c(attacker)},
    }[header]
    token = jf.sign_jwt(target.claims(idp), attacker, hdr, kid=_kid_variants(target, idp)[kid])
    reject(gw, echo, token)
    assert not recorder.contacted(), recorder.summary()


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_jku_with_iss_of_the_recorder(gw, idp, echo, recorder, target):
    """iss and jku both the attacker's: no consumer has that issuer."""
    attacker = _attacker(target)
    claims = target.claims(idp, iss=recorder.url(""))
    reject(gw, echo, jf.sign_jwt(claims, attacker, {"jku": recorder.url("/jwks.json")}))
    assert not recorder.contacted(), recorder.summary()


# ---------------------------------------------------------------------------
# Size, time, issuer, audience, crit
# ---------------------------------------------------------------------------


def _padded(target: Target, idp: Idp, total: int) -> str:
    base = target.valid(idp, pad="")
    pad = "x" * max(0, int((total - len(base)) * 3 / 4))
    token = target.valid(idp, pad=pad)
    while len(token) < total:
        pad += "x"
        token = target.valid(idp, pad=pad)
    return token


@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_oversized_token(gw, idp, echo, target):
    big = _padded(target, idp, 8 * 1024 + 1)
    assert len(big) > 8192
    reject(gw, echo, big)
    reject(gw, echo, _padded(target, idp, 32 * 1024))
    # Control: a large token under the default max_token_bytes passes.
    ok = _padded(target, idp, 7 * 1024)
    assert len(ok) < 8192
    assert_consumer(gw.get(PATH, headers=bearer_headers(ok)), target.consumer, "GET", PATH)


def _claim_cases(target: Target, idp: Idp) -> dict[str, dict]:
    now = int(time.time())
    aud = target.claims(idp)["aud"]
    return {
        "expired": {"iat": now - 7200, "exp": now - 3600},
        "expired-just": {"iat": now - 600, "exp": now - 120},  # beyond the 60 s skew
        "not-yet-valid": {"nbf": now + 3600},
        "not-yet-valid-just": {"nbf": now + 120},
        "iss-wrong": {"iss": "https://evil.example"},
        "iss-other-consumer": {"iss": "https://inline-es.example" if target.id != "inline-es" else "https://inline-rs.example"},
        "aud-wrong": {"aud": "urn:edge-auth:other"},
        # An audience of a consumer of another issuer (rs-app and es-app share
        # the IdP's key set, so their audiences are not "other" to each other).
        "aud-other-consumer": {"aud": RS256_RESOURCE if aud == INLINE_AUD else INLINE_AUD},
        "aud-empty-array": {"aud": []},
    }


CLAIM_CASES = ["expired", "expired-just", "not-yet-valid", "not-yet-valid-just", "iss-wrong",
               "iss-other-consumer", "aud-wrong", "aud-other-consumer", "aud-empty-array"]


@pytest.mark.parametrize("case", CLAIM_CASES)
@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_bad_claims(gw, idp, echo, target, case):
    reject(gw, echo, target.valid(idp, **_claim_cases(target, idp)[case]))


@pytest.mark.parametrize("crit", ["custom", "b64", "exp-header", "two"])
@pytest.mark.parametrize("target", TARGETS, ids=TID)
def test_unknown_crit(gw, idp, echo, target, crit):
    hdr = {
        "custom": {"crit": ["x-edge-custom"], "x-edge-custom": True},
        "b64": {"crit": ["b64"], "b64": False},
        "exp-header": {"crit": ["urn:example:must-understand"], "urn:example:must-understand": 1},
        "two": {"crit": ["x-a", "x-b"], "x-a": 1, "x-b": 2},
    }[crit]
    reject(gw, echo, target.valid(idp, header=hdr))


# ---------------------------------------------------------------------------
# Unknown kids do not hammer the IdP; nothing fetched from token URLs
# ---------------------------------------------------------------------------


def test_unknown_kid_flood_is_rate_limited(gw, idp, echo):
    before = idp.jwks_fetches()
    for i in range(25):
        for alg in ("RS256", "ES256"):
            attacker = ATTACKER_RS if alg == "RS256" else ATTACKER_ES
            target = TARGETS[0] if alg == "RS256" else TARGETS[1]
            reject(gw, echo, jf.sign_jwt(target.claims(idp), attacker, kid=f"flood-{i}-{alg}"))
    # At most one refetch per key set (two key sets point at /jwks) in 30 s.
    assert idp.jwks_fetches() - before <= 2, idp.request_lines("GET", "/jwks")


def _token_named_key_attacks(idp: Idp, recorder: RecordingServer) -> list[str]:
    """One token per target and per way a token can name its own key
    (URLs on the recorder, embedded keys, an issuer on the recorder), all
    signed by the attacker with kids the gateway has never seen."""
    tokens = []
    for target in TARGETS:
        attacker = _attacker(target)
        for i, hdr in enumerate(({"jku": recorder.url("/jwks.json")},
                                 {"jku": f"https://127.0.0.1:{recorder.port}/jwks.json"},
                                 {"x5u": recorder.url("/cert.pem")},
                                 {"jwk": attacker.public_jwk()},
                                 {"x5c": _x5c(attacker)})):
            tokens.append(jf.sign_jwt(target.claims(idp), attacker, hdr, kid=f"zz-{target.id}-{i}"))
        tokens.append(jf.sign_jwt(target.claims(idp, iss=recorder.url("")), attacker,
                                  {"jku": recorder.url("/jwks.json")}, kid=f"zz-{target.id}-iss"))
    return tokens


def test_zz_recording_server_never_contacted(gw, idp, echo, recorder, started_at, wasm):
    """Last (it also sums up the module): the recorder saw nothing, and the
    IdP's key set was fetched no more than the rate limit allows.

    It makes its own evidence, so that run alone it still checks something:
    a positive control first (a gateway whose consumer's jwks_uri *is* on a
    second recorder, through the same kind of cluster: that recorder must
    see the fetch, so a recorder can see a plugin's call), then every
    token-named-key attack against the module's gateway, each refused, then
    a valid token through the same gateway (the worker has handled all of
    the above), and only then the recorder is looked at."""
    with RecordingServer() as control:
        control.serve_jwks(jf.jwks(ATTACKER_RS))
        config = {"consumers": [{"name": "leaky", "issuer": "https://leaky.example", "audiences": [INLINE_AUD],
                                 "jwks_uri": control.url("/jwks.json"), "cluster": "attacker"}],
                  "global_auth": True}
        with gateway(config, echo.port, {"attacker": control.port}, name="test_jwt_attacks-control",
                     wasm=wasm) as leaky:
            poll(lambda: control.requests, lambda reqs: len(reqs) > 0, KEY_WAIT)
            assert [r["path"] for r in control.requests][:1] == ["/jwks.json"], control.summary()
            assert control.connections >= 1, control.summary()
            assert leaky.running()

    fetches_before = idp.jwks_fetches()
    for token in _token_named_key_attacks(idp, recorder):
        reject(gw, echo, token)
    valid = TARGETS[0].valid(idp)
    assert_consumer(gw.get(PATH, headers=bearer_headers(valid)), TARGETS[0].consumer, "GET", PATH)

    assert recorder.connections == 0 and recorder.requests == [], recorder.summary()
    # Unknown kids at most one refetch per key set (two point at /jwks) here...
    assert idp.jwks_fetches() - fetches_before <= 2, idp.request_lines("GET", "/jwks")
    # ... and over the whole module, per 30 s window.
    elapsed = time.monotonic() - started_at
    windows = 1 + math.ceil(elapsed / 30)
    fetches = idp.jwks_fetches()
    assert fetches <= 2 * windows, (fetches, elapsed, idp.request_lines("GET", "/jwks"))
