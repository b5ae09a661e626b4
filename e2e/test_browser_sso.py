"""Single sign-on in a real browser: Debian's headless Chromium, driven
through chromium-driver (Selenium), against a real Envoy with edge-auth and
the real OpenID provider (e2e/idp, oidc-provider). The IdP's login, consent
and sign-out pages are filled in by clicking, as a person would.

``test_sso.py`` covers the protocol with a scripted browser; this file checks
that a real browser, with its own cookie rules, redirects and tabs, ends up
signed in (and out). Gateways (``Site`` from test_sso) share one IdP; each
uses its own cookie name since browsers keep cookies per host, not per port.

The sign-in error page is saved as a screenshot in the run directory
(e2e/.work); with ``EDGE_AUTH_SCREENSHOT_DIR=docs`` also in docs/ (the README
shows docs/sso-sign-in-error.png).

``make browser-deps`` (part of ``make e2e``/``make test``) installs chromium
and chromium-driver with apt-get when they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import harness
import jose_forge as jf
from test_sso import BIG_CLAIM, CALLBACK, SECRET_A, SECRET_B, SIGN_OUT, Site, _idp, new_port, sso_config

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
MAIN_COOKIE = "_ea_browser_main"
BIG_COOKIE = "_ea_browser_big"
SCREENSHOT = "sso-sign-in-error.png"
STEP_WAIT = 15.0  # seconds for one page to load or one redirect chain to settle
# Flags that work on this kind of machine (no GPU, no sandbox as root, no
# background traffic that could make requests of its own).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--window-size=1000,720", "--lang=en-US",
]


# ---------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------


def page_left(html) -> bool:
    """True once ``html`` (the old page's root) is gone. Chromedriver reports
    a node of a page being replaced either as stale or, mid-navigation, as
    "does not belong to the document" (a plain WebDriverException, which
    selenium's ``staleness_of`` does not catch): both mean the page left."""
    try:
        html.is_enabled()
        return False
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" in str(e):
            return True
        raise


class Chromium:
    """One headless Chromium with a fresh profile, and what a person does
    with it on the IdP's pages."""

    def __init__(self, login: str = "alice") -> None:
        self.login = login
        self.profile = tempfile.mkdtemp(prefix="edge-auth-chromium-", dir=harness.run_dir())
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        # The performance log is the browser's own network trace: every
        # document request and response, redirects included.
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        service = Service(executable_path=CHROMEDRIVER, log_output=str(Path(self.profile) / "chromedriver.log"))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_page_load_timeout(STEP_WAIT)
        self.forms: list[str] = []

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- pages ----------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.driver.current_url

    def echo(self) -> dict:
        """The echo upstream's JSON as the page shows it."""
        pres = self.driver.find_elements(By.TAG_NAME, "pre")
        text = pres[0].text if pres else self.driver.find_element(By.TAG_NAME, "body").text
        try:
            return json.loads(text)
        except ValueError:
            raise AssertionError(f"not the echo upstream at {self.url}: {self.driver.page_source[:1500]}")

    def _find(self, css: str):
        try:
            return self.driver.find_element(By.CSS_SELECTOR, css)
        except NoSuchElementException:
            return None

    def _click_and_wait(self, element) -> None:
        html = self.driver.find_element(By.TAG_NAME, "html")
        element.click()
        WebDriverWait(self.driver, STEP_WAIT).until(lambda _: page_left(html))
        WebDriverWait(self.driver, STEP_WAIT).until(
            lambda d: d.execute_script("return document.readyState") == "complete")

    def idp_step(self, consent: str = "accept") -> str | None:
        """Fill in the IdP page on screen, if it is one; returns what was done."""
        login = self._find("input[name=login]")
        if login is not None:
            login.clear()
            login.send_keys(self.login)
            self._find("input[name=password]").send_keys("any password")
            self._click_and_wait(self._find("form button[type=submit], form input[type=submit]"))
            self.forms.append("login")
            return "login"
        if self._find("input[name=prompt][value=consent]") is not None:
            if consent == "abort":
                self._click_and_wait(self._find("a[href$='/abort']"))
                self.forms.append("abort")
                return "abort"
            self._click_and_wait(self._find("form button[type=submit], form input[type=submit]"))
            self.forms.append("consent")
            return "consent"
        yes = self._find("button[name=logout][value=yes]")
        if yes is not None:
            self._click_and_wait(yes)
            self.forms.append("logout")
            return "logout"
        return None

    def open(self, url: str, consent: str = "accept", until: str | None = None) -> None:
        """Open ``url`` and go through the IdP's pages until the browser is
        back on ``until`` (default: the origin of ``url``)."""
        origin = until or "{0.scheme}://{0.netloc}/".format(urlsplit(url))
        self.driver.get(url)
        self.finish(origin, consent)

    def finish(self, origin: str, consent: str = "accept") -> None:
        for _ in range(6):
            if self.url.startswith(origin):
                return
            if self.idp_step(consent) is None:
                break
        assert self.url.startswith(origin), (self.url, self.forms, self.driver.page_source[:1500])

    # -- what the browser sent and got --------------------------------------

    def drain_network(self) -> None:
        self.driver.get_log("performance")

    def documents(self) -> list[dict]:
        """Document requests since the last drain: url, and the status of
        each response (redirects are responses too)."""
        out: list[dict] = []
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            params = msg.get("params", {})
            if msg.get("method") == "Network.requestWillBeSent" and params.get("type") == "Document":
                if "redirectResponse" in params:  # the previous hop was a redirect
                    self._answer(out, params["requestId"], params["redirectResponse"]["status"])
                out.append({"url": params["request"]["url"], "status": None, "id": params["requestId"]})
            elif msg.get("method") == "Network.responseReceived" and params.get("type") == "Document":
                self._answer(out, params["requestId"], params["response"]["status"])
        return out

    @staticmethod
    def _answer(docs: list[dict], request_id: str, status: int) -> None:
        for d in reversed(docs):
            if d["id"] == request_id and d["status"] is None:
                d["status"] = status
                return

    def cookies(self) -> dict[str, dict]:
        return {c["name"]: c for c in self.driver.get_cookies()}


@pytest.fixture
def browsers():
    """``browsers(login)``: fresh Chromium instances, all quit at the end."""
    started: list[Chromium] = []

    def _new(login: str = "alice") -> Chromium:
        b = Chromium(login)
        started.append(b)
        return b

    yield _new
    for b in started:
        b.close()


# ---------------------------------------------------------------------------
# Gateways and IdP
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_deps() -> None:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.fail("chromium / chromium-driver missing: run `make browser-deps`", pytrace=False)


@pytest.fixture(scope="module")
def gateways(browser_deps, echo, wasm):
    taken: set[int] = set()
    idp_port = new_port(taken)
    main, big = Site("browser-main", new_port(taken)), Site("browser-big", new_port(taken))
    # The IdP gives every account a big claim with the profile scope: the
    # main gateway does not ask for it (small sessions), the big one does.
    with _idp(idp_port, "browser-sso", [main, big], env={"IDP_BIG_CLAIM_BYTES": str(BIG_CLAIM)}) as idp:
        try:
            for site, secret, cookie, scope in (
                (main, SECRET_A, MAIN_COOKIE, "openid email offline_access"),
                (big, SECRET_B, BIG_COOKIE, "openid email profile offline_access"),
            ):
                site.idp = idp
                site.start(sso_config(idp.issuer, secret, cookie_name=cookie, scope=scope), idp.port, echo.port, wasm)
                site.wait_sso_ready()
            yield {"main": main, "big": big}
        finally:
            main.stop()
            big.stop()


def session_parts(cookies: dict[str, dict], name: str) -> list[str]:
    return sorted(n for n in cookies if n == name or (n.startswith(name + "_") and n[len(name) + 1:].isdigit()))


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_sign_in_then_reload_stays_signed_in(gateways, browsers):
    site = gateways["main"]
    b = browsers("alice")
    b.open(site.url("/app/home?tab=1"))
    assert b.forms == ["login", "consent"], b.forms
    assert b.url == site.url("/app/home?tab=1")
    echo = b.echo()
    assert echo["path"] == "/app/home?tab=1"
    assert echo["headers"]["x-mse-consumer"] == "alice"
    id_token = echo["headers"]["authorization"].split(" ", 1)[1]
    assert jf.decode(id_token)[1]["sub"] == "alice"
    cookies = b.cookies()
    assert session_parts(cookies, MAIN_COOKIE) == [MAIN_COOKIE], sorted(cookies)
    assert cookies[MAIN_COOKIE]["httpOnly"] is True
    assert not any(n.startswith(MAIN_COOKIE + "_csrf_") for n in cookies), sorted(cookies)

    # Reload: one document request, answered 200 by the upstream, no
    # redirect (a loop would show as 302s to the IdP and back).
    b.drain_network()
    b.driver.refresh()
    docs = b.documents()
    assert [(d["url"], d["status"]) for d in docs] == [(site.url("/app/home?tab=1"), 200)], docs
    assert b.echo()["headers"]["x-mse-consumer"] == "alice"

    # Another page of the same site: no IdP either.
    b.drain_network()
    b.driver.get(site.url("/app/other"))
    assert [(d["url"], d["status"]) for d in b.documents()] == [(site.url("/app/other"), 200)]
    assert b.echo()["path"] == "/app/other"

    # Control: the same trace shows the redirect once the session is gone.
    b.driver.delete_cookie(MAIN_COOKIE)
    b.drain_network()
    b.driver.refresh()
    docs = b.documents()
    assert (docs[0]["url"], docs[0]["status"]) == (site.url("/app/other"), 302), docs
    assert b.url.startswith(site.idp.issuer + "/"), b.url


def test_two_tabs_sign_in_at_once(gateways, browsers):
    site = gateways["main"]
    b = browsers("bob")
    idp_origin = site.idp.issuer + "/"
    # Both tabs are sent to the IdP before either signs in: two logins in
    # flight in one browser, each with its own state and login cookie.
    b.driver.get(site.url("/app/tab-one"))
    assert b.url.startswith(idp_origin), b.url
    first = b.driver.current_window_handle
    b.driver.switch_to.new_window("tab")
    b.driver.get(site.url("/app/tab-two"))
    assert b.url.startswith(idp_origin), b.url
    second = b.driver.current_window_handle
    logins = [n for n in b.cookies() if n.startswith(MAIN_COOKIE + "_csrf_")]
    assert len(logins) == 2, sorted(b.cookies())

    b.driver.switch_to.window(first)
    b.finish(site.base)
    assert b.url == site.url("/app/tab-one") and b.echo()["headers"]["x-mse-consumer"] == "bob"
    b.driver.switch_to.window(second)
    b.finish(site.base)
    assert b.url == site.url("/app/tab-two") and b.echo()["headers"]["x-mse-consumer"] == "bob"
    # The first tab is still signed in after the second login.
    b.driver.switch_to.window(first)
    b.drain_network()
    b.driver.refresh()
    assert [d["status"] for d in b.documents()] == [200]
    assert b.echo()["path"] == "/app/tab-one"


def test_large_session_is_split_over_cookies(gateways, browsers):
    site = gateways["big"]
    b = browsers("judy")
    b.open(site.url("/app/big"))
    echo = b.echo()
    assert echo["headers"]["x-mse-consumer"] == "judy"
    claims = jf.decode(echo["headers"]["authorization"].split(" ", 1)[1])[1]
    assert len(claims.get("big_claim", "")) == BIG_CLAIM, sorted(claims)
    parts = session_parts(b.cookies(), BIG_COOKIE)
    assert len(parts) >= 2 and parts == [f"{BIG_COOKIE}_{i}" for i in range(len(parts))], parts
    # The browser sends them all back and the session reads as one.
    b.drain_network()
    b.driver.get(site.url("/app/big2"))
    assert [(d["url"], d["status"]) for d in b.documents()] == [(site.url("/app/big2"), 200)]
    assert b.echo()["headers"]["x-mse-consumer"] == "judy"
    # The plugin's cookies never reach the upstream.
    assert BIG_COOKIE not in (b.echo()["headers"].get("cookie") or "")


def test_sign_out_ends_the_session(gateways, browsers):
    site = gateways["main"]
    b = browsers("grace")
    b.open(site.url("/app/before"))
    assert MAIN_COOKIE in b.cookies()
    # Sign-out: the gateway clears its cookie, the IdP asks to confirm, and
    # sends the browser to the post-logout page (/bye, not protected).
    b.driver.get(site.url(SIGN_OUT))
    b.finish(site.url("/bye"))
    assert b.forms[-1] == "logout", b.forms
    assert urlsplit(b.url).path == "/bye" and b.echo()["path"].startswith("/bye")
    assert session_parts(b.cookies(), MAIN_COOKIE) == []
    # Signed out at the IdP too: the next protected page shows its login form.
    b.driver.get(site.url("/app/after"))
    assert b.url.startswith(site.idp.issuer + "/"), b.url
    assert b._find("input[name=login]") is not None, b.driver.page_source[:1000]


def test_sign_in_error_page(gateways, browsers):
    site = gateways["main"]
    b = browsers("frank")
    b.drain_network()
    # A person pressing "Cancel" on the IdP's consent page.
    b.open(site.url("/app/denied"), consent="abort")
    assert b.forms == ["login", "abort"], b.forms
    assert b.url.startswith(site.url(CALLBACK) + "?"), b.url
    callback = [d for d in b.documents() if d["url"].startswith(site.url(CALLBACK))]
    assert [d["status"] for d in callback] == [403], callback
    # Plain words, a way back and the request id; no technical text (the
    # reason, idp_error, is in the access log).
    text = b.driver.find_element(By.TAG_NAME, "body").text
    assert "Sign-in failed" in text and "Request ID:" in text, text
    assert "access_denied" not in text and "aborted" not in text, text
    link = b.driver.find_element(By.LINK_TEXT, "Sign in again")
    assert link.get_attribute("href") == site.url("/"), link.get_attribute("href")
    assert session_parts(b.cookies(), MAIN_COOKIE) == []

    shot = harness.run_dir() / SCREENSHOT
    b.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                             {"width": 720, "height": 200, "deviceScaleFactor": 1, "mobile": False})
    assert b.driver.save_screenshot(str(shot))
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    target = os.environ.get("EDGE_AUTH_SCREENSHOT_DIR")
    if target:
        dest = Path(target) if Path(target).is_absolute() else harness.REPO_ROOT / target
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dest / SCREENSHOT)
    # The README shows the committed screenshot.
    assert (harness.REPO_ROOT / "docs" / SCREENSHOT).is_file()
    assert f"docs/{SCREENSHOT}" in (harness.REPO_ROOT / "README.md").read_text()


def test_chromium_is_driven_headless(gateways, browsers):
    """Guard: the tests above ran in Chromium itself, not some other driver."""
    b = browsers()
    caps = b.driver.capabilities
    assert caps["browserName"] in ("chrome", "chromium"), caps
    assert "HeadlessChrome" in b.driver.execute_script("return navigator.userAgent")
