"""Forging JOSE material for the third-party JWT tests (PyPI ``cryptography``).

Keys (:class:`Key`): RSA (RS256/384/512, PS256/384/512), EC P-256 / P-384 /
P-521 (ES256 / ES384 / ES512), Ed25519 (EdDSA) and oct (HS256/384/512).
Each key has a ``kid`` and an ``alg``; :meth:`Key.public_jwk` is what a JWKS
publishes (``kid``, ``alg``, ``use: "sig"``), :meth:`Key.private_jwk` what the
identity provider (``e2e/idp/server.js --keys FILE``) signs with, and
:func:`key_from_jwk` turns a private JWK back into a :class:`Key` (so the tests
can sign with the IdP's own keys).

Tokens: :func:`sign_jwt` signs compact JWS with any supported algorithm; the
``alg`` written in the header and the algorithm used to sign can differ
(``header={"alg": ...}``) and the header may carry anything (``jku``, ``jwk``,
``crit``, ...). :func:`hmac_jwt` signs HS* with arbitrary secret bytes (e.g.
an RSA public key's PEM: the algorithm-confusion attack), :func:`unsigned`
builds ``alg: none`` tokens, and the ``strip_*`` / ``tamper_*`` helpers
mangle valid tokens. Nothing here is shared with the plugin.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import NameOID

__all__ = [
    "ALGS",
    "Key",
    "b64url",
    "b64url_decode",
    "compact",
    "rsa_key",
    "ec_key",
    "ed25519_key",
    "oct_key",
    "key_for_alg",
    "key_from_jwk",
    "jwks",
    "private_jwks",
    "keys_from_jwks",
    "claims",
    "override",
    "sign_jwt",
    "sign_raw",
    "hmac_jwt",
    "unsigned",
    "assemble",
    "decode",
    "strip_signature",
    "tamper_signature",
    "tamper_payload",
    "self_signed_cert",
    "verify",
    "der_to_jose_ecdsa",
    "jose_to_der_ecdsa",
]

HMAC_ALGS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_SHA = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_CURVES = {
    "ES256": (ec.SECP256R1, "P-256", 32),
    "ES384": (ec.SECP384R1, "P-384", 48),
    "ES512": (ec.SECP521R1, "P-521", 66),
}
_CRV_TO_ALG = {crv: alg for alg, (_, crv, _) in _EC_CURVES.items()}
ALGS = (
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384",
    "EdDSA",
)


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


def b64url(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, strict: bool = False) -> bytes:
    """``strict``: refuse padding and the standard alphabet (what a token
    the plugin issues must not contain)."""
    if strict and any(c in text for c in "+/="):
        raise ValueError("not unpadded base64url: %r" % text)
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact(obj: Any, sort_keys: bool = False) -> bytes:
    """Compact JSON (no spaces), the usual JWS header / payload encoding."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys).encode("utf-8")


def _int_b64(n: int, length: int | None = None) -> str:
    length = length or max(1, (n.bit_length() + 7) // 8)
    return b64url(n.to_bytes(length, "big"))


def _b64_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


def _new_kid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------


@dataclass
class Key:
    """A signing key: ``private`` is a ``cryptography`` private key, or the
    secret bytes of an ``oct`` key."""

    kid: str
    alg: str
    private: Any
    extra: dict = field(default_factory=dict)  # more JWK members to publish

    @property
    def kty(self) -> str:
        if isinstance(self.private, (bytes, bytearray)):
            return "oct"
        if isinstance(self.private, rsa.RSAPrivateKey):
            return "RSA"
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            return "EC"
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return "OKP"
        raise TypeError(type(self.private))

    @property
    def public(self):
        if self.kty == "oct":
            return None
        return self.private.public_key()

    # -- JWK ------------------------------------------------------------------

    def _public_members(self) -> dict:
        kty = self.kty
        if kty == "RSA":
            n = self.public.public_numbers()
            return {"kty": "RSA", "n": _int_b64(n.n), "e": _int_b64(n.e)}
        if kty == "EC":
            n = self.public.public_numbers()
            crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[self.public.curve.name]
            size = (self.public.curve.key_size + 7) // 8
            return {"kty": "EC", "crv": crv, "x": _int_b64(n.x, size), "y": _int_b64(n.y, size)}
        if kty == "OKP":
            raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
        return {"kty": "oct", "k": b64url(bytes(self.private))}

    def public_jwk(self, **override: Any) -> dict:
        """The JWK a JWKS publishes (``kid``, ``alg``, ``use: sig``); for an
        ``oct`` key it necessarily holds the secret. ``override`` members
        replace or (value ``None``) delete members."""
        jwk = {**self._public_members(), "kid": self.kid, "alg": self.alg, "use": "sig", **self.extra}
        for k, v in override.items():
            if v is None:
                jwk.pop(k, None)
            else:
                jwk[k] = v
        return jwk

    def private_jwk(self) -> dict:
        """The private JWK (the IdP's key file format)."""
        jwk = self.public_jwk()
        kty = self.kty
        if kty == "RSA":
            p = self.private.private_numbers()
            jwk.update(d=_int_b64(p.d), p=_int_b64(p.p), q=_int_b64(p.q),
                       dp=_int_b64(p.dmp1), dq=_int_b64(p.dmq1), qi=_int_b64(p.iqmp))
        elif kty == "EC":
            size = (self.private.curve.key_size + 7) // 8
            jwk["d"] = _int_b64(self.private.private_numbers().private_value, size)
        elif kty == "OKP":
            jwk["d"] = b64url(self.private.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))
        return jwk

    # -- other public forms (for algorithm-confusion secrets) -------------------

    def public_pem(self, pkcs1: bool = False) -> bytes:
        fmt = serialization.PublicFormat.PKCS1 if pkcs1 else serialization.PublicFormat.SubjectPublicKeyInfo
        return self.public.public_bytes(serialization.Encoding.PEM, fmt)

    def public_der(self, pkcs1: bool = False) -> bytes:
        fmt = serialization.PublicFormat.PKCS1 if pkcs1 else serialization.PublicFormat.SubjectPublicKeyInfo
        return self.public.public_bytes(serialization.Encoding.DER, fmt)

    # -- signing ----------------------------------------------------------------

    def sign(self, signing_input: bytes, alg: str | None = None) -> bytes:
        """Sign with ``alg`` (default the key's own) — a mismatching ``alg``
        makes e.g. a PS256 signature with an RS256 key."""
        return sign_raw(self.private, alg or self.alg, signing_input)

    def __repr__(self) -> str:
        return f"Key(kid={self.kid!r}, alg={self.alg!r}, kty={self.kty!r})"


def rsa_key(alg: str = "RS256", kid: str | None = None, bits: int = 2048) -> Key:
    assert alg[:2] in ("RS", "PS"), alg
    priv = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return Key(kid or _new_kid(alg.lower()), alg, priv)


def ec_key(alg: str = "ES256", kid: str | None = None) -> Key:
    curve, _, _ = _EC_CURVES[alg]
    return Key(kid or _new_kid(alg.lower()), alg, ec.generate_private_key(curve()))


def ed25519_key(kid: str | None = None, alg: str = "EdDSA") -> Key:
    return Key(kid or _new_kid("eddsa"), alg, ed25519.Ed25519PrivateKey.generate())


def oct_key(alg: str = "HS256", kid: str | None = None, secret: bytes | None = None) -> Key:
    size = {"HS256": 32, "HS384": 48, "HS512": 64}[alg]
    return Key(kid or _new_kid(alg.lower()), alg, secret if secret is not None else os.urandom(size))


def key_for_alg(alg: str, kid: str | None = None) -> Key:
    """A fresh key for any algorithm of :data:`ALGS` (and ES512)."""
    if alg in HMAC_ALGS:
        return oct_key(alg, kid)
    if alg[:2] in ("RS", "PS"):
        return rsa_key(alg, kid)
    if alg in _EC_CURVES:
        return ec_key(alg, kid)
    if alg == "EdDSA":
        return ed25519_key(kid)
    raise ValueError(alg)


def key_from_jwk(jwk: dict) -> Key:
    """A private JWK back into a :class:`Key` (``alg`` from the JWK, else
    derived from kty/crv)."""
    kty = jwk["kty"]
    if kty == "RSA":
        e, n = _b64_int(jwk["e"]), _b64_int(jwk["n"])
        p, q, d = _b64_int(jwk["p"]), _b64_int(jwk["q"]), _b64_int(jwk["d"])
        priv = rsa.RSAPrivateNumbers(
            p, q, d,
            _b64_int(jwk["dp"]) if "dp" in jwk else rsa.rsa_crt_dmp1(d, p),
            _b64_int(jwk["dq"]) if "dq" in jwk else rsa.rsa_crt_dmq1(d, q),
            _b64_int(jwk["qi"]) if "qi" in jwk else rsa.rsa_crt_iqmp(p, q),
            rsa.RSAPublicNumbers(e, n),
        ).private_key()
        alg = jwk.get("alg", "RS256")
    elif kty == "EC":
        alg = jwk.get("alg") or _CRV_TO_ALG[jwk["crv"]]
        curve, _, _ = _EC_CURVES[_CRV_TO_ALG[jwk["crv"]]]
        priv = ec.derive_private_key(_b64_int(jwk["d"]), curve())
    elif kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise ValueError(f"unsupported OKP curve {jwk.get('crv')}")
        priv = ed25519.Ed25519PrivateKey.from_private_bytes(b64url_decode(jwk["d"]))
        alg = jwk.get("alg", "EdDSA")
    elif kty == "oct":
        priv = b64url_decode(jwk["k"])
        alg = jwk.get("alg", "HS256")
    else:
        raise ValueError(f"unsupported kty {kty}")
    return Key(jwk.get("kid") or _new_kid(alg.lower()), alg, priv)


def jwks(*keys: Key) -> dict:
    """A public JWKS ``{"keys": [...]}``."""
    return {"keys": [k.public_jwk() for k in keys]}


def private_jwks(*keys: Key) -> dict:
    return {"keys": [k.private_jwk() for k in keys]}


def keys_from_jwks(doc: dict) -> dict[str, Key]:
    """``{kid: Key}`` of a private JWKS."""
    return {k.kid: k for k in (key_from_jwk(j) for j in doc["keys"])}


def self_signed_cert(key: Key, cn: str = "attacker.example") -> x509.Certificate:
    """A self-signed certificate for an RSA / EC / Ed25519 key (for ``x5c`` /
    ``x5u`` headers)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    algo = None if key.kty == "OKP" else hashes.SHA256()
    return builder.sign(key.private, algo)


# ---------------------------------------------------------------------------
# Signing
# ---------------------------------------------------------------------------


def sign_raw(private: Any, alg: str, signing_input: bytes) -> bytes:
    """The JWS signature bytes of ``signing_input`` under ``alg``."""
    if alg in HMAC_ALGS:
        secret = private if isinstance(private, (bytes, bytearray)) else bytes(private)
        return hmac.new(secret, signing_input, HMAC_ALGS[alg]).digest()
    if alg[:2] == "RS":
        return private.sign(signing_input, padding.PKCS1v15(), _SHA[alg[2:]]())
    if alg[:2] == "PS":
        h = _SHA[alg[2:]]()
        return private.sign(signing_input, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if alg in _EC_CURVES:
        size = (private.curve.key_size + 7) // 8
        der = private.sign(signing_input, ec.ECDSA(_SHA[alg[2:]]()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg in ("EdDSA", "Ed25519"):
        return private.sign(signing_input)
    raise ValueError(f"cannot sign {alg}")


def claims(
    iss: str,
    aud: str | list[str] | None,
    sub: str = "user-1",
    ttl: int = 600,
    now: int | None = None,
    **extra: Any,
) -> dict:
    """Registered claims (``iss``, ``sub``, ``aud``, ``iat``, ``nbf``?, ``exp``,
    ``jti``) plus ``extra``; a value ``None`` in ``extra`` deletes the claim."""
    now = int(time.time()) if now is None else now
    c: dict[str, Any] = {"iss": iss, "sub": sub, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
    if aud is not None:
        c["aud"] = aud
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def override(base: dict, **changes: Any) -> dict:
    """A copy of ``base`` with ``changes`` applied (``None`` deletes)."""
    out = dict(base)
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def assemble(header: dict | bytes, payload: dict | bytes, signature: bytes | str = b"") -> str:
    """``b64(header).b64(payload).b64(signature)`` from raw parts; dicts are
    compact JSON, bytes are encoded as given, a str signature is used as is."""
    h = header if isinstance(header, bytes) else compact(header)
    p = payload if isinstance(payload, bytes) else compact(payload)
    s = signature if isinstance(signature, str) else b64url(signature)
    return f"{b64url(h)}.{b64url(p)}.{s}"


def sign_jwt(
    payload: dict | bytes,
    key: Key,
    header: dict | None = None,
    *,
    sign_alg: str | None = None,
    typ: str | None = "JWT",
    kid: str | None | bool = True,
) -> str:
    """A compact JWS of ``payload`` signed by ``key``.

    The header is ``{"alg": key.alg, "typ": typ, "kid": key.kid}`` updated with
    ``header`` (a ``None`` value deletes a member); ``kid=False`` leaves the kid
    out, a string replaces it. ``sign_alg`` is the algorithm actually used
    (default: the header's ``alg`` if it is one ``key`` can sign with, else
    the key's own).
    """
    h: dict[str, Any] = {"alg": key.alg}
    if typ is not None:
        h["typ"] = typ
    if kid is True:
        h["kid"] = key.kid
    elif isinstance(kid, str):
        h["kid"] = kid
    h = override(h, **(header or {}))
    hb = compact(h)
    pb = payload if isinstance(payload, bytes) else compact(payload)
    signing_input = f"{b64url(hb)}.{b64url(pb)}".encode("ascii")
    if sign_alg is None:
        sign_alg = h["alg"] if isinstance(h.get("alg"), str) and _can_sign(key, h["alg"]) else key.alg
    return f"{signing_input.decode()}.{b64url(key.sign(signing_input, sign_alg))}"


def _can_sign(key: Key, alg: str) -> bool:
    kty = key.kty
    return (
        (kty == "oct" and alg in HMAC_ALGS)
        or (kty == "RSA" and alg[:2] in ("RS", "PS") and alg[2:] in _SHA)
        or (kty == "EC" and alg in _EC_CURVES)
        or (kty == "OKP" and alg in ("EdDSA", "Ed25519"))
    )


def hmac_jwt(payload: dict | bytes, secret: bytes | str, header: dict | None = None, alg: str = "HS256") -> str:
    """HMAC-``alg`` over the token with arbitrary ``secret`` bytes; the
    header is ``{"alg": alg, "typ": "JWT"}`` updated with ``header``."""
    return hs_sign(payload, secret, header=override({"alg": alg, "typ": "JWT"}, **(header or {})), alg=alg)


def unsigned(payload: dict | bytes, alg: str = "none", header: dict | None = None, signature: str = "") -> str:
    """An ``alg: none``-style token (``alg`` may be any spelling) with the
    given (already encoded) signature part, empty by default."""
    h: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    h.update(header or {})
    return assemble(h, payload, signature)


# ---------------------------------------------------------------------------
# Inspecting and mangling
# ---------------------------------------------------------------------------


def decode(token: str) -> tuple[dict, dict, bytes]:
    """(header, payload, signature bytes) without any verification."""
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), b64url_decode(s)


def strip_signature(token: str, keep_dot: bool = True) -> str:
    h, p, _ = token.split(".")
    return f"{h}.{p}." if keep_dot else f"{h}.{p}"


def tamper_signature(token: str) -> str:
    """Flip one bit in the middle of the signature."""
    h, p, s = token.split(".")
    sig = bytearray(b64url_decode(s))
    sig[len(sig) // 2] ^= 0x01
    return f"{h}.{p}.{b64url(bytes(sig))}"


def tamper_payload(token: str, **changes: Any) -> str:
    """Change payload claims, keep header and signature."""
    h, p, s = token.split(".")
    c = json.loads(b64url_decode(p))
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return f"{h}.{b64url(compact(c))}.{s}"


def der_to_jose_ecdsa(der: bytes, size: int) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def jose_to_der_ecdsa(raw: bytes) -> bytes:
    half = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def verify(token: str, key: Key) -> bool:
    """Verify a token's signature with ``key`` under the key's own alg (a
    self-check for this module's signing)."""
    from cryptography.exceptions import InvalidSignature

    h, p, s = token.split(".")
    data, sig = f"{h}.{p}".encode("ascii"), b64url_decode(s)
    alg = key.alg
    try:
        if alg in HMAC_ALGS:
            return hmac.compare_digest(sign_raw(key.private, alg, data), sig)
        pub = key.public
        if alg[:2] == "RS":
            pub.verify(sig, data, padding.PKCS1v15(), _SHA[alg[2:]]())
        elif alg[:2] == "PS":
            hh = _SHA[alg[2:]]()
            pub.verify(sig, data, padding.PSS(mgf=padding.MGF1(hh), salt_length=hh.digest_size), hh)
        elif alg in _EC_CURVES:
            pub.verify(jose_to_der_ecdsa(sig), data, ec.ECDSA(_SHA[alg[2:]]()))
        else:
            pub.verify(sig, data)
        return True
    except InvalidSignature:
        return False


# ---------------------------------------------------------------------------
# Gateway tokens: the MSE/Higress oauth format, HMAC with a consumer's
# secret (checking the tokens the plugin issues, forging others). Nothing
# here is shared with the plugin's Rust code on purpose.
# ---------------------------------------------------------------------------

AT_JWT_TYP = "application/at+jwt"


def hs_sign(
    claims: dict | bytes,
    secret: str | bytes,
    header: dict | bytes | None = None,
    alg: str = "HS256",
    sort_keys: bool = False,
) -> str:
    """Sign ``claims`` with HMAC ``alg`` (HS256 by default).

    ``header`` defaults to ``{"alg": alg, "typ": "application/at+jwt"}``; the
    header's own ``alg`` value is NOT consulted for the MAC (so a forged
    header can claim anything while the signature is real HMAC-``alg``).
    """
    if header is None:
        header = {"alg": alg, "typ": AT_JWT_TYP}
    h = header if isinstance(header, bytes) else compact(header, sort_keys)
    p = claims if isinstance(claims, bytes) else compact(claims, sort_keys)
    signing_input = f"{b64url(h)}.{b64url(p)}".encode("ascii")
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return signing_input.decode("ascii") + "." + b64url(hmac.new(key, signing_input, HMAC_ALGS[alg]).digest())


def hs_verify(token: str, secret: str | bytes, alg: str = "HS256") -> bool:
    """True when the token's signature is HMAC-``alg`` over its first two
    segments with ``secret`` (constant-time compare)."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        sig = b64url_decode(parts[2], strict=True)
    except ValueError:
        return False
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode("ascii"), HMAC_ALGS[alg]).digest()
    return hmac.compare_digest(sig, expected)


def decode_strict(token: str) -> tuple[dict, dict, bytes]:
    """Split and decode a compact JWS: ``(header, claims, signature)``.

    Strict: exactly three unpadded base64url segments, header and claims
    JSON objects. Does not verify anything.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has 3 segments, got %d" % len(parts))
    header = json.loads(b64url_decode(parts[0], strict=True))
    claims = json.loads(b64url_decode(parts[1], strict=True))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWT header and claims must be JSON objects")
    return header, claims, b64url_decode(parts[2], strict=True)


def mse_claims(
    name: str,
    client_id: str,
    issuer: str = "Higress-Gateway",
    ttl: int = 7200,
    aud: str = "default",
    now: int | None = None,
    **extra: Any,
) -> dict:
    """Claims exactly as the MSE/Higress oauth plugin issues them
    (no ``scope``; ``aud`` a single string)."""
    iat = int(time.time()) if now is None else int(now)
    result = {
        "aud": aud,
        "client_id": client_id,
        "exp": iat + int(ttl),
        "iat": iat,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "sub": name,
    }
    result.update(extra)
    return result


def mse_token(
    name: str,
    client_id: str,
    client_secret: str,
    issuer: str = "Higress-Gateway",
    ttl: int = 7200,
    aud: str = "default",
    now: int | None = None,
    **extra: Any,
) -> str:
    """A token in the MSE/Higress oauth format: header
    ``{"alg":"HS256","typ":"application/at+jwt"}`` and claims with sorted keys
    (as that plugin's JSON library writes them), HS256 with the secret."""
    token_claims = mse_claims(name, client_id, issuer=issuer, ttl=ttl, aud=aud, now=now, **extra)
    return hs_sign(token_claims, client_secret, header={"alg": "HS256", "typ": AT_JWT_TYP}, sort_keys=True)
