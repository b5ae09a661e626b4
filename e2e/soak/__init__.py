"""Soak and fault run of edge-auth in a real Envoy (``make soak``).

    .venv/bin/python e2e/soak --duration 600      (or: cd e2e && python -m soak)

One echo upstream (in a child process), one IdP (``idp_control.Idp``,
oidc-provider) behind a proxy that can slow it down, and one Envoy
(``--concurrency 2``) running edge-auth with a gateway token endpoint, a JWT
consumer whose keys come from the IdP's ``jwks_uri``, and browser single
sign-on (with refresh tokens) on ``/app``.

1. A closed-loop burst of the request mix measures the most this machine
   serves of it (``load.Load.burst``); then the mix is held open loop at 55%
   of that for ``--duration`` seconds (``load.Load.hold``).
2. The mix (``traffic``): must-pass and must-be-denied kinds of gateway
   tokens, IdP client tokens, thousands of IdP users' tokens (the verified
   token cache churns), token GETs and POSTs (some with late bodies), SSO
   sessions (refreshed as their IdP tokens expire), anonymous and forged
   SSO requests; plus a browser login every few seconds in a thread.
3. Faults (``faults``): config reloads over file-based LDS, the IdP down and
   back, a key rotation, a key revocation (its tokens must be refused one
   ``jwks_refresh_seconds`` + slack later), the IdP answering above the call
   timeouts, and a slowloris of unfinished token POSTs (each answered 400
   within ``token_body_timeout_ms``).
4. ``monitor`` samples Envoy's RSS and scans its log; ``verdict`` judges
   (nothing let through, checked at the upstream's header-time record; no
   unexplained answer; no wasm failure; RSS within +10% after warm-up;
   p99 per phase); ``report`` writes the ``soak`` section of BENCHMARKS.md.

The exit status is non-zero when a check fails.
"""
