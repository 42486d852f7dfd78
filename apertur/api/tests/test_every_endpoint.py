"""Rules every /api/v1 operation follows: its scope is enforced, lists paginate, POSTs are idempotent, and every
error, even one no handler raised, answers {"error": {"code", "message"}} (ARCHITECTURE section 6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api
from apertur.oauth.tests.conftest import Flow
from apertur.projects.services import create_api_key
from apertur.testing import image_file
from apertur.uploads import services as uploads
from apertur.uploads.models import UploadSession
from apertur.webhooks import services as webhooks

pytestmark = pytest.mark.django_db

# (method, path, the scope it needs)
OPERATIONS = [
    ("get", "/project", "project:read"),
    ("get", "/project/settings", "project:read"),
    ("patch", "/project/settings", "project:settings"),
    ("post", "/upload-sessions", "upload:create"),
    ("get", "/upload-sessions", "upload:read"),
    ("get", "/upload-sessions/ses_none", "upload:read"),
    ("post", "/upload-sessions/ses_none/close", "upload:create"),
    ("get", "/uploads", "upload:read"),
    ("get", "/keys", "keys:read"),
    ("get", "/webhooks", "webhooks:manage"),
    ("post", "/webhooks", "webhooks:manage"),
    ("post", "/webhooks/we_none/rotate-secret", "webhooks:manage"),
    ("get", "/webhooks/we_none", "webhooks:manage"),
    ("patch", "/webhooks/we_none", "webhooks:manage"),
    ("delete", "/webhooks/we_none", "webhooks:manage"),
    ("get", "/webhooks/we_none/deliveries", "webhooks:manage"),
    ("post", "/webhooks/we_none/test", "webhooks:manage"),
    ("get", "/destinations", "destinations:read"),
    ("get", "/billing", "billing:read"),
]


def call(token: str, method: str, path: str) -> Any:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if method == "get":
        return Client().get(f"/api/v1{path}", **auth)
    return getattr(Client(), method)(f"/api/v1{path}", {}, content_type="application/json", **auth)


@pytest.mark.parametrize(("method", "path", "scope"), OPERATIONS)
def test_scope_is_enforced(flow: Flow, method: str, path: str, scope: str) -> None:
    # A token with every scope but this one (plan:read is always there).
    others = [
        s
        for s in (
            "project:read",
            "project:settings",
            "upload:create",
            "upload:read",
            "keys:read",
            "webhooks:manage",
            "destinations:read",
            "billing:read",
        )
        if s != scope
    ]
    token = flow.tokens(scope=" ".join(others))["access_token"]
    response = call(token, method, path)
    assert response.status_code == 403, (path, response.content)
    assert f'scope="{scope}"' in response["WWW-Authenticate"]
    assert call(token, "get", "/plan").status_code == 200


def add_upload(flow: Flow) -> None:
    session = UploadSession.objects.filter(project=flow.project).first() or uploads.create_session(
        project=flow.project, title="base"
    )
    uploads.accept_upload(session=session, file=image_file())


LISTS: dict[str, Callable[[Flow], object]] = {
    "/upload-sessions": lambda f: uploads.create_session(project=f.project, title="s"),
    "/uploads": add_upload,
    "/keys": lambda f: create_api_key(project=f.project, name="k"),
    "/webhooks": lambda f: webhooks.create_endpoint(project=f.project, url="https://hooks.example.com/x"),
}


@pytest.mark.parametrize("path", list(LISTS))
def test_lists_paginate(api: Api, flow: Flow, path: str) -> None:
    for _ in range(3):
        LISTS[path](flow)
    first = api.get(path, limit=2).json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    rest = api.get(path, limit=2, cursor=first["next_cursor"]).json()
    assert rest["has_more"] is False
    ids = [item["id"] for item in first["data"] + rest["data"]]
    assert len(ids) == len(set(ids)) >= 3


def test_every_post_replays_with_its_idempotency_key(api: Api, flow: Flow) -> None:
    session = api.post("/upload-sessions", {"title": "x"}, key="a").json()
    assert api.post("/upload-sessions", {"title": "x"}, key="a").json() == session
    hook = api.post("/webhooks", {"url": "https://hooks.example.com/x"}, key="b").json()
    assert api.post("/webhooks", {"url": "https://hooks.example.com/x"}, key="b").json() == hook
    closed = api.post(f"/upload-sessions/{session['id']}/close", key="c")
    assert api.post(f"/upload-sessions/{session['id']}/close", key="c").json() == closed.json()
    test = api.post(f"/webhooks/{hook['id']}/test", key="d")
    again = api.post(f"/webhooks/{hook['id']}/test", key="d")
    assert again.json() == test.json() and again["Idempotent-Replayed"] == "true"
    assert flow.project.webhook_events.filter(type="webhook.test").count() == 1


def assert_api_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == response["X-Request-Id"]
    return error


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/plan/extra", "/api/v1/plan/", "/api/v2/plan", "/api/"])
@pytest.mark.parametrize("authenticated", [True, False], ids=["token", "no-token"])
def test_an_unknown_path_is_a_json_404(api: Api, path: str, authenticated: bool) -> None:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"} if authenticated else {}
    assert_api_error(Client().get(path, **headers), 404, "not_found")


def test_paths_outside_the_api_keep_the_html_404() -> None:
    response = Client().get("/nope")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", sorted({path for _, path, _ in OPERATIONS} | {"/plan"}))
def test_a_method_the_path_does_not_take_is_a_json_405(api: Api, path: str) -> None:
    # No operation takes PUT.
    response = Client().put(f"/api/v1{path}", "{}", content_type="application/json")
    assert_api_error(response, 405, "method_not_allowed")
    assert response["Allow"]


def test_delete_on_the_plan_names_the_allowed_method(api: Api) -> None:
    response = Client().delete("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert_api_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(("method", "path"), [("patch", "/project/settings"), ("post", "/webhooks")])
@pytest.mark.parametrize("body", ["notjson", "{", "title=x"])
def test_a_body_that_is_not_json_is_invalid_request(api: Api, method: str, path: str, body: str) -> None:
    call_ = getattr(Client(), method)
    response = call_(f"/api/v1{path}", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    error = assert_api_error(response, 400, "invalid_request")
    assert error["message"] == "The request body is not valid JSON."


# A body each operation that takes one accepts, "{id}" standing for an existing webhook endpoint.
ACCEPTED_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("patch", "/project/settings"): {"default_max_files": 5},
    ("post", "/upload-sessions"): {"title": "Party"},
    ("post", "/webhooks"): {"url": "https://hooks.example.com/x"},
    ("patch", "/webhooks/{id}"): {"description": "Orders"},
    ("post", "/webhooks/{id}/rotate-secret"): {},
}


def test_every_operation_with_a_body_is_in_the_unknown_member_test_and_says_so_in_its_schema() -> None:
    schema = Client().get("/api/v1/openapi.json").json()
    with_body = {
        (method, path.removeprefix("/api/v1").replace("{endpoint_id}", "{id}"))
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }
    assert with_body == set(ACCEPTED_BODIES)
    inputs = [s for name, s in schema["components"]["schemas"].items() if name.endswith(("In", "Patch"))]
    assert inputs and all(s.get("additionalProperties") is False for s in inputs)


@pytest.mark.parametrize(("method", "path"), list(ACCEPTED_BODIES))
def test_a_member_the_operation_does_not_take_is_refused_and_changes_nothing(
    api: Api, flow: Flow, method: str, path: str
) -> None:
    """A misspelt field (``max_file``) would otherwise be dropped in silence: a session without the limit its
    caller asked for. Refused by name, like a wrong value, and nothing is written."""
    endpoint = webhooks.create_endpoint(project=flow.project, url="https://hooks.example.com/base")
    url = f"/api/v1{path.replace('{id}', endpoint.public_id)}"
    before = (
        UploadSession.objects.count(),
        flow.project.webhook_endpoints.count(),
        list(flow.project.webhook_endpoints.values()),
        flow.project.__class__.objects.filter(pk=flow.project.pk).values().get(),
    )
    body = {**ACCEPTED_BODIES[(method, path)], "max_file": 3}
    response = getattr(Client(), method)(
        url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api.token}"
    )
    error = assert_api_error(response, 422, "validation_error")
    assert error["field"] == "max_file" and "no such field" in error["message"]
    after = (
        UploadSession.objects.count(),
        flow.project.webhook_endpoints.count(),
        list(flow.project.webhook_endpoints.values()),
        flow.project.__class__.objects.filter(pk=flow.project.pk).values().get(),
    )
    assert after == before
    accepted = getattr(Client(), method)(
        url, ACCEPTED_BODIES[(method, path)], content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api.token}"
    )
    assert accepted.status_code in {200, 201}, accepted.content


def _takes_null(field_schema: dict[str, Any]) -> bool:
    options = field_schema.get("anyOf", [field_schema])
    return any(option.get("type") == "null" for option in options)


@pytest.mark.parametrize(("method", "path"), list(ACCEPTED_BODIES))
def test_the_schema_says_which_body_fields_take_null_as_the_api_does(
    api: Api, flow: Flow, method: str, path: str
) -> None:
    """The OpenAPI document marked every optional PATCH field nullable, though ``{"enabled": null}`` or
    ``{"name": null}`` is a 422: a client generated from it sent null and was refused. Each field of each
    request body is sent as null: the schema says it takes null exactly when the API takes it."""
    schema = Client().get("/api/v1/openapi.json").json()
    spec_path = "/api/v1" + path.replace("{id}", "{endpoint_id}")
    body = schema["paths"][spec_path][method]["requestBody"]["content"]["application/json"]["schema"]
    body_ref = body.get("$ref") or body["allOf"][0]["$ref"]  # allOf: a body that may be left out
    properties = schema["components"]["schemas"][body_ref.rsplit("/", 1)[1]]["properties"]
    endpoint = webhooks.create_endpoint(project=flow.project, url="https://hooks.example.com/base")
    url = f"/api/v1{path.replace('{id}', endpoint.public_id)}"
    for field, field_schema in properties.items():
        body = {**ACCEPTED_BODIES[(method, path)], field: None}
        response = getattr(Client(), method)(
            url, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api.token}"
        )
        accepted = response.status_code in {200, 201}
        assert accepted == _takes_null(field_schema), (method, path, field, response.status_code, field_schema)


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/docs"])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_the_reference_pages_take_only_get_and_head(path: str, method: str) -> None:
    """The OpenAPI document and the docs page answered every method with 200 (``DELETE /api/v1/openapi.json``
    served the document): like every other path, a method it does not take is a 405 naming GET and HEAD."""
    response = getattr(Client(), method)(path)
    assert_api_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD"
    assert Client().get(path).status_code == Client().head(path).status_code == 200


def test_every_operation_is_in_the_scope_test() -> None:
    """Each operation of the document, under its own scope in OPERATIONS (``/plan`` is always granted)."""
    schema = Client().get("/api/v1/openapi.json").json()
    listed = {
        (method, path.removeprefix("/api/v1"), operation["security"][0]["OAuth2"][0])
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if path != "/api/v1/plan"
    }
    named = {
        (method, path.replace("ses_none", "{session_id}").replace("we_none", "{endpoint_id}"), scope)
        for method, path, scope in OPERATIONS
    }
    assert listed == named
