"""Pieces of apertur.oauth.server that stand in for Django's own request parsing on the token endpoints, and
its error answers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from authlib.oauth2.base import invalid_error_characters
from django.core.exceptions import BadRequest, TooManyFieldsSent
from django.test import Client, RequestFactory

from apertur.oauth.models import AuthorizationCode, Token
from apertur.oauth.server import GENERIC_DESCRIPTIONS, EnvironHeaders, form_params
from apertur.oauth.tests.conftest import Flow, api_get
from apertur.testing import REDIRECT_URI, make_app


def post(body: bytes, content_type: str) -> Any:
    # CONTENT_TYPE given outright: the factory leaves it out of a request without a body.
    return RequestFactory().generic(
        "POST", "/oauth/token", data=body, content_type=content_type, CONTENT_TYPE=content_type
    )


BODIES = [
    b"",
    b"a=1&b=&c&a=2",
    b"x=%20y+z&%C3%A9=%E2%82%AC&plus=a%2Bb",
    b"bad=%FF%FE&ok=1",
    b"raw=\xff\xfe&k=v",
    b";a=1;b=2&c=3",
    b"token=oat_abc&token_type_hint=access_token&client_id=aptr_ci_x&client_secret=aptr_cs_y",
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("charset", ["", "; charset=utf-8", "; charset=iso-8859-1"])
def test_form_params_is_what_django_parses(body: bytes, charset: str) -> None:
    content_type = "application/x-www-form-urlencoded" + charset
    request = post(body, content_type)
    if "iso-8859-1" in charset:  # Django refuses a form body in any charset but UTF-8
        with pytest.raises(BadRequest):
            _ = request.POST
        with pytest.raises(BadRequest):
            form_params(post(body, content_type))
        return
    ours = form_params(post(body, content_type))
    assert ours == {k: request.POST.getlist(k) for k in request.POST}


def test_form_params_keeps_djangos_field_limit(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    body = b"a=1&b=2&c=3&d=4"
    content_type = "application/x-www-form-urlencoded"
    with pytest.raises(TooManyFieldsSent):
        form_params(post(body, content_type))
    with pytest.raises(TooManyFieldsSent):
        _ = post(body, content_type).POST


def test_environ_headers_read_like_djangos() -> None:
    request = RequestFactory().post(
        "/oauth/token", data=b"", content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION="Basic abc"
    )
    headers = EnvironHeaders(request.META)
    for name in ("Authorization", "authorization", "Content-Type", "X-Missing"):
        assert headers.get(name) == request.headers.get(name)
    assert dict(headers) == dict(request.headers)
    assert bool(EnvironHeaders({}))


# --- error answers: RFC 6749 §5.2 JSON, always with an error_description --------------------------------------

TOKEN_PATHS = ["/oauth/token", "/api/v1/oauth/token"]


def _credentials(flow: Flow) -> dict[str, str]:
    return {"client_id": flow.client_id, "client_secret": flow.secret}


def _refresh(flow: Flow, refresh_token: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, **_credentials(flow), **extra}


def _revoked_refresh_token(flow: Flow) -> str:
    tokens = flow.tokens()
    data = {"token": tokens["refresh_token"], **_credentials(flow)}
    assert Client().post("/oauth/revoke", data).status_code == 200
    return str(tokens["refresh_token"])


def _deactivated_customers_refresh_token(flow: Flow) -> str:
    tokens = flow.tokens()
    flow.customer.is_active = False
    flow.customer.save()
    return str(tokens["refresh_token"])


def _other_client(flow: Flow) -> dict[str, str]:
    other = make_app(flow.created.app.partner, name="Other")
    return {"client_id": other.app.client_id, "client_secret": other.client_secret}


# Each case: the form body to POST (built from the flow), the error and the status.
FormCase = Callable[[Flow], dict[str, str]]
TOKEN_ERRORS: list[Any] = [
    pytest.param(lambda f: {}, "invalid_request", 400, id="no-grant-type"),
    pytest.param(lambda f: {"grant_type": "password", **_credentials(f)}, "unsupported_grant_type", 400, id="password"),
    # Authlib's description echoed the value ("grant_type=... is not supported"), quotes and all: RFC 6749 §5.2
    # keeps '"', '\\' and anything outside printable ASCII out of error_description.
    pytest.param(
        lambda f: {"grant_type": 'a"b\\c', **_credentials(f)}, "unsupported_grant_type", 400, id="quoted-type"
    ),
    pytest.param(
        lambda f: {"grant_type": "caf\u00e9", **_credentials(f)}, "unsupported_grant_type", 400, id="non-ascii"
    ),
    pytest.param(lambda f: {"grant_type": "authorization_code", "code": "x"}, "invalid_client", 401, id="no-client"),
    pytest.param(
        lambda f: {"grant_type": "authorization_code", "code": "x", "client_id": f.client_id, "client_secret": "no"},
        "invalid_client",
        401,
        id="wrong-secret",
    ),
    pytest.param(
        lambda f: {"grant_type": "authorization_code", **_credentials(f)}, "invalid_request", 400, id="no-code"
    ),
    pytest.param(
        lambda f: {"grant_type": "authorization_code", "code": "x", **_credentials(f)},
        "invalid_grant",
        400,
        id="unknown-code",
    ),
    pytest.param(lambda f: {"grant_type": "refresh_token", **_credentials(f)}, "invalid_request", 400, id="no-refresh"),
    pytest.param(lambda f: _refresh(f, "ort_unknown"), "invalid_grant", 400, id="unknown-refresh"),
    pytest.param(lambda f: _refresh(f, _revoked_refresh_token(f)), "invalid_grant", 400, id="revoked-refresh"),
    pytest.param(
        lambda f: {**_refresh(f, f.tokens()["refresh_token"]), **_other_client(f)},
        "invalid_grant",
        400,
        id="another-clients-refresh",
    ),
    # RFC 6749 §5.2: a refresh token whose grant no longer stands is invalid_grant; Authlib answered
    # invalid_request ("There is no 'user' for this token."), which tells the client its request was malformed.
    pytest.param(
        lambda f: _refresh(f, _deactivated_customers_refresh_token(f)), "invalid_grant", 400, id="customer-deactivated"
    ),
    pytest.param(
        lambda f: _refresh(f, f.tokens()["refresh_token"], scope="admin:all"), "invalid_scope", 400, id="unknown-scope"
    ),
]
REVOKE_ERRORS: list[Any] = [
    pytest.param(lambda f: {"token": "oat_x"}, "invalid_client", 401, id="no-client"),
    pytest.param(lambda f: _credentials(f), "invalid_request", 400, id="no-token"),
    pytest.param(
        lambda f: {"token": f.tokens()["access_token"], **_other_client(f)},
        "invalid_grant",
        400,
        id="another-clients-token",
    ),
]
INTROSPECT_ERRORS: list[Any] = [
    pytest.param(lambda f: {"token": "oat_x"}, "invalid_client", 401, id="no-client"),
    pytest.param(lambda f: _credentials(f), "invalid_request", 400, id="no-token"),
]


def assert_described_error(response: Any, error: str, status: int) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    description = body.get("error_description")
    assert description, body
    assert not invalid_error_characters(description)  # RFC 6749 §5.2


@pytest.mark.django_db
@pytest.mark.parametrize("path", TOKEN_PATHS)
@pytest.mark.parametrize(("build", "error", "status"), TOKEN_ERRORS)
def test_token_errors_are_described(flow: Flow, path: str, build: FormCase, error: str, status: int) -> None:
    assert_described_error(Client().post(path, build(flow)), error, status)


@pytest.mark.django_db
@pytest.mark.parametrize(("build", "error", "status"), REVOKE_ERRORS)
def test_revocation_errors_are_described(flow: Flow, build: FormCase, error: str, status: int) -> None:
    assert_described_error(Client().post("/oauth/revoke", build(flow)), error, status)


@pytest.mark.django_db
@pytest.mark.parametrize(("build", "error", "status"), INTROSPECT_ERRORS)
def test_introspection_errors_are_described(flow: Flow, build: FormCase, error: str, status: int) -> None:
    assert_described_error(Client().post("/oauth/introspect", build(flow)), error, status)


@pytest.mark.django_db
@pytest.mark.parametrize("path", [*TOKEN_PATHS, "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1]", "application/json"),
        ("token=a&token=b&grant_type=x&grant_type=y", "application/x-www-form-urlencoded"),
        # a repeated name outside what error_description may hold (RFC 6749 §5.2): building the error failed (500)
        ("a%22b=1&a%22b=2&caf%C3%A9=1&caf%C3%A9=2", "application/x-www-form-urlencoded"),
        # The JSON twin of a repeated parameter: json.loads kept the last copy, a proxy may read the first.
        ('{"token": "a", "token": "b", "grant_type": "x", "grant_type": "y"}', "application/json"),
        # nested deeper than the JSON parser recurses: a RecursionError (500)
        ('{"token": ' + "[" * 100_000, "application/json"),
    ],
    ids=["bad-json", "json-not-object", "repeated-parameter", "repeated-odd-name", "repeated-json-key", "deep-json"],
)
def test_malformed_bodies_are_described(path: str, body: str, content_type: str) -> None:
    assert_described_error(Client().post(path, body, content_type=content_type), "invalid_request", 400)


CLIENT_AUTH_FAILURES: list[Any] = [
    pytest.param(lambda f: ({"client_id": f.client_id, "client_secret": "aptr_cs_wrong"}, None), id="wrong-secret"),
    pytest.param(lambda f: ({"client_id": "aptr_ci_nobody", "client_secret": f.secret}, None), id="unknown-client"),
    pytest.param(lambda f: ({}, None), id="no-client"),
    pytest.param(lambda f: ({"client_id": f.client_id}, None), id="no-secret"),
    pytest.param(lambda f: ({}, (f.client_id, "aptr_cs_wrong")), id="basic-wrong-secret"),
    pytest.param(lambda f: ({}, ("aptr_ci_nobody", f.secret)), id="basic-unknown-client"),
    # PostgreSQL refuses a NUL in a query parameter: the client lookup failed with a 500.
    pytest.param(lambda f: ({"client_id": "aptr_ci_\x00", "client_secret": f.secret}, None), id="nul-client-id"),
    pytest.param(lambda f: ({}, ("aptr_ci_\x00", f.secret)), id="basic-nul-client-id"),
]
CLIENT_AUTH_BODIES = {
    "/oauth/token": {"grant_type": "authorization_code", "code": "oac_x", "redirect_uri": "https://x.example/cb"},
    "/api/v1/oauth/token": {"grant_type": "refresh_token", "refresh_token": "ort_x"},
    "/oauth/revoke": {"token": "oat_x"},
    "/oauth/introspect": {"token": "oat_x"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(CLIENT_AUTH_BODIES))
@pytest.mark.parametrize("build", CLIENT_AUTH_FAILURES)
def test_failed_client_authentication_says_what_to_check(flow: Flow, path: str, build: Callable[..., Any]) -> None:
    """Authlib's "The client cannot authenticate with methods: [...]" named no fix; "does not exist" would
    tell an unknown client_id from a wrong secret. One description for all, in body and challenge."""
    credentials, basic = build(flow)
    headers = {}
    if basic is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
    response = Client().post(path, {**CLIENT_AUTH_BODIES[path], **credentials}, **headers)
    assert_described_error(response, "invalid_client", 401)  # RFC 6749 §5.2
    assert response.json() == {"error": "invalid_client", "error_description": GENERIC_DESCRIPTIONS["invalid_client"]}
    assert "check client_id and client_secret" in GENERIC_DESCRIPTIONS["invalid_client"]
    # RFC 7617 §2: realm is required in a Basic challenge (Authlib's had none); the API's Bearer one names the same
    assert response["WWW-Authenticate"] == (
        f'Basic realm="apertur", error="invalid_client", error_description="{GENERIC_DESCRIPTIONS["invalid_client"]}"'
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(CLIENT_AUTH_BODIES))
@pytest.mark.parametrize(
    "header",
    [
        "Basic caf\u00e9",  # not base64 (a header's bytes reach Django as Latin-1 text)
        "Basic " + base64.b64encode(b"\xff\xfe:secret").decode(),  # base64, but not UTF-8 inside
        "Basic  ",  # the scheme and blanks
        "Basic \t",
    ],
    ids=["not-ascii", "not-utf8", "blank", "tab"],
)
def test_unreadable_basic_credentials_are_invalid_client(flow: Flow, path: str, header: str) -> None:
    """RFC 6749 §5.2: client authentication that fails is invalid_client (401, with the Basic challenge when
    HTTP Basic was tried), like Basic credentials that decode to an unknown client. These crashed (500): Django's
    base64 of the rate-limit key, or Authlib's parsing of the header."""
    response = Client().post(path, CLIENT_AUTH_BODIES[path], HTTP_AUTHORIZATION=header)
    assert_described_error(response, "invalid_client", 401)
    assert response["WWW-Authenticate"].startswith('Basic realm="apertur", error="invalid_client"')


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(CLIENT_AUTH_BODIES))
def test_a_client_id_that_is_not_unicode_is_an_unknown_client(flow: Flow, path: str) -> None:
    """JSON can spell a lone surrogate (``"\\ud800"``), which no database driver can encode: the client lookup
    failed with a 500."""
    body = json.dumps({**CLIENT_AUTH_BODIES[path], "client_id": "aptr_ci_\ud800", "client_secret": flow.secret})
    response = Client().post(path, body, content_type="application/json")
    assert_described_error(response, "invalid_client", 401)


@pytest.mark.django_db
@pytest.mark.parametrize("client_id", ["aptr_ci_\ud800", "aptr ci", "aptr_ci_\r\nforged log line"])
def test_odd_client_ids_do_not_reach_a_shared_rate_limit_key(flow: Flow, client_id: str, settings: Any) -> None:
    """With a shared cache (Redis in production; Django's dummy cache here, which validates keys the same way) the
    per-client token budget was keyed with the client_id as sent: a lone surrogate failed to encode for Redis (a
    500), a space or CR/LF made Django warn with the key in the log (an error under the test settings)."""
    from django.core.cache import caches
    from django.core.cache.backends.dummy import DummyCache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert isinstance(caches["default"], DummyCache)
    body = json.dumps({**CLIENT_AUTH_BODIES["/oauth/token"], "client_id": client_id, "client_secret": flow.secret})
    response = Client().post("/oauth/token", body, content_type="application/json")
    assert_described_error(response, "invalid_client", 401)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/oauth/token", "/api/v1/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_redis_down_is_answered_in_oauth_json(path: str, redis_down: None) -> None:
    """The token endpoints count every request in Redis: with Redis down they answered Django's HTML 500 page, not
    RFC 6749 JSON. Now 503 ``temporarily_unavailable`` (the RFC's name for it), never cached."""
    body = {**CLIENT_AUTH_BODIES[path], "client_id": "x", "client_secret": "x"}
    response = Client(raise_request_exception=False).post(path, body)
    assert response.status_code == 503, response.content[:200]
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.json()["error_description"]
    assert response["Cache-Control"] == "no-store"


def test_generic_descriptions_use_only_the_allowed_characters() -> None:
    for description in GENERIC_DESCRIPTIONS.values():
        assert description and not invalid_error_characters(description)


# --- one client authentication method per request (RFC 6749 §2.3) ---------------------------------------------


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


# Each case: the HTTP Basic credentials and the body credentials, built from the flow. Before the fix Authlib took
# the first method that succeeded and ignored the other: each of these was answered 200.
SEVERAL_CREDENTIALS: list[Any] = [
    pytest.param(
        lambda f: ((f.client_id, f.secret), {"client_id": f.client_id, "client_secret": "aptr_cs_wrong"}),
        id="basic-right-body-secret-wrong",
    ),
    pytest.param(
        lambda f: ((f.client_id, "aptr_cs_wrong"), {"client_id": f.client_id, "client_secret": f.secret}),
        id="basic-wrong-body-secret-right",
    ),
    pytest.param(
        lambda f: ((f.client_id, f.secret), {"client_id": f.client_id, "client_secret": f.secret}),
        id="both-right",
    ),
    pytest.param(lambda f: ((f.client_id, f.secret), {"client_id": "aptr_ci_someone_else"}), id="body-other-client-id"),
]


def _assert_one_method_required(response: Any) -> None:
    assert_described_error(response, "invalid_request", 400)  # RFC 6749 §5.2: "more than one mechanism"
    assert "WWW-Authenticate" not in response


@pytest.mark.django_db
@pytest.mark.parametrize("build", SEVERAL_CREDENTIALS)
def test_token_endpoint_refuses_several_client_credentials(flow: Flow, build: Callable[..., Any]) -> None:
    basic, body = build(flow)
    code = flow.code()
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    _assert_one_method_required(Client().post("/oauth/token", {**grant, **body}, **_basic(*basic)))
    assert not Token.objects.exists()
    assert AuthorizationCode.objects.get().used_at is None  # refused before the code was looked at


@pytest.mark.django_db
@pytest.mark.parametrize("build", SEVERAL_CREDENTIALS)
def test_revocation_refuses_several_client_credentials(flow: Flow, build: Callable[..., Any]) -> None:
    basic, body = build(flow)
    access_token = flow.tokens()["access_token"]
    _assert_one_method_required(Client().post("/oauth/revoke", {"token": access_token, **body}, **_basic(*basic)))
    assert api_get("/api/v1/plan", access_token).status_code == 200  # not revoked


@pytest.mark.django_db
@pytest.mark.parametrize("build", SEVERAL_CREDENTIALS)
def test_introspection_refuses_several_client_credentials(flow: Flow, build: Callable[..., Any]) -> None:
    basic, body = build(flow)
    access_token = flow.tokens()["access_token"]
    _assert_one_method_required(Client().post("/oauth/introspect", {"token": access_token, **body}, **_basic(*basic)))


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(CLIENT_AUTH_BODIES))
def test_basic_with_its_own_client_id_in_the_body_is_one_method(flow: Flow, path: str) -> None:
    """A body client_id alone authenticates nothing; many client libraries send it with HTTP Basic (RFC 6749
    §4.1.3 makes it optional, not forbidden, for a client that authenticates)."""
    body = {**CLIENT_AUTH_BODIES[path], "client_id": flow.client_id}
    if path == "/oauth/token":
        body["code"] = flow.code()
        body["redirect_uri"] = REDIRECT_URI
    response = Client().post(path, body, **_basic(flow.client_id, flow.secret))
    if path == "/api/v1/oauth/token":  # an unknown refresh token: the client did authenticate
        assert response.json()["error"] == "invalid_grant"
    else:
        assert response.status_code == 200, response.content
