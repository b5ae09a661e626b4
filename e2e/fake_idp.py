"""A small misbehaving OpenID provider for end-to-end tests that need what
the real one (``e2e/idp``) will not do: pad its token answers past the size
limit, or hold a token answer until the test releases it.

Like ``recording_server.py`` plays an attacker's key server, this plays an
IdP: discovery, a JWKS with one RS256 key, and a token endpoint that answers
any code or refresh token with an ID token for ``alice`` (``nonce`` as the
test sets it).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import harness
import jose_forge as jf

CLIENT_ID = "edge-auth-limit-app"
CLIENT_SECRET = "edge-auth-limit-app-secret-0123456789abcdef"


class FakeIdp:
    """Discovery, JWKS and a token endpoint; ``padding`` bytes of spaces are
    appended to the token answer. ``nonce`` must be set to the login's
    nonce before the code exchange. While ``hold`` is set, token answers
    wait until :meth:`release` (``token_request_arrived`` is set when a token
    request is waiting)."""

    def __init__(self) -> None:
        self.key = jf.key_for_alg("RS256", kid="limit-rs256")
        self.padding = 0
        self.nonce = ""
        self.token_requests = 0
        self.hold = False
        self.access_ttl = 300  # expires_in of the token answers
        self._released = threading.Event()
        self.token_request_arrived = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                path = urlsplit(self.path).path
                if path == "/.well-known/openid-configuration":
                    self.answer(200, json.dumps(owner.discovery()).encode())
                elif path == "/jwks":
                    self.answer(200, json.dumps(jf.jwks(owner.key)).encode())
                else:
                    self.answer(404, b"{}")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.token_requests += 1
                if owner.hold:
                    owner.token_request_arrived.set()
                    owner._released.wait(30)
                self.answer(200, owner.token_answer())

            def answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/auth",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def token_answer(self) -> bytes:
        claims = jf.claims(self.issuer, CLIENT_ID, sub="alice", nonce=self.nonce, email="alice@example.test")
        id_token = jf.sign_jwt(claims, self.key)
        answer = {"access_token": "opaque-access-token", "token_type": "Bearer",
                  "expires_in": self.access_ttl, "id_token": id_token, "refresh_token": "opaque-refresh-token"}
        return json.dumps(answer).encode() + b" " * self.padding

    def release(self) -> None:
        self.hold = False
        self._released.set()

    def hold_token_answers(self) -> None:
        """Token answers wait from now on, until :meth:`release`."""
        self._released.clear()
        self.token_request_arrived.clear()
        self.hold = True

    def __enter__(self) -> "FakeIdp":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sso_gateway(idp: "FakeIdp", upstream_port: int, wasm, name: str, cookie_name: str,
                cookie_secret: str, envoy_args: tuple[str, ...] = (), **oidc: object) -> harness.Envoy:
    """A started Envoy whose edge-auth signs browsers in at ``idp`` (cluster
    ``idp``), with ``oidc`` added to the SSO settings (``envoy_args``: more
    Envoy command-line arguments)."""
    listener, admin = harness.free_port(), harness.free_port()
    config = {"oidc": {
        "issuer": idp.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "cluster": "idp",
        "cookie_secret": cookie_secret,
        "cookie_secure": False,
        "cookie_name": cookie_name,
        **oidc,
    }}
    bootstrap = harness.build_bootstrap(listener_port=listener, admin_port=admin, upstream_port=upstream_port,
                                        http_filters=harness.gateway_filters(config, wasm))
    bootstrap["static_resources"]["clusters"].append(harness.static_cluster("idp", idp.port))
    gw = harness.Envoy(bootstrap, listener, admin, name=name, extra_args=envoy_args)
    gw.start()
    return gw
