"""The aptr-connect SDK in Chromium across two origins: Apertur on the live server
(``http://localhost:<port>``) and partner pages on ``http://partner.localhost:<other port>`` (Chromium
resolves every ``*.localhost`` name to loopback).

The partner pages are either the demo partner site (examples/partner_site/app.py, with its strict CSP and
COOP ``same-origin-allow-popups``) or small static pages written per test, among them the seed document's
"Complete Example" copied as is. Every wait is bounded; every server started here is stopped in a finally.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client, override_settings
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect
from playwright.sync_api import Error as PlaywrightError

from apertur.oauth.models import AuthorizationCode, KeyMode
from apertur.oauth.services import CreatedApp, regenerate_public_key
from apertur.projects.models import Project
from apertur.testing import make_app, make_partner
from conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.helpers import log_in, log_in_form
from tests.test_partner_site import RunningSite, make_customer, partner_site

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT_MS = 10_000  # every explicit wait is bounded by this (the context default is 15 s)
SETTLE_MS = 1_500  # how long to keep listening for something that must not happen
REDIRECT_URI = "https://snapflow.example/callback"

# Reports CSP violations to the console, where ``watch_console`` collects them. Init scripts are injected
# by the browser, not by the page, so the page's own CSP does not block this one.
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});
"""


# --- static partner pages -------------------------------------------------------------------------------


@dataclass
class StaticSite:
    """Pages by path, on every host name; ``POST /api/apertur/connect`` bodies are recorded (the seed's
    example sends the code there) and answered ``{}``."""

    port: int
    pages: dict[str, str] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=dict)
    posted: list[dict[str, Any]] = field(default_factory=list)

    def url(self, host: str = "partner.localhost", path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"

    def origin(self, host: str = "partner.localhost") -> str:
        return f"http://{host}:{self.port}"


@contextmanager
def static_site(headers: dict[str, str] | None = None) -> Iterator[StaticSite]:
    """``headers`` go with every page (not with ``scripts``). Any free port, or ``APERTUR_E2E_SITE_PORT`` on a
    shared machine where each run has ports of its own."""
    port = int(os.environ.get("APERTUR_E2E_SITE_PORT") or 0)
    site = StaticSite(port=port)

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            page = site.pages.get(path)
            if path in site.scripts:
                self._send(200, site.scripts[path].encode(), "text/javascript; charset=utf-8")
            elif page is None:
                self._send(404, b"not found", "text/plain")
            else:
                self._send(200, page.encode(), "text/html; charset=utf-8", headers)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if urlsplit(self.path).path != "/api/apertur/connect":
                self._send(404, b"not found", "text/plain")
                return
            site.posted.append({"body": json.loads(body or b"{}"), "content_type": self.headers["Content-Type"]})
            self._send(200, b"{}", "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="static-partner-site", daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# The seed document's "Complete Example", verbatim. Tests point its three placeholders (the CDN script,
# the public key, the redirect URI) at the live server and a real app.
SEED_COMPLETE_EXAMPLE = """<!DOCTYPE html>
<html>
<head>
<title>Connect with Apertur</title>
<script src="https://cdn.apertur.ca/sdk/aptr-connect.js"></script>
</head>
<body>
<button id="connect-btn">Connect your Apertur account</button>
<script>
AptrConnect.init({ publicKey: "aptr_pk_your_key_here" });
document.getElementById("connect-btn").addEventListener("click", () => {
AptrConnect.authorize({
scopes: ["upload:create", "project:read"],
redirectUri: "https://your-app.com/callback",
onSuccess: (result) => {
// Send the code to your backend
fetch("/api/apertur/connect", {
method: "POST",
headers: { "Content-Type": "application/json" },
body: JSON.stringify({ code: result.code }),
});
},
onError: (err) => {
alert("Connection failed: " + err.message);
},
});
});
</script>
</body>
</html>"""


def seed_example(base: str, public_key: str, redirect_uri: str) -> str:
    page = SEED_COMPLETE_EXAMPLE
    for placeholder, value in [
        ("https://cdn.apertur.ca/sdk/aptr-connect.js", f"{base}/sdk/aptr-connect.js"),
        ("aptr_pk_your_key_here", public_key),
        ("https://your-app.com/callback", redirect_uri),
    ]:
        assert page.count(placeholder) == 1
        page = page.replace(placeholder, value)
    return page


# A page that records what the SDK reports, through the callbacks and through the Promise. With ?auto it
# also calls authorize() from a timer after load, outside any user gesture.
SDK_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>SDK page</title></head>
<body>
<button id="connect" type="button">Connect</button>
<script src="BASE/sdk/aptr-connect.js"></script>
<script>
  window.__results = [];
  window.__promise = [];
  AptrConnect.init({ publicKey: PUBLIC_KEY });
  function report(result) {
    window.__results.push(result);
    console.log("aptr-result " + JSON.stringify(result));
  }
  function go() {
    AptrConnect.authorize({
      scopes: ["project:read"],
      redirectUri: REDIRECT_URI,
      onSuccess: function (r) { report({ code: r.code, state: r.state }); },
      onError: function (e) { report({ error: e.code, message: e.message }); },
    }).then(
      function (r) { window.__promise.push({ code: r.code }); },
      function (e) { window.__promise.push({ error: e.code }); }
    );
  }
  document.getElementById("connect").addEventListener("click", go);
  if (location.search.indexOf("auto") >= 0) {
    window.addEventListener("load", function () { setTimeout(go, 200); });
  }
</script>
</body>
</html>
"""


def sdk_page(base: str, public_key: str, redirect_uri: str = REDIRECT_URI) -> str:
    return (
        SDK_PAGE.replace("BASE", base)
        .replace("PUBLIC_KEY", json.dumps(public_key))
        .replace("REDIRECT_URI", json.dumps(redirect_uri))
    )


# --- helpers --------------------------------------------------------------------------------------------


def expect_consent(popup: Page, app_name: str) -> None:
    expect(popup.get_by_role("heading", name=f"{app_name} wants to access your Apertur project")).to_be_visible()
    expect(popup.get_by_role("button", name="Allow")).to_be_visible()


def open_popup(page: Page, button: str) -> Page:
    with page.expect_popup(timeout=WAIT_MS) as info:
        page.get_by_role("button", name=button).click()
    popup = info.value
    if not popup.is_closed():
        try:
            popup.wait_for_load_state("domcontentloaded", timeout=WAIT_MS)
        except PlaywrightError:
            assert popup.is_closed()  # an error page posts to the opener and closes itself at once
    return popup


def wait_closed(popup: Page) -> None:
    if not popup.is_closed():
        popup.wait_for_event("close", timeout=WAIT_MS)


def allow(popup: Page, project: str | None = None) -> None:
    if project:
        popup.get_by_label("Project").select_option(label=project)
    with popup.expect_event("close", timeout=WAIT_MS):
        popup.get_by_role("button", name="Allow").click()


def watch_console(page: Page) -> list[str]:
    """Console errors of the page (CSP violations included, see CSP_REPORTER), across navigations."""
    errors: list[str] = []
    page.add_init_script(CSP_REPORTER)

    def record(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", record)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    return errors


def csp_errors(errors: list[str]) -> list[str]:
    return [e for e in errors if "CSP violation" in e or "Content Security Policy" in e]


def results(page: Page, count: int = 1) -> list[dict[str, Any]]:
    # Polled on a timer: requestAnimationFrame (the default) may not run in a page whose popup was blocked.
    page.wait_for_function(f"window.__results.length >= {count}", timeout=WAIT_MS, polling=100)
    page.wait_for_timeout(300)  # a second, unexpected report would arrive right behind the first
    found: list[dict[str, Any]] = page.evaluate("window.__results")
    return found


def exchange(created: CreatedApp, code: str, redirect_uri: str) -> dict[str, Any]:
    response = Client().post(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "client_id": created.app.client_id,
            "client_secret": created.client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    body: dict[str, Any] = response.json()
    return body


def api_status(token: str) -> int:
    return Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


@dataclass
class Partner:
    """The demo partner site on partner.localhost, configured with its own OAuth app, and a customer
    with two projects (Wedding photos: Pro, Team events: Free)."""

    site: RunningSite
    created: CreatedApp
    user: Any
    projects: list[Project]
    base: str

    @property
    def home(self) -> str:
        return self.site.url + "/"


@contextmanager
def demo_partner_site(
    live_server: Any, *, allowed_domains: list[str] | None = None, public_key: str | None = None
) -> Iterator[Partner]:
    user, wedding, team = make_customer()
    # Apertur is at the live server: its issuer (RFC 9207 ``iss``, which the site's callback checks) says so.
    with override_settings(APERTUR_BASE_URL=live_server.url), partner_site() as site:
        created = make_app(
            make_partner(),
            name="Demo Partner Site",
            redirect_uris=[site.callback],
            allowed_domains=["*.localhost"] if allowed_domains is None else allowed_domains,
        )
        site.configure(live_server.url, created, public_key=public_key)
        yield Partner(site, created, user, [wedding, team], live_server.url)


def expect_connected(page: Page, name: str, plan: str) -> None:
    expect(page.locator("#project-name")).to_have_text(name, timeout=WAIT_MS)
    expect(page.locator("#project-plan")).to_have_text(plan)
    expect(page.get_by_role("button", name="Disconnect")).to_be_visible()


def expect_sdk_error(page: Page, code: str) -> None:
    error = page.get_by_role("alert")
    expect(error).to_be_visible(timeout=WAIT_MS)
    expect(error).to_contain_text(f"Connection failed: {code}: ")


# --- (a) + (g): the demo partner site end to end, under its strict CSP and COOP ----------------------------


def test_partner_site_connects_through_the_popup_then_disconnects(page: Page, live_server: Any) -> None:
    errors = watch_console(page)
    with demo_partner_site(live_server) as partner:
        response = page.goto(partner.home)
        assert response is not None and response.status == 200
        expect(page.get_by_role("heading", name="Connect your Apertur account")).to_be_visible()

        # Not logged in to Apertur: the popup asks to log in, then shows the consent page.
        popup = open_popup(page, "Connect your Apertur account")
        popup.wait_for_url(re.compile(r"/login\?next="), timeout=WAIT_MS)
        log_in_form(popup, partner.user.email)
        expect_consent(popup, "Demo Partner Site")
        allow(popup, project="Team events")

        # onSuccess posted the code to the site, whose server exchanged it and now shows the project.
        expect_connected(page, "Team events", "Free")
        connection = partner.site.connection()
        assert connection is not None
        assert connection["project"]["id"] == partner.projects[1].public_id
        assert api_status(connection["access_token"]) == 200
        html = page.content()
        assert connection["access_token"] not in html and connection["refresh_token"] not in html
        assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly

        page.get_by_role("button", name="Disconnect").click()
        expect(page.get_by_role("heading", name="Connect your Apertur account")).to_be_visible(timeout=WAIT_MS)
        assert partner.site.connection() is None
        assert api_status(connection["access_token"]) == 401

    assert csp_errors(errors) == [], errors
    assert errors == [], errors


def test_a_new_user_signs_up_from_the_popup_header_and_connects(page: Page, live_server: Any) -> None:
    """The popup's login page offers the header's Sign up: that page must keep the popup's opener and
    signing up must come back to the authorization request (before, it severed the popup, the SDK
    reported user_denied at once, and the new user ended on /projects/)."""
    base = live_server.url
    created = make_app(make_partner(), name="Snapflow", allowed_domains=["*.localhost"])
    with static_site() as site:
        site.pages["/"] = sdk_page(base, created.public_key)
        page.goto(site.url())
        popup = open_popup(page, "Connect")
        popup.wait_for_url(re.compile(r"/login\?next="), timeout=WAIT_MS)

        with popup.expect_response(re.compile(r"/signup\?next=")) as signup_page:
            popup.get_by_role("banner").get_by_role("link", name="Sign up", exact=True).click()
        assert signup_page.value.headers["cross-origin-opener-policy"] == "unsafe-none"
        expect(popup.get_by_role("heading", name="Create your Apertur account")).to_be_visible()
        assert popup.evaluate("window.opener !== null") is True
        page.wait_for_timeout(SETTLE_MS)
        assert page.evaluate("window.__results") == [], "the SDK gave up while the user was signing up"

        popup.get_by_label("Email").fill("new-customer@example.com")
        popup.get_by_label("Password").fill("correct-horse-battery")
        popup.get_by_role("button", name="Sign up").click()
        expect_consent(popup, "Snapflow")
        allow(popup)

        (reported,) = results(page)
        assert "error" not in reported, reported
        assert reported["code"].startswith("oac_")
        assert page.evaluate("window.__promise") == [{"code": reported["code"]}]

    token = exchange(created, reported["code"], REDIRECT_URI)
    assert token["project_id"] == Project.objects.get(owner__email="new-customer@example.com").public_id


def test_strict_csp_and_coop_do_not_get_in_the_sdks_way(page: Page, live_server: Any) -> None:
    errors = watch_console(page)
    with demo_partner_site(live_server) as partner:
        log_in(page, live_server.url, partner.user.email)
        response = page.goto(partner.home)
        assert response is not None
        headers = response.headers
        csp = headers["content-security-policy"]
        assert f"script-src 'self' {live_server.url};" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["cross-origin-opener-policy"] == "same-origin-allow-popups"

        # The SDK from Apertur's origin loaded and was initialised by the page's own script file...
        assert page.evaluate("typeof AptrConnect.authorize") == "function"
        assert errors == [], errors
        # ...while the CSP really is enforced: an inline script is refused (and reported).
        page.evaluate(
            """() => { const s = document.createElement("script");
                       s.textContent = "window.__inline = true"; document.body.appendChild(s); }"""
        )
        page.wait_for_timeout(300)
        assert page.evaluate("window.__inline") is None
        assert any("script-src" in e for e in csp_errors(errors)), errors
        errors.clear()

        # Under COOP same-origin-allow-popups the popup keeps window.opener, so the result comes back.
        popup = open_popup(page, "Connect your Apertur account")
        expect_consent(popup, "Demo Partner Site")
        assert popup.evaluate("window.opener !== null") is True
        allow(popup, project="Wedding photos")
        expect_connected(page, "Wedding photos", "Pro")
    assert errors == [], errors


TRUSTED_TYPES_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Trusted Types</title></head>
<body data-key="PUBLIC_KEY">
<div id="drop-in"></div>
<aptr-connect-button public-key="PUBLIC_KEY" scopes="project:read" label="Element"></aptr-connect-button>
<script src="BASE/sdk/aptr-connect.js"></script>
<script src="/connect.js"></script>
</body>
</html>
"""

TRUSTED_TYPES_SCRIPT = """
AptrConnect.init({ publicKey: document.body.dataset.key });
AptrConnect.button(document.getElementById("drop-in"), { label: "Drop-in", scopes: ["project:read"] });
"""


def test_the_buttons_render_under_trusted_types(page: Page, live_server: Any) -> None:
    """A strict CSP that also enforces Trusted Types (``require-trusted-types-for 'script'``) refuses every string
    written to ``innerHTML``: the drop-in button and ``<aptr-connect-button>`` must render without one."""
    base = live_server.url
    created = make_app(make_partner(), name="Snapflow", allowed_domains=["*.localhost"])
    csp = (
        f"default-src 'self'; script-src 'self' {base}; style-src 'self'; object-src 'none'; base-uri 'none'; "
        "require-trusted-types-for 'script'; trusted-types 'none'"
    )
    errors = watch_console(page)
    with static_site(headers={"Content-Security-Policy": csp}) as site:
        site.pages["/"] = TRUSTED_TYPES_PAGE.replace("BASE", base).replace("PUBLIC_KEY", created.public_key)
        site.scripts["/connect.js"] = TRUSTED_TYPES_SCRIPT
        site.pages["/favicon.ico"] = ""  # its 404 would be the one console error
        page.goto(site.url())
        assert page.evaluate("typeof AptrConnect") == "object", errors
        for name in ("Drop-in", "Element"):
            expect(page.get_by_role("button", name=name)).to_be_visible(timeout=WAIT_MS)
        assert errors == [], errors
        for name in ("Drop-in", "Element"):
            popup = open_popup(page, name)
            assert popup.url.startswith(f"{base}/"), popup.url
            popup.close()
            expect(page.get_by_role("button", name=name)).to_have_attribute("aria-busy", "false", timeout=WAIT_MS)
    assert errors == [], errors


# --- (b) the seed's Complete Example, copied into a page ------------------------------------------------


def test_the_seed_complete_example_connects_a_user(page: Page, live_server: Any) -> None:
    base = live_server.url
    user, wedding, _ = make_customer()
    with static_site() as site:
        redirect_uri = site.url(path="/callback")
        created = make_app(
            make_partner(), name="Snapflow", redirect_uris=[redirect_uri], allowed_domains=["*.localhost"]
        )
        site.pages["/"] = seed_example(base, created.public_key, redirect_uri)
        log_in(page, base, user.email)
        page.goto(site.url())

        popup = open_popup(page, "Connect your Apertur account")
        expect_consent(popup, "Snapflow")
        with page.expect_request(re.compile(r"/api/apertur/connect$"), timeout=WAIT_MS) as request_info:
            allow(popup, project="Wedding photos")
        request_info.value.response()  # the backend answered
        assert len(site.posted) == 1, site.posted
        (posted,) = site.posted
        assert posted["content_type"] == "application/json"
        code = posted["body"]["code"]
        assert set(posted["body"]) == {"code"} and code.startswith("oac_")

    token = exchange(created, code, redirect_uri)
    assert token["project_id"] == wedding.public_id
    assert token["plan"]["name"] == "Pro"
    assert set(token["scopes"]) == {"plan:read", "upload:create", "project:read"}
    assert token["livemode"] is True


# --- (c) each error of the seed's table, from its real cause ---------------------------------------------


@pytest.mark.parametrize("key", ["unknown", "regenerated"])
def test_invalid_public_key(page: Page, live_server: Any, key: str) -> None:
    with demo_partner_site(live_server) as partner:
        if key == "unknown":
            public_key = "aptr_live_pk_" + secrets.token_hex(16)
        else:
            public_key = partner.created.public_key
            regenerate_public_key(app=partner.created.app, mode=KeyMode.LIVE)
        partner.site.configure(live_server.url, partner.created, public_key=public_key)
        page.goto(partner.home)
        popup = open_popup(page, "Connect your Apertur account")
        wait_closed(popup)  # the error page posts to the opener and closes
        expect_sdk_error(page, "invalid_public_key")
    assert not AuthorizationCode.objects.exists()


def test_origin_not_allowed(page: Page, live_server: Any) -> None:
    with demo_partner_site(live_server, allowed_domains=["app.example.com"]) as partner:
        page.goto(partner.home)
        popup = open_popup(page, "Connect your Apertur account")
        wait_closed(popup)
        expect_sdk_error(page, "origin_not_allowed")
        expect(page.get_by_role("alert")).to_contain_text("allowed domains")


def test_user_denied_by_clicking_deny(page: Page, live_server: Any) -> None:
    with demo_partner_site(live_server) as partner:
        log_in(page, live_server.url, partner.user.email)
        page.goto(partner.home)
        popup = open_popup(page, "Connect your Apertur account")
        expect_consent(popup, "Demo Partner Site")
        with popup.expect_event("close", timeout=WAIT_MS):
            popup.get_by_role("button", name="Deny").click()
        expect_sdk_error(page, "user_denied")
        assert partner.site.connection() is None
    assert not AuthorizationCode.objects.exists()


def test_user_denied_by_closing_the_popup(page: Page, live_server: Any) -> None:
    with demo_partner_site(live_server) as partner:
        log_in(page, live_server.url, partner.user.email)
        page.goto(partner.home)
        popup = open_popup(page, "Connect your Apertur account")
        expect_consent(popup, "Demo Partner Site")
        popup.close()
        expect_sdk_error(page, "user_denied")
        assert partner.site.connection() is None
        # The user can try again: a new popup opens.
        popup = open_popup(page, "Connect your Apertur account")
        expect_consent(popup, "Demo Partner Site")
        allow(popup)
        expect_connected(page, "Wedding photos", "Pro")


def test_popup_blocked_outside_a_user_gesture(browser: Any, live_server: Any) -> None:
    """Playwright starts Chromium with --disable-popup-blocking; this test needs the blocker, so it
    launches its own Chromium without that switch."""
    created = make_app(make_partner(), name="Snapflow", allowed_domains=["*.localhost"])
    blocking = browser.browser_type.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, ignore_default_args=["--disable-popup-blocking"]
    )
    try:
        context: BrowserContext = blocking.new_context()
        context.set_default_timeout(15_000)
        page = context.new_page()
        with static_site() as site:
            site.pages["/"] = sdk_page(live_server.url, created.public_key)
            # authorize() from a timer after load: no user gesture. Nothing may be evaluated in the page
            # before it runs: Playwright's evaluate() counts as a user gesture, and the popup would open.
            with page.expect_console_message(lambda m: m.text.startswith("aptr-result "), timeout=WAIT_MS) as msg:
                page.goto(site.url(path="/?auto"))
            reported = json.loads(msg.value.text.removeprefix("aptr-result "))
            assert reported["error"] == "popup_blocked", reported
            assert "click" in reported["message"]
            page.wait_for_timeout(300)
            assert page.evaluate("window.__results") == [reported]
            assert page.evaluate("window.__promise") == [{"error": "popup_blocked"}]
            assert context.pages == [page]

            # The same call from a click opens the popup: it was the missing gesture, nothing else.
            popup = open_popup(page, "Connect")
            assert "/oauth/authorize" in popup.url or "/login" in popup.url
    finally:
        blocking.close()


# --- (d) forged postMessages are ignored ------------------------------------------------------------------


FORGE = """([message, target]) => { (window.opener || window).postMessage(message, target); }"""


def test_forged_messages_are_ignored(page: Page, live_server: Any) -> None:
    base = live_server.url
    with demo_partner_site(live_server) as partner, static_site() as evil:
        evil.pages["/"] = "<!doctype html><title>Evil</title><h1>Evil</h1>"
        posts: list[str] = []
        page.on(
            "request", lambda r: posts.append(r.post_data or "") if r.url.endswith("/api/apertur/connect") else None
        )
        log_in(page, base, partner.user.email)
        page.goto(partner.home)
        popup = open_popup(page, "Connect your Apertur account")
        expect_consent(popup, "Demo Partner Site")
        (state,) = parse_qs(urlsplit(popup.url).query)["state"]
        assert state == page.locator("#app").get_attribute("data-state")
        forged = {"source": "aptr-connect", "code": "oac_forged", "state": state}

        # 1. The partner page itself (same origin, not the popup).
        page.evaluate(FORGE, [forged, "*"])

        # 2. Other windows: on partner.localhost, on evil.localhost, and on Apertur's own origin (so only
        #    the event.source check stands between them and onSuccess).
        forgers = [
            partner.site.url + "/static/site.css",
            evil.url("evil.localhost"),
            f"{base}/oauth/authorize?client_id=aptr_ci_unknown",  # an Apertur page that keeps window.opener
        ]
        for i, url in enumerate(forgers):
            with page.context.expect_page(timeout=WAIT_MS) as info:
                page.evaluate("([url, name]) => { window.open(url, name); }", [url, f"forger{i}"])
            forger = info.value
            forger.wait_for_load_state("domcontentloaded", timeout=WAIT_MS)
            assert forger.evaluate("window.opener !== null") is True, url
            forger.evaluate(FORGE, [forged, partner.site.url])
            forger.evaluate(FORGE, [{**forged, "code": None, "error": "access_denied"}, partner.site.url])
            forger.close()

        # 3. Apertur's real answer page, opened by someone else with the real state: an error from the
        #    right origin, but not from this call's popup.
        with page.context.expect_page(timeout=WAIT_MS) as info:
            page.evaluate(
                "(url) => { window.open(url, 'forger-apertur'); }",
                f"{base}/oauth/authorize?public_key=aptr_live_pk_{secrets.token_hex(8)}"
                f"&origin={partner.site.url}&state={state}",
            )
        wait_closed(info.value)

        page.wait_for_timeout(SETTLE_MS)
        assert posts == [], "onSuccess ran with a forged message"
        expect(page.get_by_role("alert")).to_be_hidden()
        assert not popup.is_closed()

        # The real flow still completes.
        allow(popup, project="Team events")
        expect_connected(page, "Team events", "Free")
        assert len(posts) == 1, posts
        code = json.loads(posts[0])["code"]
        assert code.startswith("oac_") and code != "oac_forged"


# --- (e) the seed's allowed-domain table, through the SDK -------------------------------------------------


DOMAIN_CASES = [
    # (allowed domains, page host, allowed?)
    (["x.localhost"], "x.localhost", True),
    (["x.localhost"], "a.x.localhost", False),
    (["*.x.localhost"], "a.x.localhost", True),
    (["*.x.localhost"], "b.a.x.localhost", True),
    (["*.x.localhost"], "x.localhost", False),
    (["*.localhost"], "app.localhost", True),
    (["*.localhost"], "localhost", False),
    ([], "127.0.0.1", True),
    ([], "anything.localhost", True),
]


@pytest.mark.parametrize(
    ("allowed", "host", "ok"), DOMAIN_CASES, ids=[f"{a or 'empty'}-{h}-{ok}" for a, h, ok in DOMAIN_CASES]
)
def test_allowed_domains(page: Page, live_server: Any, allowed: list[str], host: str, ok: bool) -> None:
    base = live_server.url
    user, _, _ = make_customer()
    created = make_app(make_partner(), name="Snapflow", allowed_domains=allowed)
    with static_site() as site:
        site.pages["/"] = sdk_page(base, created.public_key)
        if ok:
            log_in(page, base, user.email)
        page.goto(site.url(host))
        popup = open_popup(page, "Connect")
        if ok:
            expect_consent(popup, "Snapflow")
            allow(popup, project="Wedding photos")
            (reported,) = results(page)
            assert "error" not in reported, reported
            assert reported["code"].startswith("oac_")
            exchange(created, reported["code"], REDIRECT_URI)
        else:
            wait_closed(popup)
            (reported,) = results(page)
            assert reported["error"] == "origin_not_allowed", reported
            assert page.evaluate("window.__promise") == [{"error": "origin_not_allowed"}]


# --- (f) redirect mode ------------------------------------------------------------------------------------


def test_redirect_mode_ends_at_the_partner_callback(page: Page, live_server: Any) -> None:
    errors = watch_console(page)
    with demo_partner_site(live_server) as partner:
        callbacks: list[str] = []
        page.on("request", lambda r: callbacks.append(r.url) if "/callback?" in r.url else None)
        page.goto(partner.home)
        state = page.locator("#app").get_attribute("data-state")
        page.get_by_role("button", name="Connect in this window instead").click()

        # The same window goes to Apertur: log in, consent, Allow.
        page.wait_for_url(re.compile(r"/login\?next="), timeout=WAIT_MS)
        assert "ux_mode=redirect" in parse_qs(urlsplit(page.url).query)["next"][0]
        log_in_form(page, partner.user.email)
        expect_consent(page, "Demo Partner Site")
        page.get_by_label("Project").select_option(label="Team events")
        page.get_by_role("button", name="Allow").click()

        # Back on the partner's /callback with code and state, which the site checks and exchanges.
        expect_connected(page, "Team events", "Free")
        assert page.url == partner.home
        assert len(callbacks) == 1, callbacks
        query = parse_qs(urlsplit(callbacks[0]).query)
        assert callbacks[0].startswith(partner.site.callback + "?")
        assert query["state"] == [state]
        assert query["code"][0].startswith("oac_")
    assert csp_errors(errors) == [], errors


@pytest.mark.parametrize("error", ["invalid_public_key", "origin_not_allowed"])
def test_redirect_mode_errors_are_shown_to_the_user(page: Page, live_server: Any, error: str) -> None:
    """In redirect mode there is no opener to post an error to: the user must see it, on an Apertur error
    page or back at the partner's callback, not a page that waits for a popup that does not exist."""
    unknown_key = "aptr_live_pk_" + secrets.token_hex(16) if error == "invalid_public_key" else None
    allowed = ["app.example.com"] if error == "origin_not_allowed" else None
    with demo_partner_site(live_server, allowed_domains=allowed, public_key=unknown_key) as partner:
        page.goto(partner.home)
        page.get_by_role("button", name="Connect in this window instead").click()
        page.wait_for_url(re.compile(r"/oauth/authorize\?|/callback\?"), timeout=WAIT_MS)
        page.wait_for_load_state("load", timeout=WAIT_MS)
        body = page.locator("body")
        expect(body).to_contain_text(error, timeout=WAIT_MS)
        expect(body).not_to_contain_text("Returning to the application")


def test_a_rate_limited_popup_is_reported_as_server_error(
    page: Page, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too many authorization requests from one address: the partner's page is told ``server_error`` with a
    message that says so, never ``user_denied`` (the user cancelled), and the popup does not stay on a JSON body."""
    from apertur.core.ratelimit import Limit
    from apertur.oauth import limits

    monkeypatch.setattr(limits, "AUTHORIZE_PER_IP", Limit(f"t-e2e-authorize-{secrets.token_hex(4)}", 1, 24 * 60 * 60))
    created = make_app(make_partner(), name="Snapflow", allowed_domains=["*.localhost"])
    with static_site() as site:
        site.pages["/"] = sdk_page(live_server.url, created.public_key)
        page.goto(site.url())
        first = open_popup(page, "Connect")  # the one request allowed: the login page
        assert "/login" in first.url
        first.close()
        assert results(page)[0]["error"] == "user_denied"
        second = open_popup(page, "Connect")
        wait_closed(second)  # the answer page posts the error and closes
        found = results(page, 2)
        assert found[1]["error"] == "server_error", found
        assert "Too many requests" in found[1]["message"]
        assert page.evaluate("window.__promise")[1] == {"error": "server_error"}


# --- COOP: why the partner page must not use same-origin ----------------------------------------------------


def test_coop_same_origin_severs_the_popup(page: Page, live_server: Any) -> None:
    """The requirement docs/sdk.md states: with ``Cross-Origin-Opener-Policy: same-origin`` on the partner
    page, the browser cuts the popup off from its opener, so the SDK reports user_denied at once while the
    consent page is still open, and the result could never come back."""
    with demo_partner_site(live_server) as partner:
        app = partner.site.app
        strict = app.security_headers
        app.security_headers = lambda: [
            (k, "same-origin" if k == "Cross-Origin-Opener-Policy" else v) for k, v in strict()
        ]
        log_in(page, live_server.url, partner.user.email)
        page.goto(partner.home)
        with page.context.expect_page(timeout=WAIT_MS) as info:
            page.get_by_role("button", name="Connect your Apertur account").click()
        popup = info.value
        expect_consent(popup, "Demo Partner Site")
        expect_sdk_error(page, "user_denied")
        assert not popup.is_closed()
        assert popup.evaluate("window.opener") is None
