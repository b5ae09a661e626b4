"""An independent HS256 JWT signer / decoder (standard library only).

Used by the end-to-end tests to check the tokens the plugin issues and to
forge tokens the plugin must accept (MSE/Higress-format tokens) or refuse
(tampered, ``alg: none``, another consumer's secret, expired, ...).

Nothing here is shared with the plugin's Rust code on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

__all__ = [
    "AT_JWT_TYP",
    "b64url_encode",
    "b64url_decode",
    "compact_json",
    "sign",
    "assemble",
    "decode",
    "verify",
    "mse_claims",
    "mse_token",
]

AT_JWT_TYP = "application/at+jwt"

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if any(c in text for c in "+/="):
        raise ValueError("not unpadded base64url: %r" % text)
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact_json(obj: Any, sort_keys: bool = False) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys).encode("utf-8")


def _mac(alg: str, secret: str | bytes, signing_input: bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, signing_input, _HASHES[alg]).digest()


def assemble(header: dict | bytes, claims: dict | bytes, signature: bytes | str = b"") -> str:
    """Build ``header.payload.signature`` from raw parts (no signing).

    ``header`` / ``claims`` may be dicts (compact JSON) or the exact bytes to
    encode; ``signature`` raw bytes (base64url-encoded here) or an already
    encoded string.
    """
    h = header if isinstance(header, bytes) else compact_json(header)
    p = claims if isinstance(claims, bytes) else compact_json(claims)
    s = signature if isinstance(signature, str) else b64url_encode(signature)
    return f"{b64url_encode(h)}.{b64url_encode(p)}.{s}"


def sign(
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
    h = header if isinstance(header, bytes) else compact_json(header, sort_keys)
    p = claims if isinstance(claims, bytes) else compact_json(claims, sort_keys)
    signing_input = f"{b64url_encode(h)}.{b64url_encode(p)}".encode("ascii")
    return signing_input.decode("ascii") + "." + b64url_encode(_mac(alg, secret, signing_input))


def decode(token: str) -> tuple[dict, dict, bytes]:
    """Split and decode a compact JWS: ``(header, claims, signature)``.

    Strict: exactly three base64url segments, header and claims JSON objects.
    Does not verify anything.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has 3 segments, got %d" % len(parts))
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("JWT header and claims must be JSON objects")
    return header, claims, b64url_decode(parts[2])


def verify(token: str, secret: str | bytes, alg: str = "HS256") -> bool:
    """True when the token's signature is HMAC-``alg`` over its first two
    segments with ``secret`` (constant-time compare)."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        sig = b64url_decode(parts[2])
    except ValueError:
        return False
    expected = _mac(alg, secret, f"{parts[0]}.{parts[1]}".encode("ascii"))
    return hmac.compare_digest(sig, expected)


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
    claims = {
        "aud": aud,
        "client_id": client_id,
        "exp": iat + int(ttl),
        "iat": iat,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "sub": name,
    }
    claims.update(extra)
    return claims


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
    claims = mse_claims(name, client_id, issuer=issuer, ttl=ttl, aud=aud, now=now, **extra)
    return sign(claims, client_secret, header={"alg": "HS256", "typ": AT_JWT_TYP}, sort_keys=True)
