"""The authorization code flow with real OAuth client libraries — Authlib and requests-oauthlib — against a
live server on loopback. Every OAuth endpoint comes from the RFC 8414 metadata document; a plain
``requests.Session`` plays the person's browser (log in, consent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.integrations.requests_client import OAuthError
from oauthlib.oauth2.rfc6749.errors import InvalidGrantError
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session as OAuthlibSession

from apertur.projects.services import create_project
from apertur.testing import PASSWORD, make_app, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 10  # seconds, for every HTTP call
REDIRECT_URI = "https://snapflow.example/callback"
SCOPE = "upload:create project:read"
GRANTED = ["plan:read", "upload:create", "project:read"]
CUSTOMER = "customer@example.com"


# --- the browser ---------------------------------------------------------------------------------------


@dataclass
class Form:
    method: str
    action: str | None
    fields: dict[str, str] = field(default_factory=dict)
    options: dict[str, list[str]] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class FormParser(HTMLParser):
    """The forms of a page: hidden and visible inputs, selects with their option values, named buttons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._open = False
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(method=(a.get("method") or "get").lower(), action=a.get("action")))
            self._open = True
            return
        if not self._open:
            return
        form = self.forms[-1]
        name = a.get("name")
        if tag == "input" and name:
            form.fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
            form.options[name] = []
        elif tag == "option" and self._select:
            form.options[self._select].append(a.get("value", ""))
        elif tag == "button" and name:
            form.buttons.append((name, a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = False
        elif tag == "select":
            self._select = None


def find_form(html: str, *, having: str) -> Form:
    """The one form of the page with a field, select or button named ``having``."""
    parser = FormParser()
    parser.feed(html)
    matches = [
        f
        for f in parser.forms
        if having in f.fields or having in f.options or any(name == having for name, _ in f.buttons)
    ]
    assert len(matches) == 1, f"expected one form with {having!r}, found {len(matches)}: {html[:2000]}"
    return matches[0]


class Browser:
    """A person's browser without JavaScript: a cookie jar, redirects followed by hand."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def get(self, url: str) -> requests.Response:
        return self.http.get(urljoin(self.base, url), allow_redirects=False, timeout=TIMEOUT)

    def post(self, url: str, data: dict[str, str]) -> requests.Response:
        return self.http.post(urljoin(self.base, url), data=data, allow_redirects=False, timeout=TIMEOUT)

    def log_in(self, login_url: str, email: str) -> str:
        """Fill in the login form (Django CSRF: the cookie from the GET, the hidden token in the form);
        return where the site sends us next."""
        page = self.get(login_url)
        assert page.status_code == 200, page.text[:2000]
        form = find_form(page.text, having="password")
        assert form.method == "post"
        assert self.http.cookies.get("csrftoken"), "no CSRF cookie"
        data = {**form.fields, "email": email, "password": PASSWORD}
        response = self.post(urljoin(page.url, form.action or page.url), data)
        assert response.status_code == 302, response.text[:2000]
        return response.headers["Location"]

    def authorize(self, authorization_url: str, email: str, *, project: str | None = None) -> str:
        """Open the authorization URL, log in when sent to the login page, choose the project and press
        Allow; return the ``Location`` of the redirect back to the client."""
        response = self.get(authorization_url)
        for _ in range(3):  # bounded: login, then back to the authorization URL
            if response.status_code != 302:
                break
            location = response.headers["Location"]
            assert urlsplit(location).path == "/login", location
            assert parse_qs(urlsplit(location).query)["next"][0].startswith("/oauth/authorize?")
            response = self.get(self.log_in(location, email))
        assert response.status_code == 200, response.text[:2000]

        form = find_form(response.text, having="decision")
        assert form.method == "post"
        assert form.action is None  # posts back to the same URL, query string included
        assert ("decision", "allow") in form.buttons and ("decision", "deny") in form.buttons
        data = dict(form.fields)
        if "project" in form.options:
            assert project in form.options["project"], form.options
            data["project"] = project
        elif project is not None:
            assert data["project"] == project
        data["decision"] = "allow"
        answer = self.post(response.url, data)
        assert answer.status_code == 302, answer.text[:2000]
        return answer.headers["Location"]


# --- the world -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    base: str
    metadata: dict[str, Any]
    client_id: str
    client_secret: str
    test_public_key: str
    project_id: str  # the customer has two projects; the flows connect this one

    @property
    def api(self) -> str:
        return self.metadata["issuer"] + "/api/v1"

    def basic(self) -> HTTPBasicAuth:
        return HTTPBasicAuth(self.client_id, self.client_secret)

    def plan(self, access_token: str) -> requests.Response:
        return requests.get(f"{self.api}/plan", headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT)

    def introspect(self, token: str) -> dict[str, Any]:
        response = requests.post(
            self.metadata["introspection_endpoint"], data={"token": token}, auth=self.basic(), timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def world(live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> World:
    # Loopback over http: both libraries refuse plain http unless told otherwise.
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.delenv("OAUTHLIB_RELAX_TOKEN_SCOPE", raising=False)
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)  # loopback must not go through a proxy
    settings.APERTUR_BASE_URL = live_server.url  # the metadata's URLs are built from it

    created = make_app(name="Snapflow", redirect_uris=[REDIRECT_URI])
    customer = make_user(CUSTOMER)
    create_project(owner=customer, name="Weddings")
    chosen = create_project(owner=customer, name="Conferences")

    response = requests.get(f"{live_server.url}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return World(
        base=live_server.url,
        metadata=response.json(),
        client_id=created.app.client_id,
        client_secret=created.client_secret,
        test_public_key=created.test_public_key,
        project_id=chosen.public_id,
    )


def authlib_session(world: World, auth_method: str = "client_secret_basic") -> AuthlibSession:
    return AuthlibSession(
        world.client_id,
        world.client_secret,
        scope=SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method=auth_method,
        default_timeout=TIMEOUT,
    )


def authlib_connect(world: World, client: AuthlibSession, **extra: str) -> dict[str, Any]:
    """Authorization URL with PKCE → browser consent → code exchange. Returns the token response."""
    verifier = generate_token(48)
    url, state = client.create_authorization_url(
        world.metadata["authorization_endpoint"], code_verifier=verifier, **extra
    )
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    location = Browser(world.base).authorize(url, CUSTOMER, project=world.project_id)
    assert location.startswith(REDIRECT_URI + "?"), location
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    token: dict[str, Any] = client.fetch_token(
        world.metadata["token_endpoint"], authorization_response=location, code_verifier=verifier, state=state
    )
    return token


def assert_token_response(token: dict[str, Any], world: World, *, livemode: bool = True) -> None:
    assert token["access_token"].startswith("oat_")
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["refresh_token"] and token["refresh_token"] != token["access_token"]
    assert token["scopes"] == GRANTED
    scope = token["scope"]  # oauthlib turns the string into a list
    assert (scope.split() if isinstance(scope, str) else scope) == GRANTED
    assert token["project_id"] == world.project_id
    assert token["plan"]["name"] == "Free"
    assert token["livemode"] is livemode


def assert_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["error"]["code"] == "invalid_token"


# --- metadata ------------------------------------------------------------------------------------------


def test_metadata_document_points_at_the_live_server(world: World) -> None:
    meta = world.metadata
    assert meta["issuer"] == world.base
    for name, path in [
        ("authorization_endpoint", "/oauth/authorize"),
        ("token_endpoint", "/oauth/token"),
        ("revocation_endpoint", "/oauth/revoke"),
        ("introspection_endpoint", "/oauth/introspect"),
    ]:
        assert meta[name] == world.base + path
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    assert {"plan:read", "upload:create", "project:read"} <= set(meta["scopes_supported"])


# --- Authlib -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_authlib_code_flow_refresh_revoke_introspect(world: World, auth_method: str) -> None:
    meta = world.metadata
    client = authlib_session(world, auth_method)
    token = authlib_connect(world, client)
    assert_token_response(token, world)

    # The session sends the bearer token itself.
    plan = client.get(f"{world.api}/plan")
    assert plan.status_code == 200, plan.text
    assert plan.json()["name"] == "Free" and plan.json()["livemode"] is True

    seen = client.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
    assert seen["active"] is True
    assert seen["client_id"] == world.client_id
    assert seen["project_id"] == world.project_id
    assert seen["scope"] == " ".join(GRANTED)
    assert seen["token_type"] == "Bearer"

    # Refresh rotates both tokens; the old refresh token is retired.
    old = dict(token)
    new = client.refresh_token(meta["token_endpoint"])
    assert new["refresh_token"] != old["refresh_token"]
    assert new["access_token"] != old["access_token"]
    assert new["scopes"] == GRANTED and new["project_id"] == world.project_id
    assert world.plan(new["access_token"]).status_code == 200
    assert world.introspect(old["refresh_token"])["active"] is False
    assert world.introspect(new["refresh_token"])["active"] is True

    # Revoke the current access token (RFC 7009): the API refuses it, introspection says inactive.
    revoked = client.revoke_token(
        meta["revocation_endpoint"], token=new["access_token"], token_type_hint="access_token"
    )
    assert revoked.status_code == 200, revoked.text
    assert_invalid_token(world.plan(new["access_token"]))
    assert client.introspect_token(meta["introspection_endpoint"], token=new["access_token"]).json() == {
        "active": False
    }

    # Revoking the refresh token ends the grant: no more refreshes.
    revoked = client.revoke_token(
        meta["revocation_endpoint"], token=new["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200, revoked.text
    assert world.introspect(new["refresh_token"])["active"] is False
    with pytest.raises(OAuthError) as refused:
        client.refresh_token(meta["token_endpoint"], refresh_token=new["refresh_token"])
    assert refused.value.error == "invalid_grant"


def test_authlib_reusing_a_rotated_refresh_token_revokes_the_family(world: World) -> None:
    meta = world.metadata
    client = authlib_session(world)
    first = dict(authlib_connect(world, client))
    second = dict(client.refresh_token(meta["token_endpoint"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert world.plan(second["access_token"]).status_code == 200

    with pytest.raises(OAuthError) as refused:
        client.refresh_token(meta["token_endpoint"], refresh_token=first["refresh_token"])
    assert refused.value.error == "invalid_grant"

    # Every token of the authorization is dead now, including the ones the legitimate refresh issued.
    assert_invalid_token(world.plan(second["access_token"]))
    assert_invalid_token(world.plan(first["access_token"]))
    assert world.introspect(second["refresh_token"])["active"] is False
    with pytest.raises(OAuthError) as refused:
        client.refresh_token(meta["token_endpoint"], refresh_token=second["refresh_token"])
    assert refused.value.error == "invalid_grant"


def test_authlib_code_replay_is_refused_and_revokes_the_first_tokens(world: World) -> None:
    meta = world.metadata
    client = authlib_session(world)
    verifier = generate_token(48)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    location = Browser(world.base).authorize(url, CUSTOMER, project=world.project_id)
    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=location, code_verifier=verifier, state=state
    )
    assert world.plan(token["access_token"]).status_code == 200

    with pytest.raises(OAuthError) as refused:
        client.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier, state=state)
    assert refused.value.error == "invalid_grant"
    assert_invalid_token(world.plan(token["access_token"]))


def test_authlib_pkce_verifier_is_checked(world: World) -> None:
    meta = world.metadata
    client = authlib_session(world)
    verifier = generate_token(48)
    url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
    location = Browser(world.base).authorize(url, CUSTOMER, project=world.project_id)

    with pytest.raises(OAuthError) as refused:
        client.fetch_token(
            meta["token_endpoint"], authorization_response=location, code_verifier=generate_token(48), state=state
        )
    assert refused.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(meta["token_endpoint"], authorization_response=location, state=state)
    assert refused.value.error == "invalid_request"  # RFC 7636 §4.4.1: the verifier is missing


def test_authlib_test_public_key_gives_test_mode_tokens(world: World) -> None:
    client = authlib_session(world)
    token = authlib_connect(
        world,
        client,
        public_key=world.test_public_key,
        origin="https://snapflow.example",
        ux_mode="redirect",
    )
    assert_token_response(token, world, livemode=False)
    plan = client.get(f"{world.api}/plan")
    assert plan.status_code == 200, plan.text
    assert plan.json()["livemode"] is False
    assert world.introspect(token["access_token"])["livemode"] is False
    refreshed = client.refresh_token(world.metadata["token_endpoint"])
    assert refreshed["livemode"] is False


# --- requests-oauthlib ---------------------------------------------------------------------------------


def oauthlib_session(world: World, scope: list[str]) -> OAuthlibSession:
    return OAuthlibSession(world.client_id, redirect_uri=REDIRECT_URI, scope=scope, pkce="S256")


def oauthlib_authorize(world: World, oauth: OAuthlibSession) -> str:
    url, state = oauth.authorization_url(world.metadata["authorization_endpoint"])
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    location = Browser(world.base).authorize(url, CUSTOMER, project=world.project_id)
    assert parse_qs(urlsplit(location).query)["state"] == [state]
    return location


def oauthlib_credentials(world: World, style: str) -> dict[str, Any]:
    if style == "basic":
        return {"include_client_id": False, "auth": world.basic()}
    return {"include_client_id": True, "client_secret": world.client_secret}


@pytest.mark.parametrize("style", ["basic", "post"])
def test_requests_oauthlib_code_flow_with_pkce(world: World, style: str) -> None:
    meta = world.metadata
    # plan:read is always granted; asking for it keeps oauthlib from raising "Scope has changed".
    oauth = oauthlib_session(world, GRANTED)
    location = oauthlib_authorize(world, oauth)
    token = oauth.fetch_token(
        meta["token_endpoint"], authorization_response=location, timeout=TIMEOUT, **oauthlib_credentials(world, style)
    )
    assert_token_response(token, world)

    plan = oauth.get(f"{world.api}/plan", timeout=TIMEOUT)
    assert plan.status_code == 200, plan.text
    assert plan.json()["name"] == "Free"

    if style == "basic":
        refreshed = oauth.refresh_token(meta["token_endpoint"], auth=world.basic(), timeout=TIMEOUT)
    else:
        refreshed = oauth.refresh_token(
            meta["token_endpoint"], client_id=world.client_id, client_secret=world.client_secret, timeout=TIMEOUT
        )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["access_token"] != token["access_token"]
    assert oauth.get(f"{world.api}/plan", timeout=TIMEOUT).status_code == 200

    # requests-oauthlib has no revocation helper: a plain authenticated POST to the discovered endpoint.
    if style == "basic":
        revoked = requests.post(
            meta["revocation_endpoint"],
            data={"token": refreshed["refresh_token"], "token_type_hint": "refresh_token"},
            auth=world.basic(),
            timeout=TIMEOUT,
        )
    else:
        revoked = requests.post(
            meta["revocation_endpoint"],
            data={
                "token": refreshed["refresh_token"],
                "token_type_hint": "refresh_token",
                "client_id": world.client_id,
                "client_secret": world.client_secret,
            },
            timeout=TIMEOUT,
        )
    assert revoked.status_code == 200, revoked.text
    # Revoking a refresh token revokes the access tokens of that grant too (RFC 7009 §2.1).
    assert_invalid_token(oauth.get(f"{world.api}/plan", timeout=TIMEOUT))
    with pytest.raises(InvalidGrantError):
        oauth.refresh_token(meta["token_endpoint"], auth=world.basic(), timeout=TIMEOUT)


def test_requests_oauthlib_sees_plan_read_added_to_the_scope(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server may grant more than asked (RFC 6749 §3.3): plan:read always comes along. oauthlib
    treats a changed scope as an error unless OAUTHLIB_RELAX_TOKEN_SCOPE is set — what the guide says."""
    meta = world.metadata
    oauth = oauthlib_session(world, SCOPE.split())
    location = oauthlib_authorize(world, oauth)
    with pytest.raises(Warning, match="Scope has changed") as strict:
        oauth.fetch_token(
            meta["token_endpoint"],
            authorization_response=location,
            timeout=TIMEOUT,
            **oauthlib_credentials(world, "basic"),
        )
    assert strict.value.token["scopes"] == GRANTED

    monkeypatch.setenv("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
    oauth = oauthlib_session(world, SCOPE.split())
    location = oauthlib_authorize(world, oauth)
    token = oauth.fetch_token(
        meta["token_endpoint"], authorization_response=location, timeout=TIMEOUT, **oauthlib_credentials(world, "basic")
    )
    assert token["scope"] == GRANTED  # oauthlib splits the scope string into a list
    assert oauth.get(f"{world.api}/plan", timeout=TIMEOUT).status_code == 200


# --- protocol conformance as a client sees it ------------------------------------------------------------


def test_every_metadata_url_answers(world: World) -> None:
    """Every URL the metadata advertises (RFC 8414 §2) is served: the authorization endpoint by GET, the
    others by POST (a request without credentials is refused, but not with a 404 or 405)."""
    urls = {k: v for k, v in world.metadata.items() if isinstance(v, str) and v.startswith("http") and k != "issuer"}
    assert set(urls) >= {"authorization_endpoint", "token_endpoint", "revocation_endpoint", "introspection_endpoint"}
    for key, url in urls.items():
        if key == "authorization_endpoint":
            response = requests.get(url, timeout=TIMEOUT, allow_redirects=False)
        else:
            response = requests.post(url, data={}, timeout=TIMEOUT)
        assert response.status_code not in {404, 405}, f"{key} {url} answered {response.status_code}"


def test_a_repeated_token_request_parameter_is_refused(world: World) -> None:
    """RFC 6749 §3.2: request parameters MUST NOT be included more than once; §5.2: a request that
    repeats a parameter is invalid_request. The server must not silently pick one of the values."""
    token = authlib_connect(world, authlib_session(world))
    body = [
        ("grant_type", "refresh_token"),
        ("refresh_token", token["refresh_token"]),
        ("refresh_token", "ort_someone_elses_token"),
    ]
    response = requests.post(world.metadata["token_endpoint"], data=body, auth=world.basic(), timeout=TIMEOUT)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


def test_an_unknown_token_type_hint_is_ignored(world: World) -> None:
    """RFC 7009 §2.1: an invalid token type hint "is ignored by the authorization server and does not influence
    the revocation response" (unsupported_token_type, §2.2.1, is for a type the server cannot revoke); RFC 7662
    §2.1 lets introspection ignore a hint it does not know."""
    token = authlib_connect(world, authlib_session(world))
    data = {"token": token["access_token"], "token_type_hint": "id_token"}
    introspection = requests.post(
        world.metadata["introspection_endpoint"], data=data, auth=world.basic(), timeout=TIMEOUT
    )
    assert introspection.status_code == 200 and introspection.json()["active"] is True, introspection.text
    revocation = requests.post(world.metadata["revocation_endpoint"], data=data, auth=world.basic(), timeout=TIMEOUT)
    assert (revocation.status_code, revocation.json()) == (200, {}), revocation.text
    introspection = requests.post(
        world.metadata["introspection_endpoint"], data=data, auth=world.basic(), timeout=TIMEOUT
    )
    assert introspection.json() == {"active": False}
