"""The demo partner site: a page that connects a user's Apertur project with the aptr-connect SDK.

A plain WSGI application; everything it asks of Apertur goes through the ``apertur-connect`` package
(sdk/python): the code exchange, the API call, token storage and refresh, revocation. Copy the parts you
need; the flow is the same in any framework:

1. ``/`` loads the SDK from Apertur and ``static/connect.js``, which calls ``AptrConnect.authorize()`` in
   the button's click handler and POSTs the resulting ``code`` to ``/api/apertur/connect``.
2. ``/api/apertur/connect`` exchanges the code **on the server**, with the client secret, keeps the tokens
   on the server and answers with the connected project's name and plan.
3. ``/callback`` does the same for the redirect mode (``uxMode: "redirect"``), checking ``state`` and
   ``iss`` (the answer must come from the Apertur this site sent the user to: RFC 9207).
4. ``/disconnect`` revokes the refresh token (which revokes the whole grant) and forgets the session.

Configuration comes from the environment (``apertur partner-site`` fills it from the demo data):
``APERTUR_BASE_URL``, ``APERTUR_CLIENT_ID``, ``APERTUR_CLIENT_SECRET``, ``APERTUR_PUBLIC_KEY``,
``PARTNER_SITE_URL``. Run it with ``python app.py --port 8001``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import secrets
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html import escape
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from apertur_connect import AperturError, Client, TokenSet


def _same(received: str, expected: str) -> bool:
    """Constant-time equality of a value the browser sent with the one expected. As UTF-8 bytes:
    ``hmac.compare_digest`` refuses a ``str`` outside ASCII with a TypeError (a 500 for any such query value)."""
    return hmac.compare_digest(received.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


HERE = Path(__file__).resolve().parent
SCOPES = ["upload:create", "project:read"]
COOKIE = "partner_session"
TIMEOUT_S = 10
MAX_BODY = 16 * 1024

Headers = list[tuple[str, str]]
Response = tuple[int, Headers, bytes]
StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class Config:
    apertur_base_url: str
    client_id: str
    client_secret: str
    public_key: str
    site_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        return cls(
            apertur_base_url=env.get("APERTUR_BASE_URL", "http://localhost:8000").rstrip("/"),
            client_id=env.get("APERTUR_CLIENT_ID", ""),
            client_secret=env.get("APERTUR_CLIENT_SECRET", ""),
            public_key=env.get("APERTUR_PUBLIC_KEY", ""),
            site_url=env.get("PARTNER_SITE_URL", "http://partner.localhost:8001").rstrip("/"),
        )

    @property
    def redirect_uri(self) -> str:
        return f"{self.site_url}/callback"

    @property
    def apertur_origin(self) -> str:
        parts = urllib.parse.urlsplit(self.apertur_base_url)
        return f"{parts.scheme}://{parts.netloc}"


# --- the server-side calls to Apertur: the apertur-connect package ------------------------------------


class SessionTokenStore:
    """An apertur-connect ``TokenStore`` keyed by this site's session id: the tokens live in the server-side
    session (``session["connection"]``), next to the connected project's name. A real site would use
    ``EncryptedFileStore`` or ``apertur_connect.sql.SQLAlchemyStore`` keyed by its user id."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def get(self, key: str) -> TokenSet | None:
        session = self.sessions.get(key)
        connection = session.get("connection") if session else None
        if not connection:
            return None
        return TokenSet(
            access_token=connection["access_token"],
            refresh_token=connection["refresh_token"],
            expires_at=connection["expires_at"],
            scopes=tuple(connection["scopes"]),
            project_id=connection["project_id"],
            livemode=connection["livemode"],
        )

    def set(self, key: str, tokens: TokenSet) -> None:
        session = self.sessions.get(key)
        if session is None:
            return
        connection = dict(session.get("connection") or {})
        connection.update(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scopes=list(tokens.scopes),
            project_id=tokens.project_id,
            livemode=tokens.livemode,
        )
        session["connection"] = connection

    def delete(self, key: str) -> None:
        session = self.sessions.get(key)
        if session is not None:
            session.pop("connection", None)


# --- sessions: tokens stay here, the browser only holds a random id ---------------------------------------


class Sessions:
    """In memory, so a restart disconnects everyone: use your database in production."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, sid: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._data.get(sid) if sid else None

    def create(self) -> tuple[str, dict[str, Any]]:
        sid = secrets.token_urlsafe(32)
        # csrf guards the Disconnect form; state ties a redirect-mode callback to this browser.
        session: dict[str, Any] = {"csrf": secrets.token_urlsafe(32), "state": secrets.token_urlsafe(16)}
        with self._lock:
            self._data[sid] = session
        return sid, session

    def forget(self, sid: str) -> None:
        with self._lock:
            self._data.pop(sid, None)


# --- the site -----------------------------------------------------------------------------------------


class PartnerSite:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.sessions = Sessions()
        # One client per process: thread-safe, refreshes each connection's tokens once however many
        # requests need them at the same time.
        self.apertur = Client(
            config.client_id or "unset",
            config.client_secret or "unset",
            base_url=config.apertur_base_url,
            redirect_uri=config.redirect_uri,
            store=SessionTokenStore(self.sessions),
            timeout=TIMEOUT_S,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO") or "/"
        routes: dict[str, dict[str, Callable[[dict[str, Any]], Response]]] = {
            "/": {"GET": self.home},
            "/api/apertur/connect": {"POST": self.connect},
            "/callback": {"GET": self.callback},
            "/disconnect": {"POST": self.disconnect},
            "/static/connect.js": {"GET": lambda env: _file("connect.js", "text/javascript; charset=utf-8")},
            "/static/site.css": {"GET": lambda env: _file("site.css", "text/css; charset=utf-8")},
            "/favicon.ico": {"GET": lambda env: _file("favicon.svg", "image/svg+xml")},
        }
        handlers = routes.get(path)
        if handlers is None:
            status, headers, body = _text(404, "Not found.")
        elif method not in handlers:
            status, headers, body = _text(405, "Method not allowed.")
            headers.append(("Allow", ", ".join(handlers)))
        else:
            status, headers, body = handlers[method](environ)
        start_response(f"{status} {HTTPStatus(status).phrase}", headers + self.security_headers())
        return [body]

    def security_headers(self) -> Headers:
        """A strict CSP (no inline script: the SDK comes from Apertur's origin, the page's code from a
        file) and a COOP that keeps ``window.opener`` for the popup (``same-origin`` would break it)."""
        csp = "; ".join(
            [
                "default-src 'self'",
                f"script-src 'self' {self.config.apertur_origin}",
                "style-src 'self'",
                "img-src 'self'",
                "connect-src 'self'",
                "object-src 'none'",
                "base-uri 'none'",
                "form-action 'self'",
                "frame-ancestors 'none'",
            ]
        )
        return [
            ("Content-Security-Policy", csp),
            ("Cross-Origin-Opener-Policy", "same-origin-allow-popups"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
        ]

    # --- session cookie ---

    def _session(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any], Headers]:
        """The browser's session, or a new one with the Set-Cookie header that starts it."""
        try:
            morsel = SimpleCookie(environ.get("HTTP_COOKIE", "")).get(COOKIE)
        except CookieError:
            morsel = None
        sid = morsel.value if morsel else None
        session = self.sessions.get(sid)
        if sid and session is not None:
            return sid, session, []
        sid, session = self.sessions.create()
        return sid, session, [("Set-Cookie", self._cookie(sid))]

    def _cookie(self, value: str, max_age: int | None = None) -> str:
        cookie = f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax"
        if self.config.site_url.startswith("https://"):
            cookie += "; Secure"
        if max_age is not None:
            cookie += f"; Max-Age={max_age}"
        return cookie

    def _connect_session(self, sid: str, session: dict[str, Any], code: str) -> dict[str, Any]:
        """Exchange the code, read the project, keep the tokens in the session. Raises AperturError."""
        previous = session.get("connection")
        connection = self.apertur.exchange_code(code, key=sid)  # the client secret: only from this server
        try:
            project = connection.api.project()
        except AperturError:
            _quietly(connection.revoke)
            if previous:
                session["connection"] = previous
            raise
        session["connection"]["project"] = {"id": project.id, "name": project.name, "plan": project.plan.name}
        if previous:  # connecting again replaces the old grant: revoke it rather than leave it alive
            _quietly(lambda: self.apertur.revoke_token(previous["refresh_token"]))
        return dict(session["connection"]["project"])

    # --- pages ---

    def home(self, environ: dict[str, Any]) -> Response:
        _, session, cookie = self._session(environ)
        connection = session.get("connection")
        if connection:
            project = connection["project"]
            mode = "" if connection["livemode"] else ' <span class="badge">Test mode</span>'
            body = f"""<h1>Your Apertur project is connected{mode}</h1>
<dl>
  <dt>Project</dt><dd id="project-name">{escape(project["name"])}</dd>
  <dt>Plan</dt><dd id="project-plan">{escape(project["plan"])}</dd>
</dl>
<form method="post" action="/disconnect">
  <input type="hidden" name="csrf_token" value="{escape(session["csrf"])}">
  <button type="submit">Disconnect</button>
</form>"""
            return _html(200, _page(body), cookie)
        c = self.config
        body = f"""<h1>Connect your Apertur account</h1>
<p>Connect one of your Apertur projects to the Demo Partner Site. Apertur asks you to choose the project
and to allow access; this site never sees your password.</p>
<div id="app" data-public-key="{escape(c.public_key)}" data-redirect-uri="{escape(c.redirect_uri)}"
     data-state="{escape(session["state"])}">
  <button id="connect-btn" type="button">Connect your Apertur account</button>
  <button id="connect-redirect" type="button" class="secondary">Connect in this window instead</button>
  <p id="status" role="status"></p>
  <p id="error" role="alert" hidden></p>
</div>
<script src="{escape(c.apertur_base_url)}/sdk/aptr-connect.js"></script>
<script src="/static/connect.js"></script>"""
        return _html(200, _page(body), cookie)

    def connect(self, environ: dict[str, Any]) -> Response:
        """``POST /api/apertur/connect`` with ``{"code": …}`` from the page's ``onSuccess``."""
        # A JSON body cannot be sent cross-site without a CORS preflight (which this site never allows),
        # and a browser's Origin, when sent, must be this site's: together they stop cross-site requests.
        if (environ.get("CONTENT_TYPE") or "").split(";")[0].strip() != "application/json":
            return _json(415, _err("unsupported_media_type", 'Send a JSON body: {"code": "…"}.'))
        origin = environ.get("HTTP_ORIGIN")
        if origin and origin != _origin(self.config.site_url):
            return _json(403, _err("forbidden", "Cross-site request refused."))
        try:
            payload = json.loads(_read_body(environ) or b"{}")
        except ValueError:
            payload = None
        code = payload.get("code") if isinstance(payload, dict) else None
        if not isinstance(code, str) or not code:
            return _json(400, _err("invalid_request", 'Send a JSON body: {"code": "…"}.'))
        sid, session, cookie = self._session(environ)
        try:
            project = self._connect_session(sid, session, code)
        except AperturError as exc:
            status = 502 if exc.code == "apertur_unreachable" else 400
            return _json(status, _err(exc.code, f"Apertur refused the code: {exc.message}"), cookie)
        return _json(200, {"connected": True, "project": project}, cookie)

    def callback(self, environ: dict[str, Any]) -> Response:
        """The redirect mode lands here with ``code`` and ``state`` (or ``error``) in the query."""
        query = {k: v[0] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).items()}
        sid, session, cookie = self._session(environ)
        if not _same(query.get("state", ""), session["state"]):
            return _html(400, _page(_failure("state_mismatch", "This answer was not asked for by this browser.")))
        session["state"] = secrets.token_urlsafe(16)  # one use
        # RFC 9207 §2.4: Apertur names itself in every authorization response (its metadata says so:
        # authorization_response_iss_parameter_supported), so an answer without it, or naming another issuer,
        # is refused: it did not come from the Apertur this site sent the user to (a mix-up attack).
        if not _same(query.get("iss", ""), self.config.apertur_base_url):
            return _html(400, _page(_failure("issuer_mismatch", "This answer did not come from Apertur.")), cookie)
        if "error" in query:
            message = query.get("error_description") or "Apertur did not connect your account."
            return _html(400, _page(_failure(query["error"], message)), cookie)
        try:
            self._connect_session(sid, session, query.get("code", ""))
        except AperturError as exc:
            return _html(400, _page(_failure(exc.code, f"Apertur refused the code: {exc.message}")), cookie)
        return 303, [("Location", "/"), ("Cache-Control", "no-store"), *cookie], b""

    def disconnect(self, environ: dict[str, Any]) -> Response:
        sid, session, _ = self._session(environ)
        form = urllib.parse.parse_qs(_read_body(environ).decode("utf-8", "replace"))
        if not _same(form.get("csrf_token", [""])[0], session["csrf"]):
            return _text(403, "Refused: the form's CSRF token is missing or wrong. Reload the page and try again.")
        # Revoking the refresh token revokes every token of the grant; the store forgets them.
        _quietly(self.apertur.connection(sid).revoke, errors=environ.get("wsgi.errors"))
        self.sessions.forget(sid)
        return 303, [("Location", "/"), ("Set-Cookie", self._cookie("", max_age=0))], b""


# --- small helpers ------------------------------------------------------------------------------------


def _page(body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo Partner Site</title>
<link rel="stylesheet" href="/static/site.css">
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""


def _failure(code: str, message: str) -> str:
    return f"""<h1>Connection failed</h1>
<p id="error" role="alert">{escape(code)}: {escape(message)}</p>
<p><a href="/">Back</a></p>"""


def _html(status: int, page: str, extra: Iterable[tuple[str, str]] = ()) -> Response:
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"), *extra]
    return status, headers, page.encode()


def _json(status: int, data: dict[str, Any], extra: Iterable[tuple[str, str]] = ()) -> Response:
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), *extra]
    return status, headers, json.dumps(data).encode()


def _text(status: int, text: str) -> Response:
    return status, [("Content-Type", "text/plain; charset=utf-8")], text.encode()


def _file(name: str, content_type: str) -> Response:
    return 200, [("Content-Type", content_type), ("Cache-Control", "no-cache")], (HERE / "static" / name).read_bytes()


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return bytes(environ["wsgi.input"].read(min(length, MAX_BODY))) if length > 0 else b""


def _quietly(call: Callable[[], None], errors: Any = None) -> None:
    try:
        call()
    except AperturError as exc:
        print(f"partner site: revoking failed: {exc.code}: {exc.message}", file=errors or sys.stderr)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The demo partner site for Apertur's aptr-connect SDK.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    missing = [n for n in ("APERTUR_CLIENT_ID", "APERTUR_CLIENT_SECRET", "APERTUR_PUBLIC_KEY") if not os.environ.get(n)]
    if missing:
        sys.exit(f"Set {', '.join(missing)} in the environment (apertur partner-site does it for you).")
    config = Config.from_env()
    with make_server(args.host, args.port, PartnerSite(config), server_class=ThreadingWSGIServer) as server:
        print(
            f"Demo partner site on {config.site_url} (listening on {args.host}:{args.port}), "
            f"Apertur at {config.apertur_base_url}",
            flush=True,
        )
        server.serve_forever()


if __name__ == "__main__":
    main()
