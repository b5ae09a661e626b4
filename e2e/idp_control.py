"""Python side of the identity-provider fixture (``e2e/idp/server.js``).

* :class:`Idp` runs the OpenID provider (oidc-provider on Node) as a child
  process on 127.0.0.1 with a key set made here (so tests can also sign
  tokens with the IdP's own keys), waits for its discovery document, stops
  it and restarts it on the same port with another key set (rotation).
* :meth:`Idp.client_credentials_token` gets an RFC 9068 JWT access token for a
  resource (``urn:edge-auth:rs256`` / ``urn:edge-auth:es256``) and checks it.
* :meth:`Idp.authorization_code_flow` drives the devInteractions login and
  consent forms (for OIDC login tests).
* :func:`gateway` is an unstarted Envoy running edge-auth like
  :func:`harness.gateway`, with extra clusters (e.g. ``idp``) for key fetches.
* :func:`poll` repeats a request until a condition holds (bounded).

Environment:
  ``IDP_NODE``   Node command (default ``node`` on PATH; Node >= 20.19).

The IdP's npm dependencies must be installed: ``npm ci --prefix e2e/idp``.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from child_process import ChildProcess
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import harness
import jose_forge as jf

IDP_DIR = harness.E2E_DIR / "idp"
SERVER_JS = IDP_DIR / "server.js"
MIN_NODE = (20, 19)

RS256_RESOURCE = "urn:edge-auth:rs256"
ES256_RESOURCE = "urn:edge-auth:es256"
IDP_CLUSTER = "idp"
# User-Agent of the tests' own requests to the IdP (told apart from Envoy's).
TEST_UA = "edge-auth-e2e-idp-control"


@dataclass(frozen=True)
class IdpClient:
    client_id: str
    client_secret: str


# The two default clients of server.js (keep in sync with DEFAULT_CLIENTS there).
APP1 = IdpClient("edge-auth-app", "edge-auth-app-secret-7Hq2vX9pL4mN8rT3")
APP2 = IdpClient("edge-auth-app2", "edge-auth-app2-secret-Kd5wZ1yB6cF0gJ2s")
# Their extra access-token claims (server.js edge_auth_claims).
APP_CLAIMS = {
    APP1.client_id: {"tenant": "acme", "roles": ["reader", "writer"], "tier": 3, "internal": True},
    APP2.client_id: {"tenant": "globex", "roles": ["reader"], "tier": 1, "internal": False},
}


class IdpError(RuntimeError):
    pass


# ---------------------------------------------------------------------------
# Node and npm
# ---------------------------------------------------------------------------


def node_command() -> list[str]:
    env = os.environ.get("IDP_NODE", "").strip()
    if env:
        return shlex.split(env)
    node = shutil.which("node")
    if node is None:
        raise IdpError("node not found on PATH (set IDP_NODE); Node >= 20.19 is required")
    return [node]


_node_checked: str | None = None


def check_node() -> str:
    """The Node version, after checking it is recent enough and that the
    IdP's npm dependencies are installed."""
    global _node_checked
    if _node_checked is not None:
        return _node_checked
    out = subprocess.run(node_command() + ["--version"], capture_output=True, text=True, timeout=30)
    m = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.stdout.strip())
    if out.returncode != 0 or not m:
        raise IdpError(f"cannot run node: {out.stdout!r} {out.stderr!r}")
    if (int(m.group(1)), int(m.group(2))) < MIN_NODE:
        raise IdpError(f"Node {out.stdout.strip()} is too old for oidc-provider 9 (need >= 20.19)")
    if not (IDP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        raise IdpError(f"the IdP's npm packages are not installed: run `npm ci --prefix {IDP_DIR}`")
    _node_checked = out.stdout.strip()
    return _node_checked


# ---------------------------------------------------------------------------
# Key sets
# ---------------------------------------------------------------------------


def make_keyset(*algs: str, tag: str = "k") -> tuple[dict, dict[str, jf.Key]]:
    """A fresh private JWKS for the IdP (default: one RS256 and one ES256
    key) and its keys by kid. Kids are unique (``<alg>-<tag>-<random>``)."""
    keys = [jf.key_for_alg(a, kid=f"{a.lower()}-{tag}-{os.urandom(4).hex()}") for a in (algs or ("RS256", "ES256"))]
    return jf.private_jwks(*keys), {k.kid: k for k in keys}


# ---------------------------------------------------------------------------
# The IdP process
# ---------------------------------------------------------------------------

class Idp(ChildProcess):
    """One IdP process on 127.0.0.1:``port`` (a fixed port, so the issuer
    ``http://127.0.0.1:<port>`` survives restarts).

    ``keyset`` is a private JWKS (default: :func:`make_keyset`); ``keys``
    maps kid to :class:`jose_forge.Key` for the current key set.
    """

    def __init__(
        self,
        port: int | None = None,
        keyset: dict | None = None,
        name: str = "idp",
        redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] = (),
        access_token_ttl: int | None = None,
        id_token_ttl: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port or harness.free_port()
        self.issuer = f"http://{harness.LOCALHOST}:{self.port}"
        self.name = name
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        self.workdir = harness.run_dir() / f"idp-{safe}-{self.port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "idp.log"
        self.env = dict(env or {})
        if redirect_uris:
            self.env["IDP_REDIRECT_URIS"] = " ".join(redirect_uris)
        if post_logout_redirect_uris:
            self.env["IDP_POST_LOGOUT_REDIRECT_URIS"] = " ".join(post_logout_redirect_uris)
        if access_token_ttl is not None:
            self.env["IDP_ACCESS_TOKEN_TTL"] = str(access_token_ttl)
        if id_token_ttl is not None:
            self.env["IDP_ID_TOKEN_TTL"] = str(id_token_ttl)
        self.proc: subprocess.Popen | None = None
        self._log_file = None
        self._generation = 0
        self.keyset: dict = {}
        self.keys: dict[str, jf.Key] = {}
        self.set_keys(keyset if keyset is not None else make_keyset(tag="g0")[0])

    # -- keys -----------------------------------------------------------------

    def set_keys(self, keyset: dict) -> None:
        """Use ``keyset`` (a private JWKS) from the next (re)start on."""
        self._generation += 1
        self.keyset = keyset
        self.keys = jf.keys_from_jwks(keyset)
        self.keys_path = self.workdir / f"keys-{self._generation}.json"
        self.keys_path.write_text(json.dumps(keyset, indent=2))
        os.chmod(self.keys_path, 0o600)

    def key(self, alg: str) -> jf.Key:
        """The current key set's key for ``alg``."""
        for k in self.keys.values():
            if k.alg == alg:
                return k
        raise KeyError(alg)

    def public_jwks(self) -> dict:
        return jf.jwks(*self.keys.values())

    # -- lifecycle --------------------------------------------------------------

    def command(self) -> list[str]:
        return node_command() + [str(SERVER_JS), "--port", str(self.port), "--keys", str(self.keys_path)]

    def start(self, timeout: float = 30.0) -> "Idp":
        check_node()
        if self.running():
            raise IdpError(f"{self.name} already running")
        self._spawn(self.command(), IDP_DIR, append_log=True, env=self.env)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll the discovery document until it names this issuer."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            if not self.running():
                raise IdpError(f"IdP {self.name} exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                r = harness.http_request(self.port, "GET", "/.well-known/openid-configuration",
                                         headers=[("User-Agent", TEST_UA)], timeout=2)
                last = r
                if r.status == 200 and r.json().get("issuer") == self.issuer:
                    return
            except (OSError, ValueError) as e:
                last = e
            if time.monotonic() > deadline:
                raise IdpError(f"IdP {self.name} not ready after {timeout}s (last: {last!r})\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        super().stop()
        # The port must be free again before a restart binds it.
        deadline = time.monotonic() + 10
        while harness.port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, keyset: dict | None = None, timeout: float = 30.0) -> "Idp":
        """Stop, switch to ``keyset`` if given, start again on the same port."""
        self.stop()
        if keyset is not None:
            self.set_keys(keyset)
        return self.start(timeout)

    # -- logs -----------------------------------------------------------------

    def log_tail(self, lines: int = 40) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def request_lines(self, method: str, path: str, include_tests: bool = False) -> list[str]:
        """The request-log lines (``<time> <method> <url> <status> <ms>ms
        host=<Host> ua="<User-Agent>"``) of ``method path`` requests, all runs
        of this IdP; the tests' own requests (User-Agent :data:`TEST_UA`)
        only with ``include_tests``."""
        pat = re.compile(rf" {re.escape(method)} {re.escape(path)}(\?\S*)? \d{{3}} ")
        mine = f'ua="{TEST_UA}"'
        return [ln for ln in self.log_text().splitlines()
                if pat.search(ln) and (include_tests or not ln.endswith(mine))]

    def request_count(self, method: str, path: str) -> int:
        return len(self.request_lines(method, path))

    def jwks_fetches(self) -> int:
        """Key-set fetches by anyone but the tests (i.e. by Envoy)."""
        return self.request_count("GET", "/jwks")

    # -- HTTP -----------------------------------------------------------------

    def url(self, path: str = "") -> str:
        return self.issuer + path

    def get(self, path: str, headers: harness.Headers = None) -> harness.Response:
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        return harness.http_request(self.port, "GET", path, headers=[("User-Agent", TEST_UA)] + items)

    def edit_id_tokens(self, edits: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """From now on, ID tokens the token endpoint answers with for a grant
        type (``authorization_code``, ``refresh_token``) get these claims
        (``None`` deletes one), signed again with the same key; ``None`` or
        ``{}`` restores the IdP's own ID tokens (server.js IDP_ID_TOKEN_EDITS)."""
        r = harness.http_request(self.port, "PUT", "/__edge_auth/id_token_edits",
                                 headers=[("Content-Type", "application/json"), ("User-Agent", TEST_UA)],
                                 body=json.dumps(edits or {}))
        assert r.status == 204, r

    def discovery(self) -> dict:
        r = self.get("/.well-known/openid-configuration")
        assert r.status == 200, r
        return r.json()

    def jwks(self) -> harness.Response:
        return self.get("/jwks")

    def token_request(
        self,
        client: IdpClient,
        params: Iterable[tuple[str, str]],
        auth: str = "basic",
    ) -> harness.Response:
        """POST /token with ``client`` authenticated by ``client_secret_basic``
        or ``client_secret_post``."""
        items = list(params)
        headers = [("Content-Type", "application/x-www-form-urlencoded"), ("User-Agent", TEST_UA)]
        if auth == "basic":
            headers.append(("Authorization", basic_auth(client)))
        elif auth == "post":
            items += [("client_id", client.client_id), ("client_secret", client.client_secret)]
        else:
            raise ValueError(auth)
        return harness.http_request(self.port, "POST", "/token", headers=headers, body=urlencode(items))

    def client_credentials_token(
        self,
        client: IdpClient = APP1,
        resource: str | None = RS256_RESOURCE,
        scope: str | None = "read write",
        auth: str = "basic",
    ) -> str:
        """A client-credentials access token for ``resource``; checked to be
        an RFC 9068 JWT signed by a key of the current key set."""
        params = [("grant_type", "client_credentials")]
        if resource is not None:
            params.append(("resource", resource))
        if scope is not None:
            params.append(("scope", scope))
        r = self.token_request(client, params, auth=auth)
        assert r.status == 200, r
        body = r.json()
        assert body.get("token_type") == "Bearer", body
        token = body["access_token"]
        if resource is not None:
            self.check_access_token(token, client, resource, scope)
        return token

    def check_access_token(self, token: str, client: IdpClient, resource: str, scope: str | None) -> tuple[dict, dict]:
        assert token.count(".") == 2, f"not a JWT: {token!r}"
        header, claims, _ = jf.decode(token)
        alg = {RS256_RESOURCE: "RS256", ES256_RESOURCE: "ES256"}.get(resource)
        if alg is not None:
            assert header.get("alg") == alg, header
        assert header.get("typ") == "at+jwt", header
        assert header.get("kid") in self.keys, (header, list(self.keys))
        assert jf.verify(token, self.keys[header["kid"]]), "IdP token does not verify with its key"
        for claim in ("iss", "aud", "client_id", "exp", "iat", "jti", "sub"):
            assert claim in claims, (claim, claims)
        assert claims["iss"] == self.issuer, claims
        assert claims["aud"] == resource, claims
        assert claims["client_id"] == client.client_id, claims
        assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int) and claims["exp"] > claims["iat"], claims
        if scope is not None:
            assert claims.get("scope") == scope, claims
        return header, claims

    def forge(self, alg: str = "RS256", header: dict | None = None, *, typ: str | None = "at+jwt",
              kid: str | bool | None = True, **claims: Any) -> str:
        """A token signed by the IdP's own ``alg`` key with IdP-like claims
        (``aud`` the matching resource, ``client_id`` of APP1); ``claims``
        override (``None`` deletes)."""
        key = self.key(alg)
        base = jf.claims(self.issuer, f"urn:edge-auth:{alg.lower()}", sub=APP1.client_id,
                         client_id=APP1.client_id, scope="read write")
        for k, v in claims.items():
            if v is None:
                base.pop(k, None)
            else:
                base[k] = v
        return jf.sign_jwt(base, key, header, typ=typ, kid=kid)

    # -- interactive login (devInteractions) ------------------------------------

    def authorization_code_flow(
        self,
        client: IdpClient,
        redirect_uri: str,
        login: str = "alice",
        scope: str = "openid email profile",
        extra: Mapping[str, str] | None = None,
        jar: http.cookiejar.CookieJar | None = None,
    ) -> dict:
        """Run /auth -> login form -> consent form -> redirect_uri and return
        ``{"code", "state", "location", "jar"}`` (the browser's cookies in
        ``jar`` keep the IdP session for logout)."""
        jar = jar if jar is not None else http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
        state = os.urandom(8).hex()
        q = {"client_id": client.client_id, "response_type": "code", "redirect_uri": redirect_uri,
             "scope": scope, "state": state, "nonce": os.urandom(8).hex(), **(extra or {})}
        url = self.url("/auth?" + urlencode(q))
        body: bytes | None = None
        for _ in range(20):
            status, location, page = _fetch(opener, url, body)
            body = None
            if location is None:
                m = re.search(r'<form[^>]*action="([^"]+)"', page)
                prompt = re.search(r'name="prompt" value="([a-z]+)"', page)
                if status != 200 or not m or not prompt:
                    raise IdpError(f"unexpected IdP page {status} at {url}: {page[:500]}")
                url = urljoin(url, m.group(1).replace("&amp;", "&"))
                fields = {"prompt": prompt.group(1)}
                if fields["prompt"] == "login":
                    fields.update(login=login, password="any")
                body = urlencode(fields).encode()
                continue
            nxt = urljoin(url, location)
            if nxt.startswith(redirect_uri):
                params = parse_qs(urlsplit(nxt).query)
                if "error" in params:
                    raise IdpError(f"authorization error: {params}")
                assert params.get("state") == [state], params
                return {"code": params["code"][0], "state": state, "location": nxt, "jar": jar}
            url = nxt
        raise IdpError("too many redirects in the authorization code flow")

    def exchange_code(self, client: IdpClient, code: str, redirect_uri: str, auth: str = "basic") -> dict:
        r = self.token_request(client, [("grant_type", "authorization_code"), ("code", code),
                                        ("redirect_uri", redirect_uri)], auth=auth)
        assert r.status == 200, r
        return r.json()

    def end_session(self, jar: http.cookiejar.CookieJar, id_token: str | None,
                    post_logout_redirect_uri: str, client: IdpClient | None = None) -> str:
        """RP-initiated logout in the browser holding ``jar``: GET the
        end-session endpoint, confirm the logout form; returns the final
        redirect (``post_logout_redirect_uri`` with ``state``)."""
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
        q = {"post_logout_redirect_uri": post_logout_redirect_uri, "state": os.urandom(6).hex()}
        if id_token is not None:
            q["id_token_hint"] = id_token
        if client is not None:
            q["client_id"] = client.client_id
        status, location, page = _fetch(opener, self.url("/session/end?" + urlencode(q)), None)
        if location is None:
            action = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)"', page)
            xsrf = re.search(r'name="xsrf" value="([^"]+)"', page)
            if status != 200 or not action or not xsrf:
                raise IdpError(f"unexpected logout page {status}: {page[:500]}")
            body = urlencode({"xsrf": xsrf.group(1), "logout": "yes"}).encode()
            status, location, page = _fetch(opener, urljoin(self.url("/"), action.group(1)), body)
        url = self.url("/")
        for _ in range(5):
            if location is None:
                raise IdpError(f"logout did not redirect ({status}): {page[:500]}")
            url = urljoin(url, location)
            if url.startswith(post_logout_redirect_uri):
                assert parse_qs(urlsplit(url).query).get("state") == [q["state"]], url
                return url
            status, location, page = _fetch(opener, url, None)
        raise IdpError("too many redirects in end_session")

    def __repr__(self) -> str:
        return f"Idp({self.name!r}, issuer={self.issuer!r}, pid={self.proc.pid if self.proc else None})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401
        return None


def _fetch(opener, url: str, body: bytes | None) -> tuple[int, str | None, str]:
    req = urllib.request.Request(url, data=body, headers={"User-Agent": TEST_UA})
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, None, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        page = e.read().decode("utf-8", "replace")
        loc = e.headers.get("Location")
        if 300 <= e.code < 400 and loc:
            return e.code, loc, page
        raise IdpError(f"IdP answered {e.code} at {url}: {page[:500]}") from None


def basic_auth(client: IdpClient) -> str:
    import base64
    from urllib.parse import quote

    raw = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


# ---------------------------------------------------------------------------
# Envoy with extra clusters
# ---------------------------------------------------------------------------


def gateway(
    plugin_config: Mapping[str, Any] | str,
    upstream_port: int,
    clusters: Mapping[str, int] | None = None,
    name: str = "jwt-gw",
    wasm: str | os.PathLike | None = None,
    **kw: Any,
) -> harness.Envoy:
    """An unstarted Envoy running edge-auth (as :func:`harness.gateway`) with
    extra static clusters ``{cluster name: 127.0.0.1 port}``."""
    listener_port = harness.free_port()
    admin_port = harness.free_port()
    while admin_port == listener_port:
        admin_port = harness.free_port()
    bootstrap = harness.build_bootstrap(
        listener_port=listener_port,
        admin_port=admin_port,
        upstream_port=upstream_port,
        http_filters=harness.gateway_filters(plugin_config, wasm),
    )
    for cname, port in (clusters or {}).items():
        bootstrap["static_resources"]["clusters"].append(harness.static_cluster(cname, port))
    return harness.Envoy(bootstrap, listener_port, admin_port, name=name, **kw)


# ---------------------------------------------------------------------------
# Polling
# ---------------------------------------------------------------------------


def poll(
    fn: Callable[[], Any],
    until: Callable[[Any], bool],
    timeout: float,
    interval: float = 0.25,
    each: Callable[[Any], None] | None = None,
) -> tuple[Any, list[Any]]:
    """Call ``fn`` until ``until(result)`` or ``timeout`` seconds passed;
    ``each`` checks every result on the way. Returns (last result, history)."""
    deadline = time.monotonic() + timeout
    history: list[Any] = []
    while True:
        result = fn()
        history.append(result)
        if each is not None:
            each(result)
        if until(result):
            return result, history
        if time.monotonic() > deadline:
            return result, history
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Outcomes of requests through a gateway with JWT consumers
# ---------------------------------------------------------------------------

class Gateways(dict):
    """Lazily started gateways: ``gws[key]`` starts the Envoy for
    ``specs[key] = (plugin_config, {cluster: port})`` on first access;
    :meth:`stop_all` stops them. ``ready`` (optional) is called with each
    new gateway (e.g. to wait until remote keys are loaded)."""

    def __init__(self, specs: Mapping[str, tuple[Mapping[str, Any], Mapping[str, int]]], upstream_port: int,
                 prefix: str, wasm: str | os.PathLike | None = None,
                 ready: Mapping[str, Callable[[harness.Envoy], None]] | None = None) -> None:
        super().__init__()
        self.specs = specs
        self.upstream_port = upstream_port
        self.prefix = prefix
        self.wasm = wasm
        self.ready = dict(ready or {})
        self.started: list[harness.Envoy] = []
        self.failed: dict[str, str] = {}

    def __missing__(self, key: str) -> harness.Envoy:
        if key in self.failed:
            raise IdpError(f"gateway {key} did not come up earlier: {self.failed[key]}")
        config, clusters = self.specs[key]
        gw = gateway(config, self.upstream_port, clusters, name=f"{self.prefix}-{key}", wasm=self.wasm)
        self.started.append(gw)
        try:
            gw.start()
            if key in self.ready:
                self.ready[key](gw)
        except BaseException as e:
            self.failed[key] = f"{type(e).__name__}: {e}"[:2000]
            raise
        self[key] = gw
        return gw

    def stop_all(self) -> None:
        for gw in self.started:
            gw.stop()
