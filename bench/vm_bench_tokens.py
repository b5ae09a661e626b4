#!/usr/bin/env python3
"""Inputs for bench/vm_bench.mjs: an RS256 plugin configuration, its auth-off
twin, and a file of distinct RS256 tokens (one per line).

The configuration has the shape of bench/run.py's ``edge_auth_rs256()`` (one
consumer with ``issuer``, ``audiences`` and an inline RSA-2048 ``jwks``); the
auth-off twin is the same plus ``"global_auth": false``, so the two differ
only in authentication. The key pair is made per run and never stored.

    .venv/bin/python bench/vm_bench_tokens.py --out-dir target/vm-bench [--count 20000]
        [--foreign 1] [--reuse]

``--foreign N`` signs the last N tokens with another key (the plugin must
refuse them: the harness's failure check). ``--reuse`` keeps files an earlier
run wrote with the same options less than 12 hours ago (the tokens live 24
hours): signing 20,000 tokens takes about 20 s.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "Higress-Gateway"  # as bench/run.py
AUDIENCE = "default"
KID = "bench-rsa"
TOKEN_LIFETIME = 24 * 3600
REUSE_FOR = 12 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwks(key: rsa.RSAPrivateKey) -> dict:
    numbers = key.public_key().public_numbers()

    def b(i: int) -> str:
        return b64url(i.to_bytes((i.bit_length() + 7) // 8, "big"))

    return {"keys": [{"kty": "RSA", "kid": KID, "alg": "RS256", "use": "sig", "n": b(numbers.n), "e": b(numbers.e)}]}


def token(key: rsa.RSAPrivateKey, jti: str, now: int) -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": KID}).encode())
    claims = b64url(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": f"user-{jti}", "jti": jti,
                                "iat": now, "exp": now + TOKEN_LIFETIME}).encode())
    signature = key.sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{claims}.{b64url(signature)}"


def config(key: rsa.RSAPrivateKey, **extra: object) -> dict:
    return {"consumers": [{"name": "bench-rs256", "issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks(key)}],
            **extra}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=20000, help="distinct tokens (default 20000)")
    parser.add_argument("--foreign", type=int, default=0, help="of those, signed by another key (default 0)")
    parser.add_argument("--reuse", action="store_true", help="keep a recent run's files with the same options")
    args = parser.parse_args(argv)
    if args.count < 1 or not 0 <= args.foreign <= args.count:
        parser.error("need --count >= 1 and 0 <= --foreign <= --count")

    out = args.out_dir
    stamp_file = out / "stamp.json"
    options = {"count": args.count, "foreign": args.foreign}
    if args.reuse and stamp_file.exists():
        stamp = json.loads(stamp_file.read_text())
        if stamp.get("options") == options and time.time() - stamp.get("made", 0) < REUSE_FOR:
            print(f"vm_bench_tokens: reusing {out} ({args.count:,} tokens)")
            return 0

    out.mkdir(parents=True, exist_ok=True)
    stamp_file.unlink(missing_ok=True)  # an interrupted run leaves nothing to reuse
    t0 = time.monotonic()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    signed_by_key = args.count - args.foreign
    tokens = [token(key if i < signed_by_key else other, f"vm-{i}", now) for i in range(args.count)]
    (out / "tokens.txt").write_text("".join(t + "\n" for t in tokens))
    (out / "config.json").write_text(json.dumps(config(key)))
    (out / "config-auth-off.json").write_text(json.dumps(config(key, global_auth=False)))
    stamp_file.write_text(json.dumps({"options": options, "made": now}))
    print(f"vm_bench_tokens: {args.count:,} RS256 tokens ({args.foreign} by another key) "
          f"in {out} ({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
