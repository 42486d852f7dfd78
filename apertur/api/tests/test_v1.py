"""The API's own request and response handling (apertur/api/v1.py): body parsing and error format."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api
from apertur.oauth.tests.conftest import Flow
from apertur.projects.models import Project
from apertur.uploads.models import UploadSession
from apertur.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


def send(api: Api, method: str, path: str, raw: str) -> object:
    return Client().generic(
        method,
        f"/api/v1{path}",
        raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )


@pytest.mark.parametrize("raw", ['"hello world"', "[null, null]", "[]", "123", "true", "null", '"str"'])
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/upload-sessions"), ("PATCH", "/project/settings"), ("POST", "/webhooks")],
)
def test_a_body_that_is_not_an_object_is_refused(api: Api, flow: Flow, raw: str, method: str, path: str) -> None:
    before = Project.objects.get(pk=flow.project.pk).settings_json()
    response = send(api, method, path, raw)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["message"] == "The body must be a JSON object."
    assert UploadSession.objects.count() == 0 and WebhookEndpoint.objects.count() == 0
    assert Project.objects.get(pk=flow.project.pk).settings_json() == before


def test_a_body_that_is_not_json_is_still_invalid_request(api: Api) -> None:
    response = send(api, "POST", "/upload-sessions", "{nope")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": "The request body is not valid JSON.",
        "request_id": response["X-Request-Id"],
    }


def test_an_object_body_still_works(api: Api) -> None:
    response = send(api, "POST", "/upload-sessions", json.dumps({"title": "hello world"}))
    assert response.status_code == 201 and response.json()["title"] == "hello world"


def test_a_body_over_the_limit_is_a_json_413(api: Api, settings: object) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_048_576  # type: ignore[attr-defined]
    response = send(api, "POST", "/upload-sessions", json.dumps({"title": "big", "password": "x" * 1_100_000}))
    assert response.status_code == 413, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "1 MiB" in response.json()["error"]["message"]
    assert UploadSession.objects.count() == 0


@pytest.mark.parametrize(("method", "path"), [("GET", "/plan"), ("GET", "/upload-sessions"), ("POST", "/webhooks")])
def test_every_api_response_is_no_store(api: Api, method: str, path: str) -> None:
    body = json.dumps({"url": "https://hooks.example.com/x"}) if method == "POST" else ""
    response = send(api, method, path, body)
    assert response.status_code in (200, 201), response.content
    assert response["Cache-Control"] == "no-store"
    if method == "POST":
        assert response.json()["secret"].startswith("whsec_")  # the secret shown once is never cached


@pytest.mark.parametrize("path", ["/plan", "/upload-sessions", "/project/settings", "/openapi.json"])
def test_head_answers_like_get_without_content(api: Api, path: str) -> None:
    """RFC 9110 §9.3.2."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"}
    get = Client().get(f"/api/v1{path}", **auth)
    head = Client().head(f"/api/v1{path}", **auth)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]
    assert head["Content-Length"] == str(len(get.content))
    assert head["Cache-Control"] == get["Cache-Control"]


def test_head_is_still_authenticated_and_allow_lists_it(api: Api) -> None:
    assert Client().head("/api/v1/plan").status_code == 401
    refused = Client().put("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert refused.status_code == 405 and refused["Allow"] == "GET, HEAD"
    post_only = Client().head("/api/v1/upload-sessions/ses_x/close", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert post_only.status_code == 405 and "HEAD" not in post_only["Allow"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/upload-sessions", {"title": "x", "max_files": "12"}, "max_files"),
        ("POST", "/upload-sessions", {"title": 5}, "title"),
        ("PATCH", "/project/settings", {"notify_owner_on_upload": "yes"}, "notify_owner_on_upload"),
        ("PATCH", "/project/settings", {"default_max_files": "50"}, "default_max_files"),
        ("POST", "/webhooks", {"url": "https://hooks.example.com/x", "description": 1}, "description"),
    ],
)
def test_json_bodies_are_strictly_typed(api: Api, flow: Flow, method: str, path: str, body: dict, field: str) -> None:
    before = Project.objects.get(pk=flow.project.pk).settings_json()
    response = send(api, method, path, json.dumps(body))
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"] == field
    assert UploadSession.objects.count() == 0 and WebhookEndpoint.objects.count() == 0
    assert Project.objects.get(pk=flow.project.pk).settings_json() == before


def test_query_parameters_stay_lax(api: Api) -> None:
    assert api.get("/upload-sessions", limit="5").status_code == 200


def test_openapi_lists_errors_scopes_and_limits() -> None:
    schema = Client().get("/api/v1/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"OAuth2", "SecretKey"}
    error_ref = {"$ref": "#/components/schemas/Error"}
    create = schema["paths"]["/api/v1/upload-sessions"]["post"]
    assert create["security"] == [{"OAuth2": ["upload:create"]}, {"SecretKey": []}]
    assert {"201", "400", "401", "403", "409", "413", "422", "429"} <= set(create["responses"])
    assert create["responses"]["401"]["content"]["application/json"]["schema"] == error_ref
    assert "WWW-Authenticate" in create["responses"]["403"]["headers"]
    assert "Retry-After" in create["responses"]["429"]["headers"]
    one = schema["paths"]["/api/v1/upload-sessions/{session_id}"]["get"]
    assert "404" in one["responses"] and "422" not in one["responses"]
    listing = schema["paths"]["/api/v1/upload-sessions"]["get"]
    [limit] = [p for p in listing["parameters"] if p["name"] == "limit"]
    bounds = next(s for s in limit["schema"]["anyOf"] if s.get("type") == "integer")
    assert bounds["minimum"] == 1 and bounds["maximum"] == 100
    session_in = schema["components"]["schemas"]["SessionIn"]["properties"]
    assert session_in["title"]["minLength"] == 1 and session_in["title"]["maxLength"] == 120
    max_files = next(s for s in session_in["max_files"]["anyOf"] if s.get("type") == "integer")
    assert max_files["maximum"] == 100_000
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path.endswith("/oauth/token"):
                continue
            assert operation["security"][0]["OAuth2"], (method, path)
            assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)


def test_a_nul_in_the_path_or_the_query_is_an_api_error_not_a_database_error(api: Api) -> None:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"}
    in_path = Client().get("/api/v1/upload-sessions/ses_%00x", **auth)
    assert in_path.status_code == 404
    assert in_path.json()["error"]["code"] == "not_found"
    assert in_path.json()["error"]["request_id"] == in_path["X-Request-Id"]
    in_query = Client().get("/api/v1/upload-sessions?cursor=%00", **auth)
    assert in_query.status_code == 400
    assert in_query.json()["error"] == {
        "code": "invalid_request",
        "message": "The query string contains a NUL character (%00), which no parameter takes.",
        "request_id": in_query["X-Request-Id"],
    }


def test_an_unexpected_error_is_a_json_500_with_the_request_id(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.api import routes

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes, "plan_json", broken)
    response = Client(raise_request_exception=False).get(
        "/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {api.token}", HTTP_X_REQUEST_ID="req_support_me_1"
    )
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == {
        "code": "server_error",
        "message": "Something went wrong on Apertur's side. Quote the request id to support.",
        "request_id": "req_support_me_1",
    }
    assert response["X-Request-Id"] == "req_support_me_1" and response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "body",
    [{"title": "a\u0000b"}, {"title": "t", "accepted_types": ["image/\u0000"]}, {"ti\u0000tle": "t"}],
    ids=["value", "in-a-list", "member-name"],
)
def test_a_json_body_holding_a_nul_is_refused_and_changes_nothing(api: Api, body: dict[str, object]) -> None:
    response = send(api, "POST", "/upload-sessions", json.dumps(body))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["message"] == "The body contains a NUL character (\\u0000), which no field takes."
    assert UploadSession.objects.count() == 0


@pytest.mark.parametrize(
    "raw",
    ['{"title": "\\ud800"}', '{"title": "t", "accepted_types": ["image/\\udfff"]}', '{"ti\\ud800tle": "t"}'],
    ids=["value", "in-a-list", "member-name"],
)
def test_a_json_body_holding_a_lone_surrogate_is_refused_and_changes_nothing(api: Api, raw: str) -> None:
    """``"\\ud800"`` is valid JSON syntax but no Unicode text: Python reads it into a string that cannot be encoded
    as UTF-8, and the database driver's encoding of it was a 500 (the hostile-input test found it)."""
    response = send(api, "POST", "/upload-sessions", raw)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_request"
    assert "surrogate" in response.json()["error"]["message"]
    assert UploadSession.objects.count() == 0


def test_a_literal_backslash_u0000_is_just_text(api: Api) -> None:
    response = send(api, "POST", "/upload-sessions", json.dumps({"title": "see \\u0000 here"}))
    assert response.status_code == 201 and response.json()["title"] == "see \\u0000 here"


def test_openapi_lists_the_404_of_an_unknown_session_id_filter(api: Api) -> None:
    """GET /uploads?session_id=<another project's or unknown session> answers 404 (no path parameter, but an id
    in the query): the OpenAPI document must say so, as it does for /upload-sessions/{session_id}."""
    assert api.get("/uploads", session_id="ses_nope").status_code == 404
    schema = Client().get("/api/v1/openapi.json").json()
    uploads = schema["paths"]["/api/v1/uploads"]["get"]
    assert uploads["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def test_redis_down_is_a_json_503_the_caller_can_retry(api: Api, redis_down: None) -> None:
    """Every API call is counted in Redis: with Redis down it was a 500 ``server_error`` ("quote the request id to
    support"); it is a 503 ``service_unavailable`` instead, which says nothing was done and to try again."""
    response = api.get("/plan")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable" and "try again" in error["message"]
    assert response["Cache-Control"] == "no-store"


def test_redis_down_with_the_shared_token_cache_is_the_same_503(api: Api, settings: object, redis_down: None) -> None:
    """With the access-token checks cached in Redis (APERTUR_TOKEN_CACHE=1), Redis down failed the bearer check
    itself: a 500 ``server_error``. The cache is only a cache: a lookup that cannot reach it is a miss (the
    database answers), and the call gets the rate limits' 503 like every other."""
    settings.APERTUR_TOKEN_CACHE = "shared"  # type: ignore[attr-defined]
    response = Client(raise_request_exception=False).get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


def test_openapi_lists_the_400_and_503_every_operation_can_answer() -> None:
    """Any operation answers ``400 invalid_request`` to ``Authorization: Bearer`` without a token (or a query holding
    ``%00``), and ``503 service_unavailable`` when Redis is out of reach (docs/api.md, Errors): the document listed
    the 400 only for operations with a body and the 503 for none, so a generated client had no type for either."""
    for path in ("/plan", "/upload-sessions", "/webhooks/we_x"):
        refused = Client().get(f"/api/v1{path}", HTTP_AUTHORIZATION="Bearer ")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_request"
    schema = Client().get("/api/v1/openapi.json").json()
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in schema["paths"].items():
        if path.endswith("/oauth/token"):
            continue
        for method, operation in operations.items():
            for code in ("400", "503"):
                assert code in operation["responses"], (method, path, code)
                assert operation["responses"][code]["content"]["application/json"]["schema"] == error_ref


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/upload-sessions"), ("PATCH", "/project/settings"), ("POST", "/webhooks")]
)
def test_an_empty_body_is_invalid_request_saying_so(api: Api, flow: Flow, method: str, path: str) -> None:
    """docs/api.md: a body is always a JSON object, and one that is not JSON is a ``400 invalid_request``. An empty
    body (a client that forgot to send its JSON) was a ``422 validation_error`` "The request is not valid.", naming
    no field: nothing told the caller what was wrong."""
    before = Project.objects.get(pk=flow.project.pk).settings_json()
    response = send(api, method, path, "")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": "The request body is empty: send a JSON object.",
        "request_id": response["X-Request-Id"],
    }
    assert UploadSession.objects.count() == 0 and WebhookEndpoint.objects.count() == 0
    assert Project.objects.get(pk=flow.project.pk).settings_json() == before


def test_openapi_says_a_409_may_carry_retry_after() -> None:
    """docs/api.md, Idempotency: ``409 idempotency_in_progress`` comes with ``Retry-After: 1`` (when to send the
    retry); every POST's 409 in the document named no header, so a generated client could not read it."""
    schema = Client().get("/api/v1/openapi.json").json()
    posts = [
        (path, item["post"]) for path, item in schema["paths"].items() if "post" in item and "security" in item["post"]
    ]
    assert posts
    for path, operation in posts:
        assert "Retry-After" in operation["responses"]["409"].get("headers", {}), path


def test_openapi_names_the_ratelimit_fields_on_the_answers_that_carry_them() -> None:
    """docs/api.md, Rate limits: every answer to an authenticated caller (a 2xx, the 403 and the 429) carries
    ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``; a refused credential (401) none."""
    fields = {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}
    schema = Client().get("/api/v1/openapi.json").json()
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "security" in operation
    ]
    assert len(operations) > 10
    for name, operation in operations:
        responses = operation["responses"]
        counted = [code for code in responses if code.startswith("2") or code in {"403", "429"}]
        assert any(code.startswith("2") for code in counted) and {"403", "429"} <= set(counted), name
        for code in counted:
            assert fields <= set(responses[code].get("headers", {})), (name, code)
        assert not fields & set(responses["401"].get("headers", {})), name
