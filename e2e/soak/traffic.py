"""The request kinds of the soak and how each is judged.

Every kind makes a :class:`Shot` (the request's bytes with a unique probe
header, its expectation and its check); :meth:`Traffic.settle` records the
answer as a :class:`~soak.records.Result`. Must-be-denied requests carry a
probe the upstream must never see (checked at the end on the echo's
header-time record). The browser login is apart: a whole login flow in a
thread (:meth:`Traffic.sso_login`)."""

from __future__ import annotations

import collections
import html
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlencode, urlsplit

import jose_forge as jf
from common import C1, C2, FORM, PROBE_HEADER, TOKEN_PATH, Consumer, basic, cred_params, forged, query
from idp_control import APP1, APP2, ES256_RESOURCE, RS256_RESOURCE, Idp
from sso_browser import NAV_ACCEPT, Browser

from soak.client import Answer, request_bytes
from soak.records import (DENY, EITHER, NEVER, PASS, REACHES, WRONG_IDENTITY, Ledger, Result, Timeline,
                          error_note)
from soak.services import CALLBACK, COOKIE, ORDERS, TTLS, Gateway, KeyPlan

PAGE_MESSAGE = re.compile(r"<p>(.*?)</p>", re.S)
USERS = 3000  # distinct IdP users (after the cache fill each new one evicts, until a key change empties the caches)
REVOCABLE_SHARE = 0.2  # of the users' tokens signed with the key that is revoked
REVOCATION_SLACK = 5.0  # seconds after a refresh interval by which a revoked key must be gone
LATE_BODY_DELAYS = (0.05, 0.8)  # seconds between a token POST's headers and its body


@dataclass(slots=True)
class Shot:
    """One request of a kind, ready to send."""

    kind: str
    expect: str  # PASS / DENY / EITHER
    data: bytes  # the request, or its head when ``rest`` comes later
    check: Callable[[Answer], str | None] | None = None  # PASS / EITHER: None when right
    denied: tuple[int, ...] = ()  # DENY / EITHER: the right statuses
    rest: bytes = b""
    delay: float = 0.0
    after: Callable[[Answer], None] | None = None  # DENY: called with a right answer (to keep its cookies)


@dataclass(slots=True)
class IdpToken:
    token: str
    generation: int  # the IdP key set that signed it
    exp: float  # time.time() when it expires


class Pool:
    """The latest ``size`` items of a kind, picked at random (thread-safe)."""

    def __init__(self, size: int) -> None:
        self.items: collections.deque = collections.deque(maxlen=size)
        self.lock = threading.Lock()

    def add(self, item) -> None:
        with self.lock:
            self.items.append(item)

    def replace(self, items: Iterable) -> None:
        with self.lock:
            self.items.clear()
            self.items.extend(items)

    def remove(self, item) -> None:
        with self.lock:
            try:
                self.items.remove(item)
            except ValueError:
                pass

    def pick(self):
        with self.lock:
            return random.choice(self.items) if self.items else None

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)


class Users:
    """Thousands of IdP users' access tokens, signed with the IdP's own keys
    (the key set its JWKS serves), so the verified-token cache churns: per
    key generation, ES256 and RS256 tokens; and tokens of the revocable key."""

    def __init__(self, issuer: str, keys: KeyPlan, count: int, ttl: int) -> None:
        now = int(time.time())
        revocable = int(count * REVOCABLE_SHARE)
        main = count - revocable

        def sign(n: int, key: jf.Key) -> str:
            claims = jf.claims(issuer, RS256_RESOURCE, sub=f"soak-user-{n}", client_id=APP1.client_id,
                               scope="read write", ttl=ttl, now=now)
            return jf.sign_jwt(claims, key, typ="at+jwt", kid=key.kid)

        self.by_generation = [[sign(n, pair[0] if n % 4 == 0 else pair[1]) for n in range(main)]
                              for pair in keys.pairs]
        self.revocable = [sign(main + n, keys.revocable) for n in range(revocable)]
        self.sent: set[int] = set()


def page_message(body: bytes) -> str:
    m = PAGE_MESSAGE.search(body.decode("utf-8", "replace"))
    return html.unescape(m.group(1)) if m else body[:80].decode("utf-8", "replace")


def flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]


def served_as(consumer: str) -> Callable[[Answer], str | None]:
    """Check of a must-pass upstream request: the echo answered, for ``consumer``."""
    def check(r: Answer) -> str | None:
        if r.status != 200:
            challenge = r.get("www-authenticate")
            return f"{r.status} {r.text[:100]}" + (f" ({challenge})" if challenge else "")
        seen = r.json()["headers"].get("x-mse-consumer")
        return None if seen == consumer else f"{WRONG_IDENTITY}: {seen!r}, not {consumer!r}"
    return check


class Traffic:
    """The request kinds, their mix, and the material they use (tokens,
    sessions, login cookies)."""

    def __init__(self, gw: Gateway, idp: Idp, keys: KeyPlan, ledger: Ledger, timeline: Timeline,
                 users: int = USERS, run_seconds: float = 600) -> None:
        self.gw = gw
        self.port = gw.port
        self.idp = idp
        self.ledger = ledger
        self.timeline = timeline
        self.gw_tokens = {c.name: Pool(16) for c in (C1, C2)}
        self.idp_tokens = Pool(8)  # APP1 client-credentials tokens (RS256, ES256): consumer orders-app
        self.idp_stranger = Pool(4)  # APP2: no consumer matches it
        self.sessions = Pool(16)  # [login, Cookie header, login time] of finished browser logins, updated on refresh
        self.login_cookies = Pool(16)  # login (CSRF) cookies of anonymous navigations
        self.users = Users(idp.issuer, keys, users, ttl=int(run_seconds) + 3600)
        self.foreign_key = jf.rsa_key("RS256", kid="soak-foreign")
        # Every key set's keys, made before the load processes fork, so a key
        # change reaches them as kids: parsing a private JWKS there (~0.2 s
        # of RSA key checks holding the interpreter) stalled both load
        # processes at the key rotation, and every request that came due
        # meanwhile then went out at once on a connection of its own (a
        # 2-minute try-out: Envoy's downstream connections 35 -> 247 in a
        # second, its heap in use +3.9 MB; an IdP restart alone: no change).
        self.known_keys = {k.kid: k for k in [*keys.pairs[0], *keys.pairs[1], keys.revocable]}
        self._signed: dict[tuple[str, str], list[str]] = {}  # costly forgeries, made once per key
        self.keys_lock = threading.Lock()  # held while the IdP's keys change (see faults.rotate_keys)
        self.logins = 0
        # Set when the load runs in other processes (soak.workers): send the
        # material made here (IdP tokens, sessions, keys) to all of them, or
        # to one (a session lives in one process, as a browser's would).
        self.to_all: Callable[[str, object], None] | None = None
        self.to_one: Callable[[str, object], None] | None = None
        # name -> (weight, function); the login thread runs sso_login apart.
        self.mix: dict[str, tuple[int, Callable[[], Shot | None]]] = {
            "gateway token, /api": (14, self.gw_valid_api),
            "gateway token, /admin": (4, self.gw_valid_admin),
            "IdP token, /api": (8, self.idp_valid_api),
            "IdP user token, /api": (16, self.user_valid_api),
            "IdP user token, revocable key": (5, self.user_revocable),
            "SSO session": (8, self.sso_session),
            "token GET": (6, self.token_get),
            "token POST": (4, self.token_post),
            "token POST, body late": (3, self.token_post_late),
            "gateway token not on allow list": (4, self.gw_not_allowed),
            "gateway token, tampered signature": (4, self.gw_tampered),
            "gateway token, expired": (3, self.gw_expired),
            "gateway token, alg none": (3, self.gw_alg_none),
            "gateway token, other secret": (3, self.gw_other_secret),
            "no token, spoofed X-Mse-Consumer": (3, self.no_token),
            "IdP token not on allow list": (4, self.idp_not_allowed),
            "IdP token, unknown client": (3, self.idp_unknown_client),
            "IdP token, expired": (3, self.idp_expired),
            "IdP kid, foreign key": (3, self.idp_foreign_key),
            "token GET, wrong secret": (3, self.token_bad_secret),
            "token POST, wrong Basic": (3, self.token_bad_basic),
            "token GET, bad grant": (2, self.token_bad_grant),
            "SSO anonymous navigation": (4, self.sso_anonymous_nav),
            "SSO anonymous XHR": (3, self.sso_anonymous_xhr),
            "SSO tampered session": (3, self.sso_tampered_session),
            "callback without login cookie": (3, self.callback_no_cookie),
            "callback with wrong state": (3, self.callback_wrong_state),
            "callback with IdP error": (2, self.callback_idp_error),
        }
        self._kinds = list(self.mix)
        total, self._cum = 0, []
        for k in self._kinds:
            total += self.mix[k][0]
            self._cum.append(total)

    # -- plumbing -----------------------------------------------------------------

    def next_shot(self) -> Shot | None:
        """A request of a kind picked by weight (None: that kind has no
        material yet, e.g. no session before the first login)."""
        name = random.choices(self._kinds, cum_weights=self._cum)[0]
        return self.mix[name][1]()

    def shot(self, kind: str, expect: str, upstream: str, method: str, path: str, headers=(),
             body: str | None = None, check=None, denied: Iterable[int] = (), late: float = 0.0) -> Shot:
        p = self.ledger.new_probe(kind, upstream)
        data = request_bytes(method, path, [*headers, (PROBE_HEADER, p)],
                             body.encode() if body is not None else None, self.port)
        rest = b""
        if late and body:
            cut = len(data) - len(body.encode()) // 2  # headers and half the body now, the rest later
            data, rest = data[:cut], data[cut:]
        return Shot(kind, expect, data, check, tuple(denied), rest, late)

    def settle(self, s: Shot, r: Answer | None, t0: float, t1: float, error: str = "") -> Result:
        """Record the answer ``r`` to ``s`` (None: no answer, ``error`` says why)."""
        if r is None:
            res = Result(s.kind, s.expect, t0, t1, None, False, note=error)
        elif s.expect == DENY or (s.expect == EITHER and r.status in s.denied):
            ok = r.status in s.denied
            res = Result(s.kind, s.expect, t0, t1, r.status, ok, let_through=200 <= r.status < 300,
                         note="" if ok else r.text[:120])
            if ok and s.after is not None:
                s.after(r)
        else:
            problem = self.checked(s.check, r)
            res = Result(s.kind, s.expect, t0, t1, r.status, problem is None, note=problem or "",
                         let_through=(problem or "").startswith(WRONG_IDENTITY))
        self.ledger.add(res)
        return res

    @staticmethod
    def checked(check: Callable[[Answer], str | None] | None, r: Answer) -> str | None:
        try:
            return check(r) if check else None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return f"{r.status} unreadable answer: {error_note(e)}"

    def api(self, kind: str, expect: str, path: str, token: str | None, consumer: str = "",
            denied: Iterable[int] = (), extra=()) -> Shot:
        headers = [("Host", "gw.soak.test"), *extra]
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        if expect == PASS:
            return self.shot(kind, PASS, REACHES, "GET", path, headers, check=served_as(consumer))
        if expect == EITHER:
            return self.shot(kind, EITHER, REACHES, "GET", path, headers, check=served_as(consumer), denied=denied)
        return self.shot(kind, DENY, NEVER, "GET", path, headers, denied=denied)

    def gateway_token(self, c: Consumer) -> str:
        return self.gw_tokens[c.name].pick() or forged(c)

    def signed(self, what: str, kid: str, make: Callable[[], str]) -> str:
        """One of a few tokens made by ``make`` for key ``kid`` (RSA signing
        costs a millisecond: made once, not per request)."""
        made = self._signed.setdefault((what, kid), [])
        if len(made) < 16:
            made.append(make())
            return made[-1]
        return random.choice(made)

    # -- gateway tokens -----------------------------------------------------------

    def gw_valid_api(self) -> Shot:
        c = random.choice((C1, C2))
        return self.api("gateway token, /api", PASS, f"/api/orders/{random.randint(1, 999)}",
                        self.gateway_token(c), c.name)

    def gw_valid_admin(self) -> Shot:
        return self.api("gateway token, /admin", PASS, "/admin/users", self.gateway_token(C1), C1.name)

    def gw_not_allowed(self) -> Shot:
        return self.api("gateway token not on allow list", DENY, "/admin/users", self.gateway_token(C2), denied=[403])

    def gw_tampered(self) -> Shot:
        token = jf.tamper_signature(self.gateway_token(random.choice((C1, C2))))
        return self.api("gateway token, tampered signature", DENY, "/api/x", token, denied=[401])

    def gw_expired(self) -> Shot:
        now = int(time.time())
        token = forged(C1, iat=now - 7800, exp=now - 600)  # beyond the 60 s skew
        return self.api("gateway token, expired", DENY, "/api/x", token, denied=[401])

    def gw_alg_none(self) -> Shot:
        token = jf.assemble({"alg": "none", "typ": jf.AT_JWT_TYP}, jf.mse_claims(C1.name, C1.client_id))
        return self.api("gateway token, alg none", DENY, "/api/x", token, denied=[401])

    def gw_other_secret(self) -> Shot:
        return self.api("gateway token, other secret", DENY, "/api/x", forged(C1, secret=C2.client_secret),
                        denied=[401])

    def no_token(self) -> Shot:
        return self.api("no token, spoofed X-Mse-Consumer", DENY, "/api/x", None, denied=[401],
                        extra=[("X-Mse-Consumer", C1.name)])

    # -- IdP tokens -----------------------------------------------------------------

    def live_idp_token(self, pool: Pool) -> IdpToken | None:
        """A pooled IdP token with at least 8 s to live (they live
        IDP_TOKEN_TTL; an answer may take seconds under load)."""
        for _ in range(4):
            held = pool.pick()
            if held is None or held.exp - time.time() > 8:
                return held
        return None

    def idp_valid_api(self) -> Shot | None:
        held = self.live_idp_token(self.idp_tokens)
        if held is None:
            return None
        kind = "IdP token, /api"
        if held.generation != self.timeline.key_generation:
            kind = "IdP token, /api (retired key)"  # judged apart: its key may be gone already
        return self.api(kind, PASS, f"/api/orders/{random.randint(1, 999)}", held.token, ORDERS)

    def user_valid_api(self) -> Shot:
        """One of thousands of users (verified-token cache churn)."""
        u = self.users
        generation = self.timeline.users_generation
        tokens = u.by_generation[generation]
        n = random.randrange(len(tokens))
        u.sent.add(n)
        kind = "IdP user token, /api"
        if generation != self.timeline.key_generation:
            kind = "IdP user token, /api (retired key)"
        return self.api(kind, PASS, f"/api/users/{n}", tokens[n], ORDERS)

    def user_revocable(self) -> Shot:
        """A user token of the key that the revocation removes from the JWKS:
        must pass before, must be refused from one refresh interval (plus
        slack) after it; either in between."""
        token = random.choice(self.users.revocable)
        tl = self.timeline
        now = self.ledger.now()
        if tl.revoked_at is None or now < tl.revoked_at:
            return self.api("IdP user token, revocable key", PASS, "/api/revocable", token, ORDERS)
        if tl.revocation_deadline is None or now < tl.revocation_deadline:
            return self.api("IdP user token, revoked key, within the refresh interval", EITHER, "/api/revocable",
                            token, ORDERS, denied=[401])
        return self.api("IdP user token, revoked key", DENY, "/api/revocable", token, denied=[401])

    def idp_not_allowed(self) -> Shot | None:
        held = self.live_idp_token(self.idp_tokens)
        if held is None:
            return None
        # 401 when the token is of a retired key set (after the rotation)
        return self.api("IdP token not on allow list", DENY, "/admin/users", held.token, denied=[403, 401])

    def idp_unknown_client(self) -> Shot | None:
        held = self.live_idp_token(self.idp_stranger)
        if held is None:
            return None
        return self.api("IdP token, unknown client", DENY, "/api/x", held.token, denied=[401])

    def idp_expired(self) -> Shot:
        key = self.idp.key("RS256")

        def make() -> str:
            now = int(time.time())
            return self.idp.forge("RS256", iat=now - 4000, exp=now - 600)
        return self.api("IdP token, expired", DENY, "/api/x", self.signed("expired", key.kid, make), denied=[401])

    def idp_foreign_key(self) -> Shot:
        """Claims of a real IdP token and its kid, signed by another key."""
        kid = self.idp.key("RS256").kid

        def make() -> str:
            claims = jf.claims(self.idp.issuer, RS256_RESOURCE, sub=APP1.client_id, client_id=APP1.client_id,
                               scope="read write", ttl=7200)
            return jf.sign_jwt(claims, self.foreign_key, typ="at+jwt", kid=kid)
        return self.api("IdP kid, foreign key", DENY, "/api/x", self.signed("foreign", kid, make), denied=[401])

    def fetch_idp_tokens(self, generation: int) -> None:
        """Fresh APP1 tokens (RS256 and ES256, for orders-app) and APP2
        tokens from the IdP (client credentials)."""
        exp = time.time() + self.idp_ttl() - 1
        good = [IdpToken(self.idp.client_credentials_token(APP1, res), generation, exp)
                for res in (RS256_RESOURCE, ES256_RESOURCE) for _ in range(2)]
        stranger = [IdpToken(self.idp.client_credentials_token(APP2, RS256_RESOURCE), generation, exp)]
        self.idp_tokens.replace(good)
        self.idp_stranger.replace(stranger)
        if self.to_all is not None:
            self.to_all("idp_tokens", (good, stranger))

    def keys_changed(self, keyset: dict) -> None:
        """The IdP's key set from its next start (the forgeries of the
        expired and foreign-key kinds carry its kid)."""
        if self.to_all is not None:
            self.to_all("idp_keys", keyset)

    def take(self, what: str, value) -> None:
        """Material sent by the process that makes it (see ``to_all``)."""
        if what == "idp_tokens":
            good, stranger = value
            self.idp_tokens.replace(good)
            self.idp_stranger.replace(stranger)
        elif what == "idp_keys":
            self.idp.keys = {j["kid"]: self.known_keys.get(j["kid"]) or jf.key_from_jwk(j) for j in value["keys"]}
        elif what == "session":
            self.sessions.add(value)

    def idp_ttl(self) -> int:
        return int(self.idp.env.get("IDP_ACCESS_TOKEN_TTL", "600"))

    # -- token endpoint -----------------------------------------------------------------

    def issued(self, c: Consumer) -> Callable[[Answer], str | None]:
        """Check of a must-pass token request: a token for ``c`` (kept for
        the bearer requests)."""
        def check(r: Answer) -> str | None:
            if r.status != 200:
                return f"{r.status} {r.text[:100]}"
            body = r.json()
            token = body.get("access_token", "")
            if body.get("expires_in") not in TTLS or not jf.hs_verify(token, c.client_secret):
                return f"bad token response {body}"
            self.gw_tokens[c.name].add(token)
            return None
        return check

    def token_get(self) -> Shot:
        c = random.choice((C1, C2))
        return self.shot("token GET", PASS, NEVER, "GET", query(TOKEN_PATH, cred_params(c)), check=self.issued(c))

    def token_post_request(self, c: Consumer) -> tuple[list[tuple[str, str]], str]:
        if random.random() < 0.5:
            return [("Content-Type", FORM), ("Authorization", basic(c.client_id, c.client_secret))], \
                "grant_type=client_credentials"
        return [("Content-Type", FORM)], urlencode(cred_params(c))

    def token_post(self) -> Shot:
        # A token request never reaches the upstream, not even its headers
        # (the echo records a request when its headers arrive).
        c = random.choice((C1, C2))
        headers, body = self.token_post_request(c)
        return self.shot("token POST", PASS, NEVER, "POST", TOKEN_PATH, headers, body=body, check=self.issued(c))

    def token_post_late(self) -> Shot:
        """Headers and half the body, the rest up to 0.8 s later (well
        within token_body_timeout_ms): held, then answered with a token."""
        c = random.choice((C1, C2))
        headers, body = self.token_post_request(c)
        return self.shot("token POST, body late", PASS, NEVER, "POST", TOKEN_PATH, headers, body=body,
                         check=self.issued(c), late=random.uniform(*LATE_BODY_DELAYS))

    def token_bad_secret(self) -> Shot:
        params = [("grant_type", "client_credentials"), ("client_id", C1.client_id),
                  ("client_secret", C2.client_secret)]
        return self.shot("token GET, wrong secret", DENY, NEVER, "GET", query(TOKEN_PATH, params), denied=[400])

    def token_bad_basic(self) -> Shot:
        headers = [("Content-Type", FORM), ("Authorization", basic(C2.client_id, C1.client_secret))]
        return self.shot("token POST, wrong Basic", DENY, NEVER, "POST", TOKEN_PATH, headers,
                         body="grant_type=client_credentials", denied=[401])

    def token_bad_grant(self) -> Shot:
        params = cred_params(C1, grant_type="password")
        return self.shot("token GET, bad grant", DENY, NEVER, "GET", query(TOKEN_PATH, params), denied=[400])

    # -- single sign-on ---------------------------------------------------------------------

    def session_check(self, held: list) -> Callable[[Answer], str | None]:
        """Served as the session's user; a refreshed session's new cookie
        replaces the old one (as a browser would), a cleared one is dropped."""
        def check(r: Answer) -> str | None:
            fresh, cleared = session_cookies(r)
            if fresh:
                held[1] = fresh
            elif cleared:
                self.sessions.remove(held)
            return served_as(held[0])(r)
        return check

    def sso_session(self) -> Shot | None:
        held = self.sessions.pick()
        if held is None:
            return None
        kind = "SSO session"
        if self.timeline.restarted_since(held[2]):
            # Its refresh token died with the IdP's memory: the next refresh
            # is refused and the session cleared (a 302 to log in again).
            kind = "SSO session, IdP restarted since its login"
        return self.shot(kind, PASS, REACHES, "GET", f"/app/home?n={random.randint(1, 999)}",
                         [("Accept", NAV_ACCEPT), ("Cookie", held[1])], check=self.session_check(held))

    def sso_tampered_session(self) -> Shot | None:
        held = self.sessions.pick()
        if held is None:
            return None
        name, _, value = held[1].partition("=")
        bad = f"{name}={flip(value, random.randrange(len(value)))}"
        return self.shot("SSO tampered session", DENY, NEVER, "GET", "/app/home",
                         [("Accept", NAV_ACCEPT), ("Cookie", bad)], denied=[302])

    def harvest_login_cookie(self, r: Answer) -> None:
        cookies = [c.split(";", 1)[0] for c in r.get_all("set-cookie")]
        if cookies:
            self.login_cookies.add("; ".join(cookies))

    def sso_anonymous_nav(self) -> Shot:
        s = self.shot("SSO anonymous navigation", DENY, NEVER, "GET", "/app/page", [("Accept", NAV_ACCEPT)],
                      denied=[302])
        s.after = self.harvest_login_cookie
        return s

    def sso_anonymous_xhr(self) -> Shot:
        return self.shot("SSO anonymous XHR", DENY, NEVER, "GET", "/app/api",
                         [("Accept", "application/json"), ("X-Requested-With", "XMLHttpRequest")], denied=[401])

    def callback_no_cookie(self) -> Shot:
        path = f"{CALLBACK}?{urlencode({'code': uuid.uuid4().hex, 'state': uuid.uuid4().hex})}"
        return self.shot("callback without login cookie", DENY, NEVER, "GET", path, [("Accept", NAV_ACCEPT)],
                         denied=[403])

    def callback_wrong_state(self) -> Shot | None:
        """A real login cookie (from an anonymous navigation), presented
        with another state (CSRF)."""
        cookies = self.login_cookies.pick()
        if cookies is None:
            return None
        path = f"{CALLBACK}?{urlencode({'code': uuid.uuid4().hex, 'state': uuid.uuid4().hex})}"
        return self.shot("callback with wrong state", DENY, NEVER, "GET", path,
                         [("Accept", NAV_ACCEPT), ("Cookie", cookies)], denied=[403])

    def callback_idp_error(self) -> Shot:
        path = f"{CALLBACK}?{urlencode({'error': 'access_denied', 'state': uuid.uuid4().hex})}"
        return self.shot("callback with IdP error", DENY, NEVER, "GET", path, [("Accept", NAV_ACCEPT)],
                         denied=[403])

    def sso_login(self) -> None:
        """A full browser login (IdP login and consent forms, offline_access:
        the session gets a refresh token); the landing page must come from
        the upstream for this user. The probe rides in the query string,
        which the plugin carries through the login."""
        self.logins += 1
        login = f"soak-login-{self.logins}"
        kind = "SSO browser login"
        p = self.ledger.new_probe(kind, REACHES)
        browser = Browser(login=login, name=login, timeout=15)
        t0 = self.ledger.now()
        try:
            page = browser.navigate(self.gw.url(f"/app/landing?probe={p}"))
        except Exception as e:  # noqa: BLE001 - e.g. the IdP is down: recorded
            self.ledger.add(Result(kind, PASS, t0, self.ledger.now(), None, False, note=error_note(e)))
            return
        t1 = self.ledger.now()
        first = page.history[0]
        if 200 <= first.status < 300:  # the first, anonymous hop was served
            self.ledger.add(Result(kind + " (first hop)", DENY, t0, t1, first.status, False, let_through=True,
                                   note=first.text[:120]))
        if page.status != 200:
            problem = f"{page.status} at {urlsplit(page.url).path}: {page_message(page.final.body)}"
        else:
            problem = self.checked(served_as(login), Answer(200, [], page.final.body))
        self.ledger.add(Result(kind, PASS, t0, t1, page.status, problem is None, note=problem or "",
                               let_through=(problem or "").startswith(WRONG_IDENTITY)))
        session = browser.jar.get(COOKIE)  # (the jar also holds the IdP's cookies: same host)
        if problem is None and session is not None:
            held = [login, f"{COOKIE}={session.value}", t0]
            if self.to_one is not None:
                self.to_one("session", held)
            else:
                self.sessions.add(held)


def session_cookies(r: Answer) -> tuple[str, bool]:
    """(the new session Cookie header from ``r``'s Set-Cookie, or ""; whether
    ``r`` cleared the session)."""
    fresh, cleared = [], False
    for line in r.get_all("set-cookie"):
        pair, _, attrs = line.partition(";")
        name, _, value = pair.strip().partition("=")
        if not name.startswith(COOKIE) or "_csrf_" in name:
            continue
        if not value or "max-age=0" in attrs.lower().replace(" ", ""):
            cleared = True
        else:
            fresh.append(f"{name}={value}")
    return "; ".join(fresh), cleared


def wait_accepted(gw: Gateway, token: str, timeout: float, in_a_row: int = 1) -> float | None:
    """Seconds until ``token`` is served on /api ``in_a_row`` times in a row
    (each on a new connection, so by every worker), None: not within ``timeout``."""
    t0 = time.monotonic()
    streak = 0
    while time.monotonic() - t0 < timeout:
        try:
            r = gw.request("GET", "/api/ready", headers=[("Authorization", f"Bearer {token}")])
            streak = streak + 1 if r.status == 200 else 0
            if streak >= in_a_row:
                return time.monotonic() - t0
        except OSError:
            streak = 0
        if streak == 0:
            time.sleep(0.25)
    return None


def wait_ready(gw: Gateway, traffic: Traffic, timeout: float = 30.0) -> None:
    """The remote keys and the IdP's discovery document are in (an IdP
    token and a user token are served, anonymous /app navigation
    redirects), and the gateway token pools have something."""
    traffic.fetch_idp_tokens(0)
    for token in (traffic.idp_tokens.pick().token, traffic.users.by_generation[0][0], traffic.users.revocable[0]):
        if wait_accepted(gw, token, timeout) is None:
            raise RuntimeError("IdP tokens not accepted after start-up\n" + gw.envoy.log_tail(40))
    deadline = time.monotonic() + timeout
    while gw.request("GET", "/app/ready", headers=[("Accept", NAV_ACCEPT)]).status != 302:
        if time.monotonic() > deadline:
            raise RuntimeError("SSO not ready after start-up\n" + gw.envoy.log_tail(40))
        time.sleep(0.2)
    for c in (C1, C2):
        r = gw.request("GET", query(TOKEN_PATH, cred_params(c)))
        traffic.gw_tokens[c.name].add(r.json()["access_token"])



def fill_shot(traffic: Traffic, kind: str):
    """A must-pass gateway request with a gateway token never sent before
    (a fresh ``jti``; HMAC-signed here, cheap on both sides): each one is a
    new entry in the verified-token cache (see soak.cache_fill)."""
    c = random.choice((C1, C2))
    return traffic.api(kind, PASS, f"/api/fill/{random.randint(1, 999)}", forged(c), c.name)
