#!/usr/bin/env python3
"""Throughput/latency benchmark: edge-auth vs Envoy's native jwt_authn.

Run by ``make bench`` as ``.venv/bin/python bench/run.py`` from the repo root.

Every scenario is one Envoy (``--concurrency 1``) whose main listener runs the
scenario's HTTP filters and then the router, in front of an upstream that
costs next to nothing and is the same for every scenario: a second listener
of the same Envoy answering ``200 ok`` with a ``direct_response``. All Envoys
are started first and checked (200 with the token, 401 without it where the
scenario authenticates); then, per scenario, a short wrk warm-up followed by
the measured ``wrk --latency`` run. On a machine with at least two CPUs, wrk
is pinned to one CPU and the Envoys to another so they do not fight. Then
the co-scheduled rounds: each goal's two Envoys loaded at the same time on
that one CPU, so both see the same machine; their ratio of CPU per request
decides the goal (rounds taken one after another move too much on a shared
VM). ``--ab-wasm other.wasm`` adds a twin of every edge-auth row running
another build, measured against it the same way.

The result table goes to stdout and into the `throughput` section of
BENCHMARKS.md (other sections are left alone). The bench is a report: it exits non-zero only when a scenario
is broken (a failed check, non-2xx responses or socket errors under load),
never because of a timing.

Adding a row: append a :class:`Scenario` to :data:`SCENARIOS` (its HTTP
filters, the token it sends, whether it must refuse a request without one,
and which jwt_authn row it is compared with); a new kind of token goes into
:data:`TOKENS`, a new goal into :data:`TARGETS`.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlencode

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "e2e"))

import harness  # noqa: E402  (e2e/harness.py)
from envoy_process import envoy_pid, envoy_version  # noqa: E402  (shared with e2e/soak)

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import report_section  # noqa: E402  (scripts/report_section.py)

OUTPUT = REPO_ROOT / "BENCHMARKS.md"
#: Other processes using more CPUs than this during a run skew it.
QUIET_LOAD = 0.25
BENCH_PATH = "/bench"

# One consumer; the same secret is the HS256 key of the jwt_authn provider.
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-6f1d0c9a4b7e2853a1c4d9e0f7b6a5c3"  # 46 chars
ISSUER = "Higress-Gateway"  # edge-auth's default issuer
AUDIENCE = "default"  # edge-auth's default audience (global credentials)


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def edge_auth_config(**extra: Any) -> dict:
    return {
        "consumers": [{"name": "bench", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}],
        **extra,
    }


def edge_auth(**extra: Any) -> list[dict]:
    return [harness.wasm_filter(edge_auth_config(**extra))]


def bench_filter(crate: str) -> list[dict]:
    """bench/<crate>: a proxy-wasm filter that does nothing (built here on
    first use), to measure what a wasm filter costs Envoy before any work."""
    crate_dir = REPO_ROOT / "bench" / crate
    subprocess.run(["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1"],
                   cwd=crate_dir, check=True, timeout=900)
    wasm = crate_dir / "target" / "wasm32-wasip1" / "release" / f"{crate}.wasm"
    return [harness.wasm_filter("", wasm=wasm, name="empty", root_id="empty")]


def empty_filter() -> list[dict]:
    """bench/empty_filter: built on the proxy-wasm SDK (every callback exported)."""
    return bench_filter("empty_filter")


def minimal_filter() -> list[dict]:
    """bench/minimal_filter: no SDK, only the callbacks a filter needs exported."""
    return bench_filter("minimal_filter")


#: jwt_authn's verified-JWT cache, as large as edge-auth's default token cache.
JWT_CACHE_CONFIG = {"jwt_cache_size": 1024}


def jwt_authn(jwks: dict, provider: str = "bench", cache: bool = False, cache_size: int | None = None) -> list[dict]:
    """Envoy's native JWT filter requiring ``provider`` on every path; with
    ``cache`` its verified-JWT cache (``jwt_cache_config``) is on."""
    settings: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": json.dumps(jwks)},
        "forward": True,
    }
    if cache:
        settings["jwt_cache_config"] = dict(JWT_CACHE_CONFIG)
        if cache_size is not None:
            settings["jwt_cache_config"]["jwt_cache_size"] = cache_size
    return [
        {
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {provider: settings},
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": provider}}],
            },
        }
    ]


def hs256_jwks() -> dict:
    return {"keys": [{"kty": "oct", "alg": "HS256", "k": b64url(CLIENT_SECRET.encode())}]}


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

ISSUE_QUERY = urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})

# Each edge-auth row is compared with the jwt_authn row of the same
# algorithm and the same caching: edge-auth's verified-token cache (on by
# default) against jwt_authn's JWT cache (`jwt_cache_config`, off by
# default), and both off.
NO_AUTH = "no-auth"
JWT_HS256 = "jwt_authn HS256, cache off"
JWT_HS256_CACHE = "jwt_authn HS256, cache on"
EDGE_HS256 = "edge-auth HS256, cache on"
EDGE_HS256_NOCACHE = "edge-auth HS256, cache off"
JWT_RS256 = "jwt_authn RS256, cache off"
JWT_RS256_CACHE = "jwt_authn RS256, cache on"
EDGE_RS256 = "edge-auth RS256, cache on"
EDGE_RS256_NOCACHE = "edge-auth RS256, cache off"


class Rs256:
    """One RSA-2048 key pair for the RS256 rows (made per run, never stored)."""

    _key = None

    @classmethod
    def key(cls):
        if cls._key is None:
            from cryptography.hazmat.primitives.asymmetric import rsa

            cls._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls._key

    @classmethod
    def jwks(cls) -> dict:
        numbers = cls.key().public_key().public_numbers()

        def b(i: int) -> str:
            return b64url(i.to_bytes((i.bit_length() + 7) // 8, "big"))

        return {"keys": [{"kty": "RSA", "kid": "bench-rsa", "alg": "RS256", "use": "sig",
                          "n": b(numbers.n), "e": b(numbers.e)}]}

    @classmethod
    def token(cls, _envoy: Any = None) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench-rsa"}).encode())
        claims = b64url(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-rs256",
                                    "iat": now, "exp": now + 3600}).encode())
        signature = cls.key().sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{claims}.{b64url(signature)}"


class Es256:
    """One P-256 key pair for the ES256 rows (made per run, never stored)."""

    _key = None

    @classmethod
    def key(cls):
        if cls._key is None:
            from cryptography.hazmat.primitives.asymmetric import ec

            cls._key = ec.generate_private_key(ec.SECP256R1())
        return cls._key

    @classmethod
    def jwks(cls) -> dict:
        numbers = cls.key().public_key().public_numbers()
        return {"keys": [{"kty": "EC", "crv": "P-256", "kid": "bench-ec", "alg": "ES256", "use": "sig",
                          "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}]}

    @classmethod
    def token(cls, _envoy: Any = None, jti: str | None = None) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        header = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "bench-ec"}).encode())
        claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bench-es256", "iat": now, "exp": now + 3600}
        if jti is not None:
            claims["jti"] = jti
        payload = b64url(json.dumps(claims).encode())
        der = cls.key().sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s_ = decode_dss_signature(der)
        return f"{header}.{payload}.{b64url(r.to_bytes(32, 'big') + s_.to_bytes(32, 'big'))}"


def rs256_token(jti: str) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    now = int(time.time())
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench-rsa"}).encode())
    claims = b64url(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": f"user-{jti}", "jti": jti,
                                "iat": now, "exp": now + 3600}).encode())
    signature = Rs256.key().sign(f"{header}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{claims}.{b64url(signature)}"


#: Sizes of the many-token sets (set from the command line).
TOKEN_SET_SIZES = {"rs256-distinct": 20000, "es256-distinct": 20000, "rs256-cold": 60000}
_TOKEN_FILES: dict[str, Path] = {}


def token_file(name: str) -> Path:
    """A file of distinct tokens for set ``name`` (made once per run)."""
    if name not in _TOKEN_FILES:
        n = TOKEN_SET_SIZES[name]
        sign = (lambda i: Es256.token(jti=f"{name}-{i}")) if name.startswith("es256") else \
            (lambda i: rs256_token(f"{name}-{i}"))
        t0 = time.monotonic()
        path = harness.run_dir() / f"bench-tokens-{name}.txt"
        path.write_text("".join(sign(i) + "\n" for i in range(n)))
        print(f"bench: {n:,} {name} tokens signed in {time.monotonic() - t0:.0f}s")
        _TOKEN_FILES[name] = path
    return _TOKEN_FILES[name]


def edge_auth_es256() -> list[dict]:
    config = {"consumers": [{"name": "bench-es256", "issuer": ISSUER, "audiences": [AUDIENCE],
                             "jwks": Es256.jwks()}]}
    return [harness.wasm_filter(config)]


def edge_auth_rs256(cache_size: int | None) -> list[dict]:
    config: dict[str, Any] = {"consumers": [{"name": "bench-rs256", "issuer": ISSUER, "audiences": [AUDIENCE],
                                             "jwks": Rs256.jwks()}]}
    if cache_size is not None:
        config["token_cache_size"] = cache_size
    return [harness.wasm_filter(config)]


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    #: HTTP filters in front of the router.
    filters: Callable[[], list[dict]]
    #: Key of :data:`TOKENS`: the bearer token wrk sends (None: no header).
    token: str | None = "hs256"
    #: Must answer 401 without a token (checked before loading).
    authenticates: bool = True
    #: The row shown in the "vs jwt_authn" column for this one.
    jwt_reference: str | None = JWT_HS256
    #: Only run with --diagnostics (to find where the time goes).
    diagnostic: bool = False
    note: str = ""
    #: Many distinct tokens (a key of TOKEN_SET_SIZES) sent by tokens.lua
    #: instead of the one ``token`` (which still serves the check).
    token_set: str | None = None
    #: tokens.lua's mode: "cycle" (tokens seen again) or "new" (cold).
    token_mode: str = "cycle"
    #: Send every token of the set once before the measured rounds.
    warm_once: bool = False
    #: How many times. One pass shows a token to one worker only, the one
    #: its connection is on.
    warm_passes: int = 1
    #: Envoy worker threads (one plugin VM each).
    concurrency: int = 1
    path: str = BENCH_PATH
    #: A form POSTed instead of a GET (token issuance rows).
    post_body: str | None = None


#: Warm-up passes of the `--concurrency 2` rows. A pass shows each token to
#: the worker its connection landed on, about half of them to each; after
#: three, a worker has met about 7 in 8 tokens itself and finds most others
#: in the shared ring, so the rounds measure the steady state rather than
#: the second worker's first sight of each token (which made that row climb
#: from round to round). jwt_authn's per-worker JWT cache gets the same
#: passes.
WARM_PASSES_TWO_WORKERS = 3

SCENARIOS: list[Scenario] = [
    Scenario(NO_AUTH, lambda: [], authenticates=False, jwt_reference=None, note="the router only"),
    Scenario(
        JWT_HS256,
        lambda: jwt_authn(hs256_jwks()),
        jwt_reference=JWT_HS256,
        note="Envoy's native `envoy.filters.http.jwt_authn`, the secret as an inline `oct` JWKS; its JWT "
        "cache off (the default)",
    ),
    Scenario(
        JWT_HS256_CACHE,
        lambda: jwt_authn(hs256_jwks(), cache=True),
        jwt_reference=JWT_HS256_CACHE,
        note=f"the same with its JWT cache on (`jwt_cache_config: {json.dumps(JWT_CACHE_CONFIG)}`)",
    ),
    Scenario(
        EDGE_HS256,
        lambda: edge_auth(),
        jwt_reference=JWT_HS256_CACHE,
        note="the edge-auth wasm filter (V8): one consumer, all defaults (verified-token cache on, 1024 entries)",
    ),
    Scenario(
        EDGE_HS256_NOCACHE,
        lambda: edge_auth(token_cache_size=0),
        jwt_reference=JWT_HS256,
        note="the same with `token_cache_size: 0`: an HS256 verification in wasm on every request",
    ),
    Scenario(
        JWT_RS256,
        lambda: jwt_authn(Rs256.jwks()),
        token="rs256",
        jwt_reference=JWT_RS256,
        note="Envoy's native `jwt_authn` with an inline RSA-2048 JWKS; its JWT cache off (the default)",
    ),
    Scenario(
        JWT_RS256_CACHE,
        lambda: jwt_authn(Rs256.jwks(), cache=True),
        token="rs256",
        jwt_reference=JWT_RS256_CACHE,
        note=f"the same with its JWT cache on (`jwt_cache_config: {json.dumps(JWT_CACHE_CONFIG)}`)",
    ),
    Scenario(
        EDGE_RS256,
        lambda: edge_auth_rs256(None),
        token="rs256",
        jwt_reference=JWT_RS256_CACHE,
        note="edge-auth, a JWT consumer with the same inline RSA key; verified-token cache on (default)",
    ),
    Scenario(
        EDGE_RS256_NOCACHE,
        lambda: edge_auth_rs256(0),
        token="rs256",
        jwt_reference=JWT_RS256,
        note="the same with `token_cache_size: 0`: an RSA verification in wasm on every request",
    ),
    # Many distinct tokens, each seen once before measuring (issue 10).
    *[
        sc
        for alg, jwks, edge in (("RS256", Rs256.jwks, lambda: edge_auth_rs256(None)),
                                ("ES256", Es256.jwks, edge_auth_es256))
        for sc in (
            Scenario(
                f"jwt_authn {alg}, many tokens, cache on",
                (lambda jwks=jwks, alg=alg: jwt_authn(jwks(), cache=True,
                                                     cache_size=TOKEN_SET_SIZES[f"{alg.lower()}-distinct"])),
                token=alg.lower(),
                token_set=f"{alg.lower()}-distinct",
                warm_once=True,
                jwt_reference=None,
                note=f"native jwt_authn, {alg}, its JWT cache as large as the token set; every token sent once "
                "before the rounds, then wrk goes round them",
            ),
            Scenario(
                f"edge-auth {alg}, many tokens, cache on",
                edge,
                token=alg.lower(),
                token_set=f"{alg.lower()}-distinct",
                warm_once=True,
                jwt_reference=f"jwt_authn {alg}, many tokens, cache on",
                note=f"edge-auth, {alg}, defaults (verified-token cache by memory, `token_cache_bytes` 16 MiB); "
                "the same tokens, warmed the same way",
            ),
        )
    ],
    Scenario(
        "jwt_authn RS256, every token new",
        lambda: jwt_authn(Rs256.jwks()),
        token="rs256",
        token_set="rs256-cold",
        token_mode="new",
        jwt_reference=None,
        note="native jwt_authn, cache off, a token never seen before on every request (size the set with "
        "--cold-tokens to outlast the run)",
    ),
    Scenario(
        "edge-auth RS256, every token new",
        lambda: edge_auth_rs256(None),
        token="rs256",
        token_set="rs256-cold",
        token_mode="new",
        jwt_reference="jwt_authn RS256, every token new",
        note="edge-auth, defaults: every request a cache miss and a full RS256 verification in wasm",
    ),
    Scenario(
        "jwt_authn RS256, many tokens, cache on, --concurrency 2",
        lambda: jwt_authn(Rs256.jwks(), cache=True, cache_size=TOKEN_SET_SIZES["rs256-distinct"]),
        token="rs256",
        token_set="rs256-distinct",
        warm_once=True,
        warm_passes=WARM_PASSES_TWO_WORKERS,
        concurrency=2,
        jwt_reference=None,
        note="as its --concurrency 1 row, two worker threads",
    ),
    Scenario(
        "edge-auth RS256, many tokens, cache on, --concurrency 2",
        lambda: edge_auth_rs256(None),
        token="rs256",
        token_set="rs256-distinct",
        warm_once=True,
        warm_passes=WARM_PASSES_TWO_WORKERS,
        concurrency=2,
        jwt_reference="jwt_authn RS256, many tokens, cache on, --concurrency 2",
        note="two workers (two plugin VMs) sharing verified tokens through proxy-wasm shared data",
    ),
    # Token issuance against a direct_response baseline.
    Scenario("no-auth, GET token URL", lambda: [], token=None, authenticates=False, jwt_reference=None,
             path=f"/oauth2/token?{ISSUE_QUERY}", note="baseline: the same GET, the router only"),
    Scenario("edge-auth token issuance, GET", lambda: edge_auth(), token=None, authenticates=False,
             jwt_reference="no-auth, GET token URL", path=f"/oauth2/token?{ISSUE_QUERY}",
             note="client_credentials GET to edge-auth's token endpoint: an HS256 token signed per request"),
    Scenario("no-auth, POST token URL", lambda: [], token=None, authenticates=False, jwt_reference=None,
             path="/oauth2/token", post_body=ISSUE_QUERY, note="baseline: the same POST, the router only"),
    Scenario("edge-auth token issuance, POST", lambda: edge_auth(), token=None, authenticates=False,
             jwt_reference="no-auth, POST token URL", path="/oauth2/token", post_body=ISSUE_QUERY,
             note="client_credentials POST (form body) to edge-auth's token endpoint"),
    # --diagnostics: the wasm filter doing (almost) no work.
    Scenario(
        "empty wasm filter",
        empty_filter,
        authenticates=False,
        diagnostic=True,
        note="diagnostic: `bench/empty_filter`, a proxy-wasm filter that continues every callback and makes "
        "no host call: the cost of any wasm filter in V8",
    ),
    Scenario(
        "empty wasm filter, minimal exports",
        minimal_filter,
        authenticates=False,
        diagnostic=True,
        note="diagnostic: `bench/minimal_filter`, the same without the SDK, exporting only context creation and "
        "the two header callbacks (Envoy skips a callback a module does not export): what the SDK's other "
        "exported callbacks cost per request",
    ),
    Scenario(
        "edge-auth, auth off (global_auth:false)",
        lambda: edge_auth(global_auth=False),
        authenticates=False,
        diagnostic=True,
        note="diagnostic: edge-auth with `global_auth: false` (route open: VM calls, `:path` read, no JWT)",
    ),
    Scenario(
        "edge-auth, route _disable_d",
        lambda: edge_auth(_rules_=[{"_match_route_": ["bench"], "_disable_": True}]),
        authenticates=False,
        diagnostic=True,
        note="diagnostic: edge-auth with a `_disable_` rule on the route (VM calls, `route_name` read, no JWT)",
    ),
]


#: Appended to an edge-auth row's name for its --ab-wasm twin, whose
#: reference (``jwt_reference``) is that row.
AB_TWIN = " [B]"


def is_ab_twin(scenario: Scenario) -> bool:
    return scenario.name.endswith(AB_TWIN)


def with_wasm(filters: list[dict], wasm: Path) -> list[dict]:
    """``filters`` with every edge-auth wasm module swapped for ``wasm``."""
    ours = str(harness.wasm_path())

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("filename") == ours:
                return {**node, "filename": str(wasm)}
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    return swap(filters)


def ab_twins(scenarios: Sequence[Scenario], wasm: Path) -> list[Scenario]:
    """``scenarios`` with, right after each edge-auth one, its twin running
    ``wasm`` (named ``<name> [B]``, compared with its A row). Adjacent rows
    of a round share its noise, so the A/B ratio holds still better than
    two separate runs do."""
    out: list[Scenario] = []
    for s in scenarios:
        out.append(s)
        if s.name.startswith("edge-auth"):
            out.append(dataclasses.replace(
                s, name=f"{s.name}{AB_TWIN}", filters=(lambda f=s.filters: with_wasm(f(), wasm)),
                jwt_reference=s.name, note=f"{s.note} (B: {wasm.name})"))
    return out


def ab_lines(rows: Sequence[Row], paired: Sequence[Paired] = ()) -> list[str]:
    """Per A/B pair: the median of per-round req/s ratios (B/A) and of the
    per-round differences in Envoy CPU per request (B - A)."""
    by_name = {r.scenario.name: r for r in rows}
    out = []
    for row in rows:
        a = by_name.get(row.scenario.jwt_reference or "") if is_ab_twin(row.scenario) else None
        if a is None or not a.runs or not row.runs:
            continue
        pairs = list(zip(row.runs, a.runs))
        ratios = [b.rps / x.rps for b, x in pairs]
        diffs = [b.server_us_per_req - x.server_us_per_req for b, x in pairs
                 if b.server_us_per_req is not None and x.server_us_per_req is not None]
        line = (f"A/B: {row.scenario.name}: req/s B/A {statistics.median(ratios):.1%} "
                f"(rounds {' / '.join(f'{r:.0%}' for r in ratios)})")
        if diffs:
            line += (f"; CPU/req B-A {statistics.median(diffs):+.1f} µs "
                     f"(rounds {' / '.join(f'{d:+.0f}' for d in diffs)})")
        pair = next((p for p in paired if p.scenario == row.scenario.name), None)
        if pair is not None:
            line += f"; {pair.describe()}"
        out.append(line)
    return out


@dataclasses.dataclass(frozen=True)
class TokenSource:
    #: The scenario whose Envoy issues it.
    issuer_scenario: str
    fetch: Callable[[harness.Envoy], str]


def fetch_edge_auth_token(envoy: harness.Envoy) -> str:
    query = urlencode(
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )
    r = envoy.get(f"/oauth2/token?{query}")
    if r.status != 200:
        raise BenchError(f"token endpoint answered {r.status}: {r.text[:300]}")
    token = r.json().get("access_token")
    if not isinstance(token, str) or token.count(".") != 2:
        raise BenchError(f"token endpoint gave no JWT access_token: {r.text[:300]}")
    return token


TOKENS: dict[str, TokenSource] = {
    "hs256": TokenSource(EDGE_HS256, fetch_edge_auth_token),
    # Signed here; any running Envoy will do as the "issuer".
    "rs256": TokenSource(JWT_RS256, Rs256.token),
    "es256": TokenSource(JWT_RS256, Es256.token),
}


@dataclasses.dataclass(frozen=True)
class Target:
    scenario: str
    reference: str
    #: None: the ratio is reported, with no goal set (no measurement to base one on yet).
    min_ratio: float | None
    label: str = ""

    def describe(self) -> str:
        ref = f"{self.label} ({self.reference})" if self.label else self.reference
        if self.min_ratio is None:
            return f"{self.scenario} throughput compared with {ref} (reported, no goal set)"
        return f"{self.scenario} throughput >= {self.min_ratio:.0%} of {ref}"


# Like with like only: a goal against a reference that does less work (e.g.
# a cached edge-auth against an uncached jwt_authn) would be met by construction.
TARGETS: list[Target] = [
    Target(EDGE_HS256, JWT_HS256_CACHE, 0.90, label="native jwt_authn, both caches on"),
    Target(EDGE_HS256_NOCACHE, JWT_HS256, 0.90, label="native jwt_authn, both caches off"),
    Target(EDGE_RS256, JWT_RS256_CACHE, 0.90, label="native jwt_authn, both caches on"),
    Target(EDGE_RS256_NOCACHE, JWT_RS256, None, label="native jwt_authn, both caches off"),
    Target("edge-auth RS256, many tokens, cache on", "jwt_authn RS256, many tokens, cache on", 1.00,
           label="many distinct RS256 tokens, native jwt_authn"),
    Target("edge-auth ES256, many tokens, cache on", "jwt_authn ES256, many tokens, cache on", 1.00,
           label="many distinct ES256 tokens, native jwt_authn"),
    Target("edge-auth RS256, every token new", "jwt_authn RS256, every token new", None,
           label="cold path, native jwt_authn"),
    Target("edge-auth RS256, many tokens, cache on, --concurrency 2",
           "jwt_authn RS256, many tokens, cache on, --concurrency 2", None, label="two workers"),
    Target("edge-auth token issuance, GET", "no-auth, GET token URL", None, label="direct_response"),
    Target("edge-auth token issuance, POST", "no-auth, POST token URL", None, label="direct_response"),
    # The floor (with --diagnostics): the wasm filter on the request doing no
    # verification at all, next to jwt_authn's cached verification. If this
    # is below 100%, no cache design inside the wasm VM can meet the
    # many-tokens goals above; the gap is the VM's per-request cost.
    Target("edge-auth, auth off (global_auth:false)", "jwt_authn RS256, many tokens, cache on", None,
           label="the wasm filter's floor vs a cached native verification"),
    Target("empty wasm filter", "jwt_authn RS256, many tokens, cache on", None,
           label="a wasm filter doing nothing vs a cached native verification"),
    Target("empty wasm filter, minimal exports", "empty wasm filter", None,
           label="only the callbacks a filter needs exported vs the SDK's every callback"),
    # The ladder read against no-auth: what any wasm filter costs before it
    # does anything, and what a cached native verification costs.
    Target("empty wasm filter, minimal exports", NO_AUTH, None,
           label="the bare wasm floor: a filter that exports three callbacks and does nothing"),
    Target("jwt_authn RS256, many tokens, cache on", NO_AUTH, None,
           label="what a cached native verification costs"),
]


# ---------------------------------------------------------------------------
# Envoy with a direct_response upstream
# ---------------------------------------------------------------------------


class BenchError(RuntimeError):
    pass


def upstream_listener(port: int) -> dict:
    """A listener answering every request with 200 "ok" (no upstream hop)."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "upstream",
        "codec_type": "AUTO",
        "route_config": {
            "name": "upstream_route",
            "virtual_hosts": [
                {
                    "name": "upstream",
                    "domains": ["*"],
                    "routes": [
                        {
                            "name": "ok",
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": "ok"}},
                        }
                    ],
                }
            ],
        },
        "http_filters": [harness.router_filter()],
    }
    return {
        "name": "upstream",
        "address": harness.socket_address(port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


#: Every port handed to an Envoy of this run: all of them are spawned before
#: any binds, so a port free now may already be another Envoy's.
_PORTS_GIVEN: set[int] = set()


def distinct_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = harness.free_port()
        if p not in _PORTS_GIVEN:
            _PORTS_GIVEN.add(p)
            ports.append(p)
    return ports


class BenchEnvoy(harness.Envoy):
    """harness.Envoy, optionally pinned to CPUs with taskset."""

    def __init__(self, *args: Any, cpus: str | None = None, concurrency: int = 1, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.cpus = cpus
        self.concurrency = concurrency

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--concurrency") + 1] = str(self.concurrency)
        return ["taskset", "-c", self.cpus, *cmd] if self.cpus else cmd

    def rss_mib(self) -> float | None:
        """Resident memory of the envoy process (VmRSS), MiB."""
        pid = envoy_pid(self.pid)
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
        return None


UPSTREAMS = {
    "envoy": "a second listener of the same Envoy answering 200 ok (direct_response)",
    "none": "no upstream: the protected route itself is a direct_response (filters still run)",
    "echo": "e2e/echo_server.py (Python, threaded) in its own process",
}


def make_envoy(scenario: Scenario, cpus: str | None, upstream: str, echo_port: int | None) -> BenchEnvoy:
    listener, admin, upstream_port = distinct_ports(3)
    bootstrap = harness.build_bootstrap(
        listener_port=listener,
        admin_port=admin,
        upstream_port=echo_port if upstream == "echo" else upstream_port,
        http_filters=[*scenario.filters(), harness.router_filter()],
        routes=[("bench", "/", harness.ECHO_CLUSTER)],
        access_log=False,
    )
    bootstrap["node"] = {"id": "edge-auth-bench", "cluster": "edge-auth-bench"}
    if upstream == "envoy":
        bootstrap["static_resources"]["listeners"].append(upstream_listener(upstream_port))
    elif upstream == "none":
        hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
            del route["route"]
            route["direct_response"] = {"status": 200, "body": {"inline_string": "ok"}}
    safe = re.sub(r"[^A-Za-z0-9]+", "-", scenario.name).strip("-")
    return BenchEnvoy(bootstrap, listener, admin, name=f"bench-{safe}", log_level="warn", cpus=cpus,
                      concurrency=scenario.concurrency)


UPSTREAM_DOCS = {
    "envoy": "a second listener of the same Envoy answering `200 ok` with a `direct_response`, so it "
    "costs next to nothing and is identical for every config (its cost is on the same worker thread "
    "and is included in every row).",
    "none": "none; the protected route itself answers with a `direct_response` after the filters ran "
    "(diagnostic mode: isolates the filter cost).",
    "echo": "`e2e/echo_server.py` (Python) in its own process (diagnostic mode: the Python upstream "
    "is the bottleneck).",
}


class EchoProcess:
    """e2e/echo_server.py as a child process (only for --upstream echo)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "e2e" / "echo_server.py"), "0"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.stop()
            raise BenchError(f"echo_server.py did not print its port (got {line!r})")
        self.port = int(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def machine_busy_seconds() -> float | None:
    """User+nice+system CPU time of the whole machine (first line of /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return sum(int(x) for x in fields[1:4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def machine_load(seconds: float = 1.0) -> float | None:
    """CPUs' worth of user+system time used on the machine over ``seconds``."""
    b0, t0 = machine_busy_seconds(), time.monotonic()
    time.sleep(seconds)
    b1, t1 = machine_busy_seconds(), time.monotonic()
    return None if b0 is None or b1 is None else (b1 - b0) / (t1 - t0)


def wait_quiet(max_wait: float, threshold: float = QUIET_LOAD) -> float | None:
    """Wait (up to ``max_wait`` seconds) until the machine is idle; the last load seen."""
    deadline = time.monotonic() + max_wait
    while True:
        load = machine_load(1.0)
        if load is None or load < threshold or time.monotonic() >= deadline:
            return load


def cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU of a process and all its threads."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------

_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


@dataclasses.dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    client_cpu: float  # wrk CPU seconds / wall seconds
    server_cpu_s: float | None  # Envoy CPU seconds during the run
    #: CPUs' worth of user+system time spent by anything but this Envoy and
    #: wrk during the run (other processes on the machine skew the numbers).
    other_load: float | None
    output: str

    @property
    def server_us_per_req(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6

    @property
    def errors(self) -> list[str]:
        out = []
        if self.non_2xx:
            out.append(f"{self.non_2xx} non-2xx/3xx responses")
        bad = {k: v for k, v in self.socket_errors.items() if v}
        if bad:
            out.append("socket errors " + ", ".join(f"{k} {v}" for k, v in bad.items()))
        if not self.requests:
            out.append("no requests completed")
        return out


def parse_latency(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise BenchError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    def need(pattern: str) -> re.Match:
        m = re.search(pattern, output, re.M)
        if not m:
            raise BenchError(f"unexpected wrk output (no match for {pattern!r}):\n{output}")
        return m

    done = need(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests": int(done.group(1)),
        "seconds": float(done.group(2)) * _UNITS_MS[done.group(3)] / 1000.0,
        "rps": float(need(r"^Requests/sec:\s*([\d.]+)").group(1)),
        "p50_ms": parse_latency(need(r"^\s*50%\s+(\S+)").group(1)),
        "p99_ms": parse_latency(need(r"^\s*99%\s+(\S+)").group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups())))
        if sock
        else {},
    }


@dataclasses.dataclass(frozen=True)
class Load:
    wrk: str
    threads: int
    connections: int
    duration: int
    warmup: int
    cpus: str | None

    def args(self, url: str, token: str | None, duration: int, shown: bool = False,
             scripted: bool = False) -> list[str]:
        cmd = ["taskset", "-c", self.cpus] if self.cpus else []
        cmd += [self.wrk, f"-t{self.threads}", f"-c{self.connections}", f"-d{duration}s", "--latency"]
        if scripted:
            cmd += ["-s", str(BENCH_DIR / "tokens.lua")]
        elif token is not None:
            cmd += ["-H", f"Authorization: Bearer {'$TOKEN' if shown else token}"]
        return cmd + [url]

    def shown(self) -> str:
        cmd = self.args(f"http://127.0.0.1:<port>{BENCH_PATH}", "x", self.duration, shown=True)
        # Leave $TOKEN unexpanded in the quoted header.
        return " ".join(f'"{a}"' if " " in a else a for a in cmd)

    def run(self, envoy: harness.Envoy, token: str | None, duration: int,
            scenario: Scenario | None = None, mode: str | None = None, offset: int = 0) -> WrkResult:
        path = scenario.path if scenario else BENCH_PATH
        url = f"http://127.0.0.1:{envoy.listener_port}{path}"
        env = dict(os.environ, BENCH_THREADS=str(self.threads))
        scripted = False
        if scenario is not None and scenario.token_set:
            scripted = True
            env.update(BENCH_TOKENS=str(token_file(scenario.token_set)),
                       BENCH_TOKEN_MODE=mode or scenario.token_mode, BENCH_OFFSET=str(offset))
        elif scenario is not None and scenario.post_body is not None:
            scripted = True
            env.update(BENCH_BODY=scenario.post_body)
        pid = envoy_pid(envoy.pid)
        before_child = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy0, cpu0, t0 = machine_busy_seconds(), cpu_seconds(pid), time.monotonic()
        try:
            proc = subprocess.run(
                self.args(url, token, duration, scripted=scripted),
                env=env,
                capture_output=True,
                text=True,
                timeout=duration + 30,
            )
        except subprocess.TimeoutExpired as e:
            raise BenchError(f"wrk did not finish within {duration + 30}s") from e
        wall = time.monotonic() - t0
        cpu1, busy1 = cpu_seconds(pid), machine_busy_seconds()
        after_child = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise BenchError(f"wrk exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        if not envoy.running():
            raise BenchError(f"envoy {envoy.name} died under load\n{envoy.log_tail()}")
        client = (after_child.ru_utime + after_child.ru_stime) - (before_child.ru_utime + before_child.ru_stime)
        server = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
        other = None
        if busy0 is not None and busy1 is not None and server is not None and wall:
            other = max(0.0, (busy1 - busy0 - server - client) / wall)
        return WrkResult(
            **parse_wrk(proc.stdout),
            client_cpu=client / wall if wall else 0.0,
            server_cpu_s=server,
            other_load=other,
            output=proc.stdout,
        )


# ---------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------


def co_scheduled(load: Load, pair: Sequence[tuple[harness.Envoy, Row, str | None]],
                 duration: int) -> list[WrkResult]:
    """One co-scheduled round: every Envoy of ``pair`` loaded at the same
    time by its own wrk, all of them on the same CPU (the bench pins every
    Envoy to one). Whatever the machine does during the round, it does to
    all of them alike, so the ratio of their CPU per request holds still
    where rounds taken one after another move by 20-30%. Each run's CPU is
    its own process's."""
    results: list[WrkResult | BaseException | None] = [None] * len(pair)

    def go(i: int) -> None:
        envoy, row, token = pair[i]
        try:
            results[i] = load.run(envoy, token, duration, row.scenario, offset=row.sent)
        except BaseException as e:  # noqa: BLE001  (re-raised below, in the caller's thread)
            results[i] = e

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(pair))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = []
    for (_, row, _), res in zip(pair, results):
        if isinstance(res, BaseException) or res is None:
            raise BenchError(f"co-scheduled run of {row.scenario.name} failed: {res}")
        if res.errors:
            raise BenchError(f"co-scheduled run of {row.scenario.name}: {'; '.join(res.errors)}")
        row.sent += res.requests
        out.append(res)
    return out


@dataclasses.dataclass
class Paired:
    """Co-scheduled rounds of a row against its reference."""
    scenario: str
    reference: str
    #: (the row's run, the reference's run), one per round.
    runs: list[tuple[WrkResult, WrkResult]] = dataclasses.field(default_factory=list)
    failure: str | None = None

    def efficiency(self) -> list[float]:
        """Per round: the reference's CPU per request over the row's, i.e.
        the row's requests per CPU-second as a share of the reference's."""
        return [b.server_us_per_req / a.server_us_per_req for a, b in self.runs
                if a.server_us_per_req and b.server_us_per_req]

    def rps(self) -> list[float]:
        return [a.rps / b.rps for a, b in self.runs if b.rps]

    def describe(self) -> str:
        eff, rps = self.efficiency(), self.rps()
        if self.failure or not eff:
            return f"co-scheduled rounds failed ({self.failure})" if self.failure else \
                "no co-scheduled round measured"
        return (f"{statistics.median(eff):.1%} co-scheduled (requests per CPU-second, median of "
                f"{len(eff)} rounds: {' / '.join(f'{x:.0%}' for x in eff)}; side by side req/s "
                f"{statistics.median(rps):.1%})")


def pairs_to_measure(rows: Sequence[Row]) -> list[Paired]:
    """Every target and comparison whose two rows ran, and every A/B twin."""
    ok = {r.scenario.name for r in rows if not r.failure and r.runs}
    wanted = [(t.scenario, t.reference) for t in TARGETS]
    wanted += [(r.scenario.name, r.scenario.jwt_reference or "") for r in rows if is_ab_twin(r.scenario)]
    return [Paired(a, b) for a, b in wanted if a in ok and b in ok]


@dataclasses.dataclass
class Row:
    scenario: Scenario
    runs: list[WrkResult] = dataclasses.field(default_factory=list)
    failure: str | None = None
    #: Envoy's resident memory after the last round, MiB.
    rss_mib: float | None = None
    #: Requests sent so far (where the next cold run starts in its token set).
    sent: int = 0

    @property
    def result(self) -> WrkResult | None:
        """The median run by req/s (its own latencies go with it)."""
        if self.failure or not self.runs:
            return None
        ordered = sorted(self.runs, key=lambda r: r.rps)
        return ordered[(len(ordered) - 1) // 2]


def check(envoy: harness.Envoy, scenario: Scenario, tokens: dict[str, str], body: bytes | None) -> None:
    if scenario.path != BENCH_PATH:
        if scenario.post_body is not None:
            r = envoy.post(scenario.path, scenario.post_body,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            r = envoy.get(scenario.path)
        if r.status != 200:
            raise BenchError(f"[{scenario.name}] {scenario.path} answered {r.status} {r.body[:200]!r}")
        return
    headers = {"Authorization": f"Bearer {tokens[scenario.token]}"} if scenario.token else {}
    r = envoy.get(BENCH_PATH, headers=headers)
    if r.status != 200 or (body is not None and r.body != body):
        raise BenchError(
            f"[{scenario.name}] GET {BENCH_PATH} with the token answered {r.status} {r.body[:200]!r}, "
            "expected 200 'ok'"
        )
    if scenario.authenticates:
        r = envoy.get(BENCH_PATH)
        if r.status != 401:
            raise BenchError(
                f"[{scenario.name}] GET {BENCH_PATH} without a token answered {r.status} "
                f"{r.body[:200]!r}, expected 401"
            )


def pick_cpus(pin: bool) -> tuple[str | None, str | None]:
    """(cpus for wrk, cpus for Envoy)."""
    if not pin or shutil.which("taskset") is None:
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return str(allowed[0]), ",".join(map(str, allowed[1:]))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_describe() -> str:
    """The commit measured, and whether the tree differs from it (the report
    section's title says so too, see scripts/report_section.py)."""
    commit, dirty = report_section.provenance(REPO_ROOT)
    return f"{commit} + uncommitted changes ({len(dirty)} paths)" if dirty else commit


def pct(a: float | None, b: float | None) -> str:
    return f"{a / b:.1%}" if a is not None and b else "n/a"


def table(rows: Sequence[Row]) -> list[str]:
    by_name = {r.scenario.name: r for r in rows}

    def rps(name: str | None) -> float | None:
        row = by_name.get(name) if name else None
        res = row.result if row else None
        return res.rps if res else None

    lines = [
        "| config | req/s | p50 | p99 | vs no-auth | vs reference | Envoy CPU/req | CPU/req over no-auth "
        "| Envoy RSS | runs (req/s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cpu_of(row: Row | None) -> float | None:
        cpus = [r.server_us_per_req for r in row.runs if r.server_us_per_req is not None] if row else []
        return statistics.median(cpus) if cpus else None

    base_cpu = cpu_of(by_name.get(NO_AUTH))
    for row in rows:
        res = row.result
        if res is None:
            lines.append(f"| {row.scenario.name} | **FAILED**: {row.failure} | | | | | | | | |")
            continue
        cpu = cpu_of(row)
        over = f"{cpu - base_cpu:+.1f} µs" if cpu is not None and base_cpu is not None else "n/a"
        rss = f"{row.rss_mib:.0f} MiB" if row.rss_mib is not None else "n/a"
        lines.append(
            f"| {row.scenario.name} | {res.rps:,.0f} | {res.p50_ms:.2f} ms | {res.p99_ms:.2f} ms | "
            f"{pct(res.rps, rps(NO_AUTH))} | {pct(res.rps, rps(row.scenario.jwt_reference))} | "
            f"{f'{cpu:.1f} µs' if cpu is not None else 'n/a'} | {over} | {rss} | "
            f"{' / '.join(f'{r.rps:,.0f}' for r in row.runs)} |"
        )
    return lines


def target_lines(rows: Sequence[Row], paired: Sequence[Paired] = ()) -> list[str]:
    by_name = {r.scenario.name: r for r in rows}
    by_pair = {(p.scenario, p.reference): p for p in paired}
    out = []
    for t in TARGETS:
        kind = "Target" if t.min_ratio is not None else "Comparison"
        a, b = by_name.get(t.scenario), by_name.get(t.reference)
        ra, rb = (a.result if a else None), (b.result if b else None)
        if ra is None or rb is None:
            out.append(f"{kind}: {t.describe()}. This run: **not measured** (a row failed or was not run).")
            continue
        # Rounds interleave the configs: a ratio within one round shares
        # that round's machine noise. The median of those is the result.
        rounds = [x.rps / y.rps for x, y in zip(a.runs, b.runs)] if a and b else []
        sequential = statistics.median(rounds) if rounds else ra.rps / rb.rps
        spread = f", spread {min(rounds):.0%}–{max(rounds):.0%}" if len(rounds) > 1 else ""
        seq_text = f"{sequential:.1%} (median of per-round ratios{spread}"
        if a and b and len(a.runs) > 1 and len(a.runs) == len(b.runs):
            seq_text += "; round by round " + " / ".join(f"{x.rps / y.rps:.0%}" for x, y in zip(a.runs, b.runs))
        seq_text += ")"
        pair = by_pair.get((t.scenario, t.reference))
        efficiency = pair.efficiency() if pair and not pair.failure else []
        # The co-scheduled measurement decides when there is one: its rounds
        # hold still (A/A within 1-2%), the sequential ones do not.
        ratio = statistics.median(efficiency) if efficiency else sequential
        if t.min_ratio is None:
            verdict = ""
        else:
            verdict = f"**{'met' if ratio >= t.min_ratio else 'NOT met'}**: "
        if pair is not None:
            verdict += f"{pair.describe()}. Sequential rounds: {seq_text}"
        else:
            verdict += f"sequential rounds {seq_text}"
        out.append(f"{kind}: {t.describe()}. This run: {verdict}.")
    return out


def load_lines(rows: Sequence[Row]) -> list[str]:
    loads = [r.other_load for row in rows for r in row.runs if r.other_load is not None]
    if not loads:
        return []
    line = (
        f"Other processes during the measured runs: median {statistics.median(loads):.2f}, "
        f"max {max(loads):.2f} CPUs busy (from /proc/stat, this Envoy and wrk excluded)."
    )
    if max(loads) >= QUIET_LOAD:
        line += (
            " **Warning: the machine was not idle during some runs; they are skewed. Re-run when it is "
            "idle (`bench/run.py --wait-quiet 30` waits up to 30s for that before each run).**"
        )
    return [line, ""]


def write_report(
    output: Path,
    rows: Sequence[Row],
    paired: Sequence[Paired],
    paired_duration: int,
    load: Load,
    envoy_cpus: str | None,
    started: dt.datetime,
    rounds: int,
    version: str,
    upstream: str,
    invocation: str,
    require_clean: bool | None = None,
) -> str:
    wasm = harness.wasm_path()
    try:
        digest = hashlib.sha256(wasm.read_bytes()).hexdigest()[:12]
        wasm_desc = f"`{wasm.relative_to(REPO_ROOT)}`, {wasm.stat().st_size:,} bytes, sha256 {digest}…"
    except (OSError, ValueError):
        wasm_desc = f"`{wasm}`"
    md = [
        "## Throughput: edge-auth vs Envoy's native filters",
        "",
        "Written by `make bench` (`bench/run.py`).",
        "",
        "### Machine and build",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}",
        f"- CPUs: {os.cpu_count()} (nproc), {cpu_model()}; {platform.system()} {platform.release()}",
        f"- Envoy: {version}, `--concurrency 1` unless a row says otherwise, wasm runtime V8",
        f"- edge-auth: {wasm_desc}; git {git_describe()}",
        (
            f"- Pinning: wrk on CPU {load.cpus}, Envoy on CPU {envoy_cpus} (taskset)"
            if load.cpus
            else "- Pinning: none"
        ),
        "",
        "### Method",
        "",
        "Each config is its own Envoy with the config's HTTP filters, then the router, in front of a "
        f"protected route (`{BENCH_PATH}`). Upstream (`--upstream {upstream}`): {UPSTREAM_DOCS[upstream]}",
        "",
        "HS256 rows: one access token, issued by edge-auth's token endpoint (`client_credentials`, "
        "consumer `bench`), is sent by every HS256 row, the no-auth row included. jwt_authn verifies it "
        f"with the consumer's secret as an inline `oct` JWKS (issuer `{ISSUER}`, audience `{AUDIENCE}`, "
        "`forward: true`); edge-auth runs with only that consumer configured (all defaults). RS256 rows: "
        "one token signed by an RSA-2048 key made for the run, checked against the same public key as an "
        "inline JWKS by both filters; the same token on every request, which is what a client reusing "
        "its access token does and what the verified-token caches are for. Caching is compared like "
        "with like: each edge-auth row's `vs jwt_authn` column (and goal) is the jwt_authn row of the same "
        "algorithm with its JWT cache (`jwt_cache_config`) on when edge-auth's verified-token cache is on, "
        "and off when it is off. Before "
        "loading, each auth config must answer 200 with the token and 401 without it, and a run with "
        "any non-2xx response or socket error fails its row.",
        "",
        "Many-token rows (issue 10): `--distinct` distinct tokens per algorithm "
        f"({TOKEN_SET_SIZES['rs256-distinct']:,} this run), each with its own `sub` and `jti`, sent by "
        "`bench/tokens.lua`: every token once in a warm-up pass, then wrk goes round them (each wrk "
        "thread its own slice); jwt_authn's JWT cache is as large as the set. `every token new` rows "
        "send a token never sent before on every request (a set of `--cold-tokens`, continued across "
        "rounds). `--concurrency 2` rows run two Envoy workers (two plugin VMs sharing verified tokens); their "
        f"warm-up pass runs {WARM_PASSES_TWO_WORKERS} times (a pass shows a token to one worker only), "
        "for jwt_authn's per-worker cache as for edge-auth's, so the rounds measure the steady state. "
        "Token issuance rows: `client_credentials` GET and form POST to `/oauth2/token`, compared with "
        "the same requests through an Envoy without auth (its `direct_response`). `CPU/req over no-auth` "
        "is a row's Envoy CPU per request minus the `no-auth` row's; `Envoy RSS` is the process's "
        "resident memory after the last round (a V8 plugin VM costs about 50 MiB by itself). Ratios in "
        "the goal lines are the median of per-round ratios (rows of one round share its noise), with "
        "their spread.",
        "",
        f"Run as: `{invocation}`.",
        "",
        f"Per config: a {load.warmup}s warm-up, then {rounds} measured run(s) of this command, the "
        "configs interleaved round by round (run-to-run noise on a shared VM can reach 10-20%, so "
        "compare rows of the same round rather than across files):",
        "",
        "```",
        load.shown(),
        "```",
        "",
        "A row shows its median run by req/s, with that run's own latencies; `runs` lists every run in "
        "round order. `Envoy CPU/req` is the Envoy process's user+system CPU time (all threads, so it "
        "includes the upstream listener) per request served, median over the runs.",
        "",
        "Co-scheduled rounds (they decide the goals): after the sequential rounds, each goal's two "
        f"Envoys are loaded at the same time, {len(paired[0].runs) if paired else 0} rounds of "
        f"{paired_duration}s, each by its own wrk (the command above), both Envoys on the same CPU. "
        "Whatever the machine does during a round it does to both, so the ratio of their CPU per request "
        "(the row's requests per CPU-second as a share of its reference's) holds still: an A/A check "
        "(the same build twice) read 99-101% in every round while the machine's speed moved by 60% between "
        "rounds. Rounds taken one after another, as in the table, moved 20-30% between runs of the same "
        "build. Sharing a CPU raises every Envoy's CPU per request (cache and scheduling), so read the "
        "ratio, not the µs. The goal lines give the co-scheduled median and its rounds, then the "
        "sequential ratios.",
        "",
        "Configs:",
        "",
        *[f"- `{row.scenario.name}`: {row.scenario.note}" for row in rows],
        "",
        "### Results",
        "",
        *table(rows),
        "",
        *target_lines(rows, paired),
        "",
        *load_lines(rows),
    ]
    text = "\n".join(md)
    report_section.replace_section("throughput", text, output, require_clean=require_clean)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up per config (default 2)")
    ap.add_argument("--connections", "-c", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--threads", "-t", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument(
        "--rounds", type=int, default=3, help="measured runs per config, interleaved, median shown (default 3)"
    )
    ap.add_argument("--only", action="append", default=[], help="run only configs whose name contains this")
    ap.add_argument(
        "--paired-rounds", type=int, default=5,
        help="co-scheduled rounds per target (and A/B twin), after the sequential ones; they decide the "
        "goals (default 5, 0 = none)",
    )
    ap.add_argument("--paired-duration", type=int, default=5, help="seconds per co-scheduled round (default 5)")
    ap.add_argument("--distinct", type=int, default=20000,
                    help="distinct tokens of the 'many tokens' rows (default 20000)")
    ap.add_argument("--cold-tokens", type=int, default=60000,
                    help="tokens of the 'every token new' rows; more than a run sends (default 60000)")
    ap.add_argument("--warm-distinct", type=int, default=40,
                    help="seconds of the pass that sends every distinct token once (default 40)")
    ap.add_argument("--diagnostics", action="store_true", help="also run the diagnostic wasm rows")
    ap.add_argument(
        "--ab-wasm",
        type=Path,
        metavar="WASM",
        help="after each edge-auth row, the same row with this .wasm ([B]), interleaved; prints B/A per "
        "round (implies --no-write)",
    )
    ap.add_argument(
        "--upstream",
        choices=sorted(UPSTREAMS),
        default="envoy",
        help="; ".join(f"{k}: {v}" for k, v in UPSTREAMS.items()) + " (default envoy)",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each run, wait up to this long for other processes to go idle (default 0)",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not pin wrk and Envoy to separate CPUs")
    ap.add_argument("--wrk", default=os.environ.get("WRK", "wrk"), help="wrk binary (default: wrk / $WRK)")
    ap.add_argument("--output", type=Path, default=OUTPUT, help="report file (default BENCHMARKS.md)")
    ap.add_argument("--no-write", action="store_true", help="print the table only, leave BENCHMARKS.md alone")
    ap.add_argument(
        "--require-clean",
        action="store_true",
        help="refuse to run (and to write) unless the tree is exactly HEAD (also EDGE_AUTH_REPORT_REQUIRE_CLEAN=1)",
    )
    args = ap.parse_args(argv)
    require_clean = args.require_clean or report_section.require_clean_from_env()
    if require_clean and not args.no_write:
        commit, dirty = report_section.provenance(REPO_ROOT)
        if dirty:
            print(f"bench: the tree differs from {commit}: {', '.join(dirty)}; commit first", file=sys.stderr)
            return 2
    output = args.output if args.output.is_absolute() else Path.cwd() / args.output
    TOKEN_SET_SIZES.update({"rs256-distinct": args.distinct, "es256-distinct": args.distinct,
                            "rs256-cold": args.cold_tokens})

    if args.duration < 1 or args.duration > 120 or args.warmup < 0 or args.warmup > 30:
        ap.error("--duration must be 1..120 and --warmup 0..30 seconds")
    if not 0 <= args.wait_quiet <= 60:
        ap.error("--wait-quiet must be 0..60 seconds")
    if not 1 <= args.rounds <= 12:
        ap.error("--rounds must be 1..12")
    if not 0 <= args.paired_rounds <= 12 or not 1 <= args.paired_duration <= 60:
        ap.error("--paired-rounds must be 0..12 and --paired-duration 1..60 seconds")
    if shutil.which(args.wrk) is None:
        print(f"bench: {args.wrk} not found; install it with `apt-get install -y wrk`", file=sys.stderr)
        return 2
    if not harness.wasm_path().is_file():
        print(
            f"bench: {harness.wasm_path()} not found; build it with "
            "`cargo build --release --target wasm32-wasip1`",
            file=sys.stderr,
        )
        return 2

    scenarios = [s for s in SCENARIOS if args.diagnostics or not s.diagnostic]
    if args.only:
        scenarios = [s for s in scenarios if any(o in s.name for o in args.only)]
    if args.ab_wasm is not None:
        if not args.ab_wasm.is_file():
            ap.error(f"--ab-wasm {args.ab_wasm}: no such file")
        scenarios = ab_twins(scenarios, args.ab_wasm.resolve())
        args.no_write = True
    # Token issuers must run even when filtered out of the table.
    needed = {TOKENS[s.token].issuer_scenario for s in scenarios if s.token}
    by_name = {s.name: s for s in SCENARIOS}
    helpers = [by_name[n] for n in needed if n not in {s.name for s in scenarios}]

    wrk_cpus, envoy_cpus = pick_cpus(not args.no_pin)
    load = Load(args.wrk, args.threads, args.connections, args.duration, args.warmup, wrk_cpus)
    started = dt.datetime.now().astimezone()
    version = envoy_version()
    print(f"bench: Envoy {version}; {len(scenarios)} configs x {args.rounds} run(s) of {args.duration}s")

    envoys: dict[str, harness.Envoy] = {}
    rows = [Row(s) for s in scenarios]
    echo: EchoProcess | None = None
    try:
        if args.upstream == "echo":
            echo = EchoProcess()
        for s in [*scenarios, *helpers]:
            envoys[s.name] = make_envoy(s, envoy_cpus, args.upstream, echo.port if echo else None).spawn()
        for s in [*scenarios, *helpers]:
            envoys[s.name].wait_ready(60)
        tokens = {key: src.fetch(envoys[src.issuer_scenario]) for key, src in TOKENS.items()
                  if src.issuer_scenario in envoys}
        for s in helpers:
            envoys.pop(s.name).stop()
        for row in rows:
            check(envoys[row.scenario.name], row.scenario, tokens, None if args.upstream == "echo" else b"ok")
        print(f"bench: checks passed; token {len(tokens.get('hs256', ''))} bytes")
        for row in rows:
            if row.scenario.token_set:
                token_file(row.scenario.token_set)  # signed before any timing
        for row in rows:
            if row.scenario.warm_once:
                # Every distinct token once per pass (wrk's thread stops
                # sending once every token was answered; the pass lasts
                # --warm-distinct seconds), so the rounds see known tokens.
                for n in range(row.scenario.warm_passes):
                    res = load.run(envoys[row.scenario.name], None, args.warm_distinct, row.scenario, mode="once")
                    print(f"bench: [{row.scenario.name}] warm-up pass {n + 1}: {res.requests:,} requests")

        for rnd in range(args.rounds):
            for row in rows:
                if row.failure:
                    continue
                s, envoy = row.scenario, envoys[row.scenario.name]
                token = tokens[s.token] if s.token else None
                if args.wait_quiet:
                    load_before = wait_quiet(args.wait_quiet)
                    if load_before is not None and load_before >= QUIET_LOAD:
                        print(f"bench: machine still busy ({load_before:.2f} CPUs), measuring anyway")
                try:
                    if args.warmup and rnd == 0 and not s.warm_once:
                        row.sent += load.run(envoy, token, args.warmup, s, offset=row.sent).requests
                    res = load.run(envoy, token, args.duration, s, offset=row.sent)
                    row.sent += res.requests
                    # jwt_authn's cold row has its cache off, so a repeat costs it
                    # the same; edge-auth's cache holds ~30,000 identities by
                    # default, fewer than the 60,000 of the default set, so
                    # even a wrapped-around token is a miss there.
                    if (s.token_mode == "new" and s.token_set and s.name.startswith("edge-auth")
                            and row.sent > TOKEN_SET_SIZES[s.token_set]):
                        print(f"bench: [{s.name}] sent {row.sent:,} requests from {TOKEN_SET_SIZES[s.token_set]:,} "
                              "tokens: some were not new (raise --cold-tokens)", file=sys.stderr)
                except BenchError as e:
                    row.failure = str(e).splitlines()[0]
                    print(f"bench: [{s.name}] FAILED: {e}", file=sys.stderr)
                    continue
                if res.errors:
                    row.failure = "; ".join(res.errors)
                    print(f"bench: [{s.name}] FAILED: {row.failure}\n{res.output}", file=sys.stderr)
                    continue
                row.runs.append(res)
                cpu = res.server_us_per_req
                print(
                    f"bench: round {rnd + 1} {s.name:<42} {res.rps:>10,.0f} req/s  p50 {res.p50_ms:.2f} ms  "
                    f"p99 {res.p99_ms:.2f} ms  envoy {f'{cpu:.1f}' if cpu is not None else '?'} µs/req  "
                    f"wrk cpu {res.client_cpu:.0%}  other load "
                    f"{f'{res.other_load:.2f}' if res.other_load is not None else '?'} CPUs"
                )
        paired = pairs_to_measure(rows) if args.paired_rounds else []
        by_row = {r.scenario.name: r for r in rows}
        for rnd in range(args.paired_rounds):
            for pair in paired:
                if pair.failure:
                    continue
                two = [by_row[pair.scenario], by_row[pair.reference]]
                try:
                    ra, rb = co_scheduled(load, [(envoys[r.scenario.name], r,
                                                  tokens[r.scenario.token] if r.scenario.token else None)
                                                 for r in two], args.paired_duration)
                except BenchError as e:
                    pair.failure = str(e).splitlines()[0]
                    print(f"bench: co-scheduled [{pair.scenario}] FAILED: {e}", file=sys.stderr)
                    continue
                pair.runs.append((ra, rb))
                print(f"bench: co-scheduled round {rnd + 1} {pair.scenario} vs {pair.reference}: "
                      f"{ra.server_us_per_req:.1f} vs {rb.server_us_per_req:.1f} µs/req, "
                      f"{ra.rps:,.0f} vs {rb.rps:,.0f} req/s")
        for row in rows:
            envoy = envoys[row.scenario.name]
            if isinstance(envoy, BenchEnvoy):
                row.rss_mib = envoy.rss_mib()
    except (BenchError, harness.EnvoyError, OSError, ValueError) as e:
        print(f"bench: ABORTED: {e}", file=sys.stderr)
        return 1
    finally:
        for envoy in envoys.values():
            envoy.stop()
        if echo is not None:
            echo.stop()

    print()
    print(f"wrk: {load.shown()}")
    print("\n".join(table(rows)))
    print("\n".join(target_lines(rows, paired)))
    print("\n".join(ab_lines(rows, paired)))
    print("\n".join(load_lines(rows)).rstrip())
    if not args.no_write:
        invocation = " ".join(["bench/run.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
        try:
            write_report(output, rows, paired, args.paired_duration, load, envoy_cpus, started, args.rounds,
                         version, args.upstream, invocation,
                         require_clean=require_clean)
        except report_section.DirtyTree as e:
            print(f"bench: {e}", file=sys.stderr)
            return 2
        print(f"\nbench: wrote {output}")
    failed = [r.scenario.name for r in rows if r.failure]
    if failed:
        print(f"bench: FAILED rows: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
