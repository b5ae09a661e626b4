"""A small scripted browser for the single sign-on tests (standard library).

* :class:`CookieJar` keeps cookies the way a browser does (RFC 6265, the
  parts that matter here): host-only or ``Domain`` cookies, ``Path``
  (default path from the request URL), ``Max-Age`` (``<= 0`` deletes) and
  ``Expires``, ``Secure`` cookies never sent over plain http. Cookies are
  per host, not per port, as in real browsers: the IdP on 127.0.0.1:<p1>
  and the gateway on 127.0.0.1:<p2> see each other's cookies.
* :class:`Browser` makes one request at a time on a fresh connection with
  redirects off (:meth:`Browser.request`) or follows them
  (:meth:`Browser.navigate`): 301/302/303 become GET, 307/308 repeat the
  request; on the way it fills in the IdP's pages the way a person would:
  the devInteractions login form (any login name, any password), the
  consent form (or its "Cancel" link, ``consent="abort"``) and the
  RP-initiated logout confirmation.
* Every hop is kept in :attr:`Page.history` (method, URL, response), so a
  test can look at the callback's ``Set-Cookie`` lines or stop before a URL
  (``stop_at``) to replay it later.
"""

from __future__ import annotations

import email.utils
import html
import http.client
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlencode, urljoin, urlsplit

NAV_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
USER_AGENT = "edge-auth-e2e-browser/1.0"


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------


@dataclass
class Resp:
    method: str
    url: str
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    request_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.body)

    @property
    def location(self) -> str | None:
        loc = self.headers.get("Location")
        return urljoin(self.url, loc) if loc is not None else None

    @property
    def set_cookies(self) -> list[str]:
        return list(self.headers.get_all("Set-Cookie") or [])

    def set_cookie_names(self) -> dict[str, str]:
        """``{name: whole Set-Cookie line}`` (last line wins)."""
        out = {}
        for line in self.set_cookies:
            name = line.split("=", 1)[0].strip()
            out[name] = line
        return out

    def __repr__(self) -> str:
        hdrs = ", ".join(f"{k}: {v if len(v) < 300 else v[:300] + '...'}" for k, v in self.headers.items())
        body = self.body if len(self.body) <= 600 else self.body[:600] + b"..."
        return f"Resp({self.method} {self.url} -> {self.status}, headers={{{hdrs}}}, body={body!r})"


@dataclass
class Page:
    """The end of a navigation: the final response and every hop to it."""

    final: Resp
    history: list[Resp]

    @property
    def status(self) -> int:
        return self.final.status

    @property
    def url(self) -> str:
        return self.final.url

    def json(self) -> Any:
        return self.final.json()

    @property
    def text(self) -> str:
        return self.final.text

    def hops(self) -> list[str]:
        return [f"{r.method} {r.url} -> {r.status}" for r in self.history]

    def visited(self, pred: Callable[[Resp], bool]) -> list[Resp]:
        return [r for r in self.history if pred(r)]

    def __repr__(self) -> str:
        return "Page(\n  " + "\n  ".join(self.hops()) + f"\n  final={self.final!r})"


# ---------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------


@dataclass
class Cookie:
    name: str
    value: str
    domain: str  # lower-case host or domain
    host_only: bool
    path: str
    expires: float | None  # monotonic-free wall clock seconds; None: session cookie
    secure: bool
    http_only: bool
    same_site: str | None
    raw: str


def _default_path(url_path: str) -> str:
    if not url_path.startswith("/") or url_path.count("/") == 1:
        return "/"
    return url_path[: url_path.rfind("/")]


def _path_match(request_path: str, cookie_path: str) -> bool:
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


def _domain_match(host: str, domain: str) -> bool:
    return host == domain or (host.endswith("." + domain) and not re.fullmatch(r"[\d.]+", host))


class CookieJar:
    def __init__(self) -> None:
        self._cookies: dict[tuple[str, str, str], Cookie] = {}

    # -- storing ------------------------------------------------------------

    def set_from_header(self, line: str, url: str) -> Cookie | None:
        """Apply one ``Set-Cookie`` line received from ``url``; returns the
        stored cookie (None when ignored or deleted)."""
        parts = line.split(";")
        name, sep, value = parts[0].partition("=")
        if not sep:
            return None
        name, value = name.strip(), value.strip()
        if not name:
            return None
        u = urlsplit(url)
        host = (u.hostname or "").lower()
        attrs: dict[str, str] = {}
        flags: set[str] = set()
        for p in parts[1:]:
            k, s, v = p.partition("=")
            k = k.strip().lower()
            if s:
                attrs[k] = v.strip()
            else:
                flags.add(k)
        now = time.time()
        expires: float | None = None
        if "max-age" in attrs:
            try:
                age = int(attrs["max-age"])
            except ValueError:
                age = None
            if age is not None:
                expires = now + age if age > 0 else 0.0
        elif "expires" in attrs:
            try:
                expires = email.utils.parsedate_to_datetime(attrs["expires"]).timestamp()
            except (TypeError, ValueError):
                expires = None
        domain = attrs.get("domain", "").lstrip(".").lower()
        if domain:
            if not _domain_match(host, domain):
                return None  # a browser refuses cookies for foreign domains
            host_only = False
        else:
            domain, host_only = host, True
        path = attrs.get("path", "")
        if not path.startswith("/"):
            path = _default_path(u.path or "/")
        secure = "secure" in flags
        if secure and u.scheme != "https":
            return None  # browsers refuse Secure cookies from http origins
        key = (domain, path, name)
        if expires is not None and expires <= now:
            self._cookies.pop(key, None)
            return None
        c = Cookie(name, value, domain, host_only, path, expires, secure, "httponly" in flags,
                   attrs.get("samesite"), line)
        self._cookies[key] = c
        return c

    def set(self, name: str, value: str, host: str = "127.0.0.1", path: str = "/") -> None:
        """Put a cookie in the jar by hand (as a tampering user would)."""
        self._cookies[(host, path, name)] = Cookie(name, value, host, True, path, None, False, True, None,
                                                   f"{name}={value}")

    def delete(self, name: str) -> None:
        for key in [k for k in self._cookies if k[2] == name]:
            del self._cookies[key]

    def clear(self) -> None:
        self._cookies.clear()

    # -- reading ------------------------------------------------------------

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, c in self._cookies.items() if c.expires is not None and c.expires <= now]:
            del self._cookies[key]

    def for_url(self, url: str) -> list[Cookie]:
        self._expire()
        u = urlsplit(url)
        host = (u.hostname or "").lower()
        path = u.path or "/"
        out = [
            c for c in self._cookies.values()
            if (c.domain == host if c.host_only else _domain_match(host, c.domain))
            and _path_match(path, c.path)
            and (not c.secure or u.scheme == "https")
        ]
        out.sort(key=lambda c: -len(c.path))
        return out

    def header_for(self, url: str) -> str | None:
        cookies = self.for_url(url)
        return "; ".join(f"{c.name}={c.value}" for c in cookies) if cookies else None

    def all(self) -> list[Cookie]:
        self._expire()
        return list(self._cookies.values())

    def names(self) -> set[str]:
        return {c.name for c in self.all()}

    def get(self, name: str) -> Cookie | None:
        for c in self.all():
            if c.name == name:
                return c
        return None

    def matching(self, pred: Callable[[str], bool]) -> list[Cookie]:
        return [c for c in self.all() if pred(c.name)]

    def __repr__(self) -> str:
        return "CookieJar(" + ", ".join(f"{c.name}@{c.domain}{c.path}({len(c.value)}B)" for c in self.all()) + ")"


# ---------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------


class BrowserError(RuntimeError):
    pass


_LOGIN_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>.*?name="prompt" value="login"', re.S)
_CONSENT_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>\s*<input type="hidden" name="prompt" value="consent"', re.S)
_ABORT_LINK = re.compile(r'<a href="([^"]*/abort)"')
_LOGOUT_FORM = re.compile(r'<form id="op.logoutForm" method="post" action="([^"]+)"')
_XSRF = re.compile(r'name="xsrf" value="([^"]+)"')


class Browser:
    """One browser profile: a cookie jar and a person at the keyboard who
    signs in as ``login`` when the IdP asks."""

    def __init__(self, login: str = "alice", password: str = "any password", name: str = "browser",
                 timeout: float = 10.0) -> None:
        self.login = login
        self.password = password
        self.name = name
        self.timeout = timeout
        self.jar = CookieJar()
        self.log: list[Resp] = []  # every response this browser received
        self.forms_submitted: list[str] = []  # "login" / "consent" / "abort" / "logout"

    # -- one request --------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str | None = None,
        accept: str | None = NAV_ACCEPT,
        cookies: bool = True,
    ) -> Resp:
        """One request, no redirect following; ``Set-Cookie`` lines are
        stored. ``accept=None`` sends no ``Accept``; ``cookies=False``
        neither sends nor stores cookies."""
        u = urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise BrowserError(f"this browser only speaks plain http to a host: {url!r}")
        items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
        names = {k.lower() for k, _ in items}
        host_header = u.netloc
        req_headers: list[tuple[str, str]] = []
        if "host" not in names:
            req_headers.append(("Host", host_header))
        if "user-agent" not in names:
            req_headers.append(("User-Agent", USER_AGENT))
        if accept is not None and "accept" not in names:
            req_headers.append(("Accept", accept))
        if cookies and "cookie" not in names:
            ch = self.jar.header_for(url)
            if ch:
                req_headers.append(("Cookie", ch))
        data = body.encode() if isinstance(body, str) else body
        if data is not None and "content-length" not in names:
            req_headers.append(("Content-Length", str(len(data))))
        req_headers += items
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=self.timeout)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in req_headers:
                conn.putheader(k, v)
            conn.endheaders(data)
            r = conn.getresponse()
            payload = r.read() if method != "HEAD" else b""
            resp = Resp(method, url, r.status, r.headers, payload, req_headers)
        finally:
            conn.close()
        if cookies:
            for line in resp.set_cookies:
                self.jar.set_from_header(line, url)
        self.log.append(resp)
        return resp

    def get(self, url: str, **kw: Any) -> Resp:
        return self.request("GET", url, **kw)

    # -- following redirects and filling in the IdP's pages -----------------

    def navigate(
        self,
        url: str,
        method: str = "GET",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str | None = None,
        stop_at: Callable[[str], bool] | None = None,
        consent: str = "accept",
        sign_in: bool = True,
        confirm_logout: bool = True,
        max_hops: int = 20,
    ) -> Page:
        """Go to ``url`` like a person clicking a link: follow redirects,
        sign in at the IdP's login form (when ``sign_in``), accept the
        consent form (``consent="accept"``) or press its Cancel link
        (``"abort"``), confirm the IdP's sign-out question. Stops at the
        first other page, or before requesting a URL ``stop_at`` accepts
        (the final response is then the redirect that led there).
        ``headers`` go with the first request only (like a typed URL)."""
        history: list[Resp] = []
        first_headers = headers
        content_type: str | None = None
        for _ in range(max_hops):
            extra: list[tuple[str, str]] = []
            if first_headers is not None:
                extra += list(first_headers.items()) if isinstance(first_headers, Mapping) else list(first_headers)
                first_headers = None
            if body is not None and content_type:
                extra.append(("Content-Type", content_type))
            resp = self.request(method, url, headers=extra, body=body)
            history.append(resp)
            if resp.status in (301, 302, 303, 307, 308) and resp.location:
                nxt = resp.location
                if resp.status in (301, 302, 303) and method != "HEAD":
                    method, body, content_type = "GET", None, None
                if stop_at is not None and stop_at(nxt):
                    return Page(resp, history)
                url = nxt
                continue
            if resp.status == 200 and "text/html" in (resp.headers.get("Content-Type") or ""):
                page = resp.text
                step = self._idp_form(resp, page, consent, sign_in, confirm_logout)
                if step is not None:
                    kind, action, fields = step
                    self.forms_submitted.append(kind)
                    if fields is None:  # a link
                        method, body, content_type = "GET", None, None
                    else:
                        method, body = "POST", urlencode(fields)
                        content_type = "application/x-www-form-urlencoded"
                    url = action
                    if stop_at is not None and stop_at(url):
                        return Page(resp, history)
                    continue
            return Page(resp, history)
        raise BrowserError(f"{self.name}: more than {max_hops} hops:\n" + "\n".join(
            f"{r.method} {r.url} -> {r.status}" for r in history))

    def _idp_form(self, resp: Resp, page: str, consent: str, sign_in: bool, confirm_logout: bool):
        """(kind, absolute action URL, form fields or None for a link) of the
        IdP page in front of us, or None when it is not one."""
        m = _LOGIN_FORM.search(page)
        if m:
            if not sign_in:
                return None
            return ("login", urljoin(resp.url, html.unescape(m.group(1))),
                    {"prompt": "login", "login": self.login, "password": self.password})
        m = _CONSENT_FORM.search(page)
        if m:
            if consent == "abort":
                a = _ABORT_LINK.search(page)
                if not a:
                    raise BrowserError(f"consent page without a cancel link: {page[:800]}")
                return ("abort", urljoin(resp.url, html.unescape(a.group(1))), None)
            if consent != "accept":
                return None
            return ("consent", urljoin(resp.url, html.unescape(m.group(1))), {"prompt": "consent"})
        m = _LOGOUT_FORM.search(page)
        if m and confirm_logout:
            x = _XSRF.search(page)
            if not x:
                raise BrowserError(f"logout page without xsrf: {page[:800]}")
            return ("logout", urljoin(resp.url, html.unescape(m.group(1))), {"xsrf": x.group(1), "logout": "yes"})
        return None

    @staticmethod
    def is_login_page(resp: Resp) -> bool:
        return resp.status == 200 and bool(_LOGIN_FORM.search(resp.text))

    def __repr__(self) -> str:
        return f"Browser({self.name!r}, login={self.login!r}, {self.jar!r})"
