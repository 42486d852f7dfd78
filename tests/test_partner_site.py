"""The demo partner site (examples/partner_site/app.py) against a live Apertur: the server-side code
exchange, the connected project, Disconnect (revocation, CSRF), the redirect-mode callback, its errors and
its security headers; and the ``apertur partner-site`` command that serves it.

The site runs on a loopback port in a thread; its Apertur is pytest-django's ``live_server``. Codes come
from driving consent with a logged-in ``django.test.Client``, as in apertur/oauth/tests.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests
from django.test import Client
from typer.testing import CliRunner

from apertur.oauth.services import CreatedApp
from apertur.projects.models import Project
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import get_code, make_app, make_partner, make_user

APP_PATH = Path(__file__).resolve().parents[1] / "examples" / "partner_site" / "app.py"
SCOPES = "upload:create project:read"


def load_partner_site() -> ModuleType:
    """examples/ is not a package: load app.py from its file, as ``python app.py`` would."""
    name = "partner_site_app"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


site_module = load_partner_site()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class RunningSite:
    """The partner site on ``127.0.0.1:<port>``, known to browsers as ``http://<host>:<port>``."""

    server: Any
    port: int
    host: str = "partner.localhost"
    app: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def local(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def callback(self) -> str:
        return f"{self.url}/callback"

    def configure(self, base_url: str, created: CreatedApp, *, public_key: str | None = None) -> Any:
        config = site_module.Config(
            apertur_base_url=base_url,
            client_id=created.app.client_id,
            client_secret=created.client_secret,
            public_key=public_key or created.public_key,
            site_url=self.url,
        )
        self.app = site_module.PartnerSite(config)
        self.server.set_app(self.app)
        return self.app

    def connection(self) -> dict[str, Any] | None:
        """The one session's server-side connection (tokens included): what the browser never sees."""
        sessions = [s for s in self.app.sessions._data.values() if s.get("connection")]
        assert len(sessions) <= 1, sessions
        return sessions[0]["connection"] if sessions else None


@contextmanager
def partner_site(host: str = "partner.localhost") -> Iterator[RunningSite]:
    """Serve the site on a free loopback port (or ``APERTUR_E2E_PARTNER_PORT``, on a machine where each run has
    ports of its own); ``configure()`` it once the OAuth app (whose redirect URI names the port) exists. Stopped
    on exit."""
    server = make_server(
        "127.0.0.1",
        int(os.environ.get("APERTUR_E2E_PARTNER_PORT") or 0),
        lambda environ, start_response: [],
        server_class=site_module.ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="partner-site", daemon=True)
    thread.start()
    try:
        yield RunningSite(server=server, port=server.server_address[1], host=host)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_customer(email: str = "customer@guests.example") -> tuple[Any, Project, Project]:
    user = make_user(email)
    wedding = create_project(owner=user, name="Wedding photos", plan=plan_by_name("Pro"))
    team = create_project(owner=user, name="Team events", plan=plan_by_name("Free"))
    return user, wedding, team


def logged_in(user: Any) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


def api_status(token: str, path: str = "/api/v1/plan") -> int:
    return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def introspect(created: CreatedApp, token: str) -> dict[str, Any]:
    response = Client().post(
        "/oauth/introspect",
        {"client_id": created.app.client_id, "client_secret": created.client_secret, "token": token},
    )
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def page_state(html: str) -> str:
    match = re.search(r'data-state="([^"]+)"', html)
    assert match, html
    return match.group(1)


@dataclass
class Setup:
    site: RunningSite
    created: CreatedApp
    user: Any
    project: Project
    other: Project
    browser: Client
    http: requests.Session

    def code(self, project: Project | None = None, **params: str) -> str:
        params.setdefault("scope", SCOPES)
        return get_code(
            self.browser,
            self.created.app.client_id,
            project=(project or self.project).public_id,
            redirect_uri=self.site.callback,
            **params,
        )

    def get(self, path: str = "/") -> requests.Response:
        return self.http.get(self.site.local + path, allow_redirects=False, timeout=15)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.site.local + path, allow_redirects=False, timeout=15, **kwargs)

    def connect(self, code: str) -> requests.Response:
        return self.post("/api/apertur/connect", json={"code": code})

    @property
    def iss(self) -> str:
        """The issuer the site expects in a redirect-mode callback (RFC 9207): the Apertur it is configured for."""
        return urllib.parse.quote(self.site.app.config.apertur_base_url, safe="")


@pytest.fixture
def setup(live_server: Any) -> Iterator[Setup]:
    user, wedding, team = make_customer()
    with partner_site() as site, requests.Session() as http:
        created = make_app(
            make_partner(), name="Demo Partner Site", redirect_uris=[site.callback], allowed_domains=["*.localhost"]
        )
        site.configure(live_server.url, created)
        yield Setup(site, created, user, wedding, team, logged_in(user), http)


# --- configuration --------------------------------------------------------------------------------------


def test_config_from_environment_with_defaults() -> None:
    config = site_module.Config.from_env({})
    assert config.apertur_base_url == "http://localhost:8000"
    assert config.site_url == "http://partner.localhost:8001"
    assert config.redirect_uri == "http://partner.localhost:8001/callback"
    config = site_module.Config.from_env(
        {
            "APERTUR_BASE_URL": "https://apertur.example/",
            "APERTUR_CLIENT_ID": "aptr_ci_x",
            "APERTUR_CLIENT_SECRET": "aptr_cs_y",
            "APERTUR_PUBLIC_KEY": "aptr_live_pk_z",
            "PARTNER_SITE_URL": "https://partner.example",
        }
    )
    assert (config.client_id, config.client_secret, config.public_key) == ("aptr_ci_x", "aptr_cs_y", "aptr_live_pk_z")
    assert config.apertur_origin == "https://apertur.example"
    assert config.redirect_uri == "https://partner.example/callback"


# --- the page and its headers ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_home_loads_the_sdk_from_apertur_under_a_strict_csp(setup: Setup, live_server: Any) -> None:
    response = setup.get("/")
    assert response.status_code == 200
    html = response.text
    assert "<h1>Connect your Apertur account</h1>" in html
    assert f'<script src="{live_server.url}/sdk/aptr-connect.js"></script>' in html
    assert '<script src="/static/connect.js"></script>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "no inline script: the CSP forbids it"
    assert not re.search(r"\son[a-z]+=", html), "no inline event handlers either"
    assert f'data-public-key="{setup.created.public_key}"' in html
    assert f'data-redirect-uri="{setup.site.callback}"' in html
    assert setup.created.client_secret not in html

    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == f"'self' {live_server.url}"
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"

    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("partner_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # http://partner.localhost: a Secure cookie would never come back

    # The same headers on every answer, static files and errors included.
    for path, status in [("/static/connect.js", 200), ("/static/site.css", 200), ("/nope", 404)]:
        other = setup.get(path)
        assert other.status_code == status
        assert other.headers["Content-Security-Policy"] == csp
        assert other.headers["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"
    script = setup.get("/static/connect.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    for needle in [
        "AptrConnect.init",
        "AptrConnect.authorize",
        '"upload:create", "project:read"',
        "/api/apertur/connect",
    ]:
        assert needle in script.text
    assert setup.get("/disconnect").status_code == 405


# --- connect, show, disconnect ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_connect_shows_the_project_and_disconnect_revokes_the_grant(setup: Setup) -> None:
    setup.get("/")  # the session cookie, as a browser would have it
    response = setup.connect(setup.code(project=setup.other))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "connected": True,
        "project": {"id": setup.other.public_id, "name": "Team events", "plan": "Free"},
    }
    connection = setup.site.connection()
    assert connection is not None
    access, refresh = connection["access_token"], connection["refresh_token"]
    assert access.startswith("oat_") and refresh.startswith("ort_")
    assert access not in response.text and refresh not in response.text  # tokens stay on the server
    assert api_status(access) == 200

    page = setup.get("/")
    assert page.status_code == 200
    assert '<dd id="project-name">Team events</dd>' in page.text
    assert '<dd id="project-plan">Free</dd>' in page.text
    assert "Disconnect" in page.text
    assert access not in page.text and refresh not in page.text

    response = setup.post("/disconnect", data={"csrf_token": csrf_token(page.text)})
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert setup.site.connection() is None
    # Revoking the refresh token revoked the whole grant: the access token is dead too.
    assert api_status(access) == 401
    assert introspect(setup.created, refresh) == {"active": False}
    assert introspect(setup.created, access) == {"active": False}
    again = setup.get("/")
    assert "<h1>Connect your Apertur account</h1>" in again.text


@pytest.mark.django_db(transaction=True)
def test_disconnect_without_the_csrf_token_is_refused(setup: Setup) -> None:
    setup.get("/")
    assert setup.connect(setup.code()).status_code == 200
    connection = setup.site.connection()
    assert connection is not None

    for data in [{}, {"csrf_token": ""}, {"csrf_token": secrets.token_urlsafe(32)}]:
        response = setup.post("/disconnect", data=data)
        assert response.status_code == 403, data
        assert "CSRF" in response.text
    # A forged form from another browser (another session) is refused as well.
    with requests.Session() as stranger:
        token = csrf_token(setup.get("/").text)
        response = stranger.post(f"{setup.site.local}/disconnect", data={"csrf_token": token}, allow_redirects=False)
        assert response.status_code == 403
    assert setup.site.connection() == connection
    assert api_status(connection["access_token"]) == 200
    assert introspect(setup.created, connection["refresh_token"])["active"] is True
    assert '<dd id="project-name">Wedding photos</dd>' in setup.get("/").text


@pytest.mark.django_db(transaction=True)
def test_a_bad_code_gives_a_clear_error(setup: Setup) -> None:
    response = setup.connect("oac_" + secrets.token_urlsafe(24))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_grant"
    assert error["message"].startswith("Apertur refused the code: ")
    assert setup.site.connection() is None

    # A code used once is refused the second time (and Apertur revokes what the first use issued).
    code = setup.code()
    assert setup.connect(code).status_code == 200
    replay = setup.connect(code)
    assert replay.status_code == 400
    assert replay.json()["error"]["code"] == "invalid_grant"
    assert "already used" in replay.json()["error"]["message"]

    # Malformed requests.
    assert setup.post("/api/apertur/connect", json={}).json()["error"]["code"] == "invalid_request"
    assert (
        setup.post("/api/apertur/connect", data="not json", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    assert setup.post("/api/apertur/connect", data={"code": "x"}).status_code == 415
    cross_site = setup.post("/api/apertur/connect", json={"code": "x"}, headers={"Origin": "http://evil.localhost"})
    assert cross_site.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_code_for_another_redirect_uri_is_refused(live_server: Any) -> None:
    """The site exchanges with redirect_uri = PARTNER_SITE_URL/callback: a code issued for another
    redirect URI of the same app does not connect."""
    user, project, _ = make_customer()
    with partner_site() as site, requests.Session() as http:
        created = make_app(make_partner(), redirect_uris=[site.callback, "https://snapflow.example/callback"])
        site.configure(live_server.url, created)
        code = get_code(logged_in(user), created.app.client_id, project=project.public_id, scope=SCOPES)
        response = http.post(f"{site.local}/api/apertur/connect", json={"code": code}, timeout=15)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_grant"


@pytest.mark.django_db(transaction=True)
def test_apertur_unreachable_is_reported(live_server: Any) -> None:
    with partner_site() as site, requests.Session() as http:
        created = make_app(make_partner(), redirect_uris=[site.callback])
        site.configure("http://127.0.0.1:9", created)  # nothing listens on the discard port
        response = http.post(f"{site.local}/api/apertur/connect", json={"code": "oac_x"}, timeout=15)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "apertur_unreachable"


# --- the redirect mode's callback -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_callback_checks_state_and_connects(setup: Setup) -> None:
    state = page_state(setup.get("/").text)

    # A callback whose state this browser did not ask for is refused (login CSRF), code unused.
    code = setup.code(state="attacker-state")
    response = setup.get(f"/callback?code={code}&state=attacker-state")
    assert response.status_code == 400
    assert "state_mismatch" in response.text
    assert setup.site.connection() is None
    assert setup.get(f"/callback?code={code}").status_code == 400
    assert setup.get(f"/callback?code={code}&state=%C3%A9").status_code == 400  # not ASCII: refused, not a 500

    response = setup.get(f"/callback?code={setup.code(state=state)}&state={state}&iss={setup.iss}")
    assert response.status_code == 303, response.text
    assert response.headers["Location"] == "/"
    page = setup.get("/")
    assert '<dd id="project-name">Wedding photos</dd>' in page.text
    assert '<dd id="project-plan">Pro</dd>' in page.text
    # The state is single-use.
    assert setup.get(f"/callback?code={setup.code(state=state)}&state={state}&iss={setup.iss}").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_callback_refuses_an_answer_from_another_issuer(setup: Setup) -> None:
    """RFC 9207 §2.4: Apertur names itself (``iss``) in every authorization response, so the callback refuses one
    without it or naming another server, before using the code (a mix-up attack hands it another server's code)."""
    # A name outside ASCII too: hmac.compare_digest raises TypeError on such a str, which answered 500.
    for iss in ("", "&iss=https%3A%2F%2Fevil.example", f"&iss={setup.iss}%2F", "&iss=https%3A%2F%2F%C3%A9vil.example"):
        state = page_state(setup.get("/").text)
        response = setup.get(f"/callback?code={setup.code(state=state)}&state={state}{iss}")
        assert response.status_code == 400, iss
        assert "issuer_mismatch: This answer did not come from Apertur." in response.text
        assert setup.site.connection() is None


@pytest.mark.django_db(transaction=True)
def test_callback_shows_errors(setup: Setup) -> None:
    state = page_state(setup.get("/").text)
    response = setup.get(
        f"/callback?error=access_denied&error_description=The+user+denied+access.&state={state}&iss={setup.iss}"
    )
    assert response.status_code == 400
    assert "access_denied: The user denied access." in response.text
    state = page_state(setup.get("/").text)
    response = setup.get(f"/callback?code=oac_bogus&state={state}&iss={setup.iss}")
    assert response.status_code == 400
    assert "invalid_grant: Apertur refused the code" in response.text
    assert setup.site.connection() is None


# --- apertur partner-site ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cli_serves_the_site_with_the_demo_apps_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from apertur import cli
    from apertur.demo import ensure_demo

    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def fake_execve(path: str, args: list[str], env: dict[str, str]) -> None:
        calls.append((path, args, env))

    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setattr(cli, "_check_listen", lambda host, port: None)  # 8001 may be taken on this machine
    monkeypatch.delenv("PARTNER_SITE_URL", raising=False)
    result = CliRunner().invoke(cli.app, ["partner-site", "--port", "8001"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    ((path, args, env),) = calls
    demo = ensure_demo()
    assert path == sys.executable
    assert args == [sys.executable, str(APP_PATH), "--host", "127.0.0.1", "--port", "8001"]
    assert env["APERTUR_BASE_URL"] == demo["base_url"]
    assert env["APERTUR_CLIENT_ID"] == demo["app"]["client_id"]
    assert env["APERTUR_CLIENT_SECRET"] == demo["app"]["client_secret"]
    assert env["APERTUR_PUBLIC_KEY"] == demo["app"]["public_key"]
    assert env["PARTNER_SITE_URL"] == "http://partner.localhost:8001"
    assert f"{env['PARTNER_SITE_URL']}/callback" in demo["app"]["redirect_uris"]


@pytest.mark.django_db
def test_cli_on_a_port_in_use_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` (or an earlier partner-site) already on the port: a sentence naming it, not wsgiref's traceback."""
    import os
    import socket

    from apertur import cli

    calls: list[Any] = []
    monkeypatch.setattr(os, "execve", lambda *args: calls.append(args))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli.app, ["partner-site", "--port", str(port)])
    assert calls == []
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert f"Cannot listen on 127.0.0.1:{port}" in message and "--port" in message


@pytest.mark.django_db(transaction=True)
def test_a_test_mode_connection_is_labelled(setup: Setup) -> None:
    """With the test public key the tokens are test-mode (livemode false) and the page says so."""
    setup.get("/")
    code = setup.code(public_key=setup.created.test_public_key, origin=setup.site.url, ux_mode="redirect")
    assert setup.connect(code).status_code == 200
    connection = setup.site.connection()
    assert connection is not None and connection["livemode"] is False
    assert 'Your Apertur project is connected <span class="badge">Test mode</span>' in setup.get("/").text
