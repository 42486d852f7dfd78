"""The OAuth consent screen in Chromium, against a live server: the redirect flow (login, project
chooser, Allow/Deny back to a registered loopback callback), the aptr-connect popup flow across two real
origins (``postMessage`` to ``window.opener`` with the target origin pinned), and framing protection.

The partner's side is a tiny static HTTP server started per test on 127.0.0.1; Chromium resolves every
``*.localhost`` name to loopback, so ``http://partner.localhost:<port>/`` is a second origin distinct from
the live server's ``http://localhost:<port>``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from apertur.oauth import scopes as scope_registry
from apertur.oauth.models import AuthorizationCode
from apertur.oauth.services import CreatedApp
from apertur.projects.models import Project
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import make_app, make_partner, make_user
from tests.e2e.helpers import log_in, log_in_form

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WAIT_MS = 10_000  # every explicit wait below is bounded by this (the context default is 15 s)
SETTLE_MS = 1_000  # how long to keep listening for a message that must not arrive
REQUESTED_SCOPES = "project:read upload:create"


# --- the partner's side: a static site on a second origin --------------------------------------------


class _PartnerHandler(SimpleHTTPRequestHandler):
    """Serves the generated files; ``/callback`` (any query) is the OAuth redirect URI's landing page."""

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/callback":
            body = b"<!doctype html><title>Callback</title><h1>Partner callback</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PartnerSite:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port

    def url(self, host: str = "partner.localhost", path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"

    def origin(self, host: str = "partner.localhost") -> str:
        return f"http://{host}:{self.port}"

    @property
    def callback(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    def write(self, name: str, html: str) -> None:
        (self.root / name).write_text(html, encoding="utf-8")


@contextmanager
def partner_site(tmp_path: Path) -> Iterator[PartnerSite]:
    root = tmp_path / "partner-site"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_PartnerHandler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="partner-site", daemon=True)
    thread.start()
    try:
        yield PartnerSite(root, server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


CONNECT_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Partner</title></head>
<body>
<h1>Partner app</h1>
<button id="connect" type="button">Connect Apertur</button>
<script>
  window.__results = [];
  window.__opened = null;
  var popup = null;
  document.getElementById("connect").addEventListener("click", function () {
    popup = window.open(AUTHORIZE_URL, "aptr", "width=500,height=700");
    window.__opened = popup !== null;
  });
  window.addEventListener("message", function (event) {
    var fromPopup = popup !== null && event.source === popup;
    window.__results.push({origin: event.origin, data: event.data, fromPopup: fromPopup});
  });
</script>
</body>
</html>
"""


def connect_page(authorize_url: str) -> str:
    return CONNECT_PAGE.replace("AUTHORIZE_URL", json.dumps(authorize_url))


# --- Apertur's side ----------------------------------------------------------------------------------


def make_owner(email: str, *project_names: str) -> tuple[Any, list[Project]]:
    user = make_user(email)
    projects = [create_project(owner=user, name=name, plan=plan_by_name("Pro")) for name in project_names]
    return user, projects


def standard_authorize_url(base: str, created: CreatedApp, redirect_uri: str, state: str) -> str:
    query = {
        "response_type": "code",
        "client_id": created.app.client_id,
        "redirect_uri": redirect_uri,
        "scope": REQUESTED_SCOPES,
        "state": state,
    }
    return f"{base}/oauth/authorize?{urlencode(query)}"


def public_key_authorize_url(base: str, public_key: str, origin: str, redirect_uri: str, state: str) -> str:
    query = {
        "public_key": public_key,
        "origin": origin,
        "scope": "project:read",
        "redirect_uri": redirect_uri,
        "state": state,
    }
    return f"{base}/oauth/authorize?{urlencode(query)}"


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


def expect_consent(page: Page, app_name: str) -> None:
    expect(page.get_by_role("heading", name=f"{app_name} wants to access your Apertur project")).to_be_visible()
    expect(page.get_by_role("button", name="Allow")).to_be_visible()
    expect(page.get_by_role("button", name="Deny")).to_be_visible()


def click_and_wait_for_callback(page: Page, button: str, callback: str) -> None:
    """Submit the consent form and wait for the browser to land on the client's redirect URI; on a
    timeout, fail with what Chromium said (a CSP violation, for instance) instead of a bare timeout."""
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.get_by_role("button", name=button).click()
    try:
        page.wait_for_url(re.compile(re.escape(callback) + r"\?"), timeout=WAIT_MS)
    except PlaywrightTimeoutError:
        pytest.fail(
            f"after clicking {button!r} the browser never reached {callback}; it is still on {page.url}. "
            f"Console: {console}"
        )


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def wait_for_messages(page: Page, count: int) -> list[dict[str, Any]]:
    page.wait_for_function(f"window.__results.length >= {count}", timeout=WAIT_MS)
    page.wait_for_timeout(SETTLE_MS)  # a second (unexpected) message would arrive right behind the first
    results: list[dict[str, Any]] = page.evaluate("window.__results")
    return results


def wait_for_popup_closed(page: Page) -> None:
    """The popup page calls window.close() after posting; the opener sees it through ``popup.closed``."""
    page.wait_for_function("window.popup !== null && window.popup.closed", timeout=WAIT_MS)


def open_popup(page: Page) -> Page:
    with page.expect_popup(timeout=WAIT_MS) as popup_info:
        page.get_by_role("button", name="Connect Apertur").click()
    popup = popup_info.value
    assert page.evaluate("window.__opened") is True
    return popup


# --- 1-2. the redirect flow ----------------------------------------------------------------------------


def test_redirect_flow_login_choose_project_allow_then_exchange(page: Page, live_server: Any, tmp_path: Path) -> None:
    base = live_server.url
    user, (first, second) = make_owner("owner@guests.example", "Summer wedding", "Corporate gala")
    with partner_site(tmp_path) as site:
        created = make_app(make_partner(), name="Snapflow", redirect_uris=[site.callback])
        state = secrets.token_urlsafe(16)
        url = standard_authorize_url(base, created, site.callback, state)

        page.goto(url)
        # Not logged in: the login page, which remembers where to come back to.
        page.wait_for_url(re.compile(r"/login\?next="), timeout=WAIT_MS)
        assert query_of(page.url)["next"] == [url.removeprefix(base)]
        log_in_form(page, user.email)

        # Back on the authorize URL: the consent page.
        page.wait_for_url(re.compile(r"/oauth/authorize\?"), timeout=WAIT_MS)
        expect_consent(page, "Snapflow")
        expect(page.get_by_text("Snapflow Inc.")).to_be_visible()
        for name in scope_registry.normalize(REQUESTED_SCOPES):
            expect(page.get_by_text(scope_registry.SCOPES[name], exact=True)).to_be_visible()
        # plan:read is always granted, so always shown, even though it was not asked for.
        expect(page.get_by_text("See which Apertur plan the project is on and its limits")).to_be_visible()
        project_select = page.get_by_label("Project")
        expect(project_select.locator("option")).to_have_text(["Summer wedding", "Corporate gala"])
        project_select.select_option(label="Corporate gala")

        click_and_wait_for_callback(page, "Allow", site.callback)
        expect(page.get_by_role("heading", name="Partner callback")).to_be_visible()
        query = query_of(page.url)
        assert query["state"] == [state]
        assert "error" not in query
        (code,) = query["code"]

    token = exchange(created, code, site.callback)
    assert token["access_token"].startswith("oat_")
    assert token["project_id"] == second.public_id != first.public_id
    assert token["plan"]["name"] == "Pro"
    assert token["livemode"] is True


def test_redirect_flow_deny_returns_access_denied_with_state(page: Page, live_server: Any, tmp_path: Path) -> None:
    base = live_server.url
    user, _ = make_owner("denier@guests.example", "Summer wedding", "Corporate gala")
    with partner_site(tmp_path) as site:
        created = make_app(make_partner(), name="Snapflow", redirect_uris=[site.callback])
        state = secrets.token_urlsafe(16)
        log_in(page, base, user.email)
        page.goto(standard_authorize_url(base, created, site.callback, state))
        expect_consent(page, "Snapflow")

        click_and_wait_for_callback(page, "Deny", site.callback)
        query = query_of(page.url)
        assert query["error"] == ["access_denied"]
        assert query["state"] == [state]
        assert "code" not in query
    assert not AuthorizationCode.objects.exists()


# --- 3-5. popup mode across two origins --------------------------------------------------------------


def test_popup_allow_posts_code_to_the_opener_origin(page: Page, live_server: Any, tmp_path: Path) -> None:
    base = live_server.url
    user, (project,) = make_owner("popup@guests.example", "Summer wedding")
    with partner_site(tmp_path) as site:
        created = make_app(
            make_partner(),
            name="Snapflow",
            redirect_uris=["https://snapflow.example/callback"],
            allowed_domains=["*.localhost"],
        )
        state = secrets.token_urlsafe(16)
        url = public_key_authorize_url(
            base, created.public_key, site.origin(), "https://snapflow.example/callback", state
        )
        site.write("index.html", connect_page(url))

        log_in(page, base, user.email)
        page.goto(site.url())
        popup = open_popup(page)
        popup.wait_for_load_state("domcontentloaded", timeout=WAIT_MS)
        expect_consent(popup, "Snapflow")
        with popup.expect_event("close", timeout=WAIT_MS):
            popup.get_by_role("button", name="Allow").click()

        results = wait_for_messages(page, 1)
        assert len(results) == 1, results
        (result,) = results
        assert result["origin"] == base  # http://localhost:<port>: the message really came from Apertur
        assert result["fromPopup"] is True
        data = result["data"]
        assert data["source"] == "aptr-connect"
        assert data["state"] == state
        assert "error" not in data
        assert data["code"]

    token = exchange(created, data["code"], "https://snapflow.example/callback")
    assert token["project_id"] == project.public_id
    assert token["plan"]["name"] == "Pro"
    assert token["livemode"] is True


@pytest.mark.parametrize("error", ["origin_not_allowed", "invalid_public_key"])
def test_popup_errors_reach_the_opener(page: Page, live_server: Any, tmp_path: Path, error: str) -> None:
    base = live_server.url
    with partner_site(tmp_path) as site:
        if error == "origin_not_allowed":
            created = make_app(make_partner(), name="Snapflow", allowed_domains=["app.example.com"])
            public_key = created.public_key
        else:
            make_app(make_partner(), name="Snapflow", allowed_domains=["*.localhost"])
            public_key = "aptr_live_pk_" + secrets.token_hex(16)
        state = secrets.token_urlsafe(16)
        url = public_key_authorize_url(base, public_key, site.origin(), "https://snapflow.example/callback", state)
        site.write("index.html", connect_page(url))

        # Not logged in: the key and the origin are checked before anything else.
        page.goto(site.url())
        open_popup(page)
        results = wait_for_messages(page, 1)
        wait_for_popup_closed(page)

    assert len(results) == 1, results
    (result,) = results
    assert result["origin"] == base
    assert result["fromPopup"] is True
    data = result["data"]
    assert data["source"] == "aptr-connect"
    assert data["error"] == error
    assert data["error_description"]
    assert "code" not in data
    assert not AuthorizationCode.objects.exists()
    # RFC 6749 §4.1.2.1: the state comes back with an error too, so the SDK can tie it to its call.
    assert data.get("state") == state, f"the error message carries no state: {data}"


def test_popup_deny_posts_access_denied(page: Page, live_server: Any, tmp_path: Path) -> None:
    base = live_server.url
    user, _ = make_owner("popup-deny@guests.example", "Summer wedding")
    with partner_site(tmp_path) as site:
        created = make_app(make_partner(), name="Snapflow", allowed_domains=["*.localhost"])
        state = secrets.token_urlsafe(16)
        url = public_key_authorize_url(
            base, created.public_key, site.origin(), "https://snapflow.example/callback", state
        )
        site.write("index.html", connect_page(url))

        log_in(page, base, user.email)
        page.goto(site.url())
        popup = open_popup(page)
        expect_consent(popup, "Snapflow")
        with popup.expect_event("close", timeout=WAIT_MS):
            popup.get_by_role("button", name="Deny").click()
        results = wait_for_messages(page, 1)

    assert len(results) == 1, results
    (result,) = results
    assert result["origin"] == base
    assert result["fromPopup"] is True
    assert result["data"]["source"] == "aptr-connect"
    assert result["data"]["error"] == "access_denied"
    assert result["data"]["state"] == state
    assert "code" not in result["data"]
    assert not AuthorizationCode.objects.exists()


def test_popup_forged_origin_gets_no_message(page: Page, live_server: Any, tmp_path: Path) -> None:
    """evil.localhost claims partner.localhost (allowed) as its origin. Apertur pins postMessage's
    target origin to the claimed origin, so the browser drops the code instead of handing it to evil."""
    base = live_server.url
    user, _ = make_owner("victim@guests.example", "Summer wedding")
    with partner_site(tmp_path) as site:
        created = make_app(make_partner(), name="Snapflow", allowed_domains=["*.localhost"])
        state = secrets.token_urlsafe(16)
        url = public_key_authorize_url(
            base, created.public_key, site.origin("partner.localhost"), "https://snapflow.example/callback", state
        )
        site.write("index.html", connect_page(url))

        log_in(page, base, user.email)
        page.goto(site.url("evil.localhost"))
        popup = open_popup(page)
        expect_consent(popup, "Snapflow")
        with popup.expect_event("close", timeout=WAIT_MS):
            popup.get_by_role("button", name="Allow").click()
        page.wait_for_timeout(SETTLE_MS)
        assert page.evaluate("window.__results") == []

    # The flow did run to the end (a code was issued); only its delivery was refused by the browser.
    assert AuthorizationCode.objects.filter(app=created.app).count() == 1


# --- 6. framing --------------------------------------------------------------------------------------


def test_consent_page_cannot_be_framed(page: Page, live_server: Any, tmp_path: Path) -> None:
    base = live_server.url
    user, _ = make_owner("framed@guests.example", "Summer wedding", "Corporate gala")
    with partner_site(tmp_path) as site:
        created = make_app(make_partner(), name="Snapflow", redirect_uris=[site.callback])
        url = standard_authorize_url(base, created, site.callback, "st4te")
        log_in(page, base, user.email)

        # The headers, on the very consent page the logged-in user would see.
        response = page.request.get(url, max_redirects=0)
        assert response.status == 200
        assert "wants to access your Apertur project" in response.text()
        headers = response.headers
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cross-origin-opener-policy"] == "unsafe-none"

        # And in Chromium: a partner page framing it gets nothing rendered.
        site.write(
            "frame.html",
            f'<!doctype html><title>Framer</title><h1>Framer</h1><iframe id="f" src="{url}"></iframe>',
        )
        framed: list[str] = []
        page.on("response", lambda r: framed.append(r.url) if "/oauth/authorize" in r.url else None)
        page.goto(site.url(path="/frame.html"))
        page.wait_for_load_state("load", timeout=WAIT_MS)
        page.wait_for_timeout(SETTLE_MS)
        assert framed, "the iframe never requested the authorize URL"
        children = [f for f in page.frames if f != page.main_frame]
        assert len(children) == 1
        child = children[0]
        assert "/oauth/authorize" not in child.url, child.url
        assert child.get_by_role("button", name="Allow").count() == 0
        assert child.get_by_text("wants to access your Apertur project").count() == 0


# --- 7. layout at the popup's size ---------------------------------------------------------------------

# The widest element sticking out of the viewport, for a readable failure.
OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`);
  return { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, wide: wide.slice(0, 5) };
}"""


def expect_no_horizontal_scroll(page: Page) -> None:
    measured = page.evaluate(OVERFLOW)
    assert measured["scrollWidth"] <= measured["innerWidth"], measured


@pytest.mark.parametrize("width", [480, 360])  # the SDK's popup is 480 px wide (sdk/js/src/core.ts)
def test_login_and_consent_fit_the_popup_without_horizontal_scroll(
    page: Page, live_server: Any, tmp_path: Path, width: int
) -> None:
    base = live_server.url
    page.set_viewport_size({"width": width, "height": 700})
    user, _ = make_owner("christopher.montgomery-fairweather@photography-studio.example", "Summer wedding", "Gala")
    with partner_site(tmp_path) as site:
        created = make_app(
            make_partner(),
            name="Snapflow Event Galleries",
            redirect_uris=[site.callback],
            website="https://www.snapflow-event-galleries.example/integrations/apertur",
        )
        url = standard_authorize_url(base, created, site.callback, "st4te")

        page.goto(url)
        page.wait_for_url(re.compile(r"/login\?next="), timeout=WAIT_MS)
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        expect_no_horizontal_scroll(page)

        log_in_form(page, user.email)
        expect_consent(page, "Snapflow Event Galleries")
        expect_no_horizontal_scroll(page)
        expect(page.get_by_role("button", name="Log out")).to_be_in_viewport()
