"""Bearer token use at /api/v1 (RFC 6750)."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.oauth import services
from apertur.oauth.tests.conftest import Flow, api_get
from apertur.partners import services as partner_services

pytestmark = pytest.mark.django_db


def test_plan_and_project(flow: Flow) -> None:
    tokens = flow.tokens(scope="project:read")
    plan = api_get("/api/v1/plan", tokens["access_token"])
    assert plan.status_code == 200
    assert plan.json()["name"] == "Pro"
    assert plan.json()["limits"]["uploads_per_month"] > 0
    project = api_get("/api/v1/project", tokens["access_token"]).json()
    assert project["id"] == flow.project.public_id
    assert project["name"] == "Weddings"
    assert project["plan"]["name"] == "Pro"


def test_missing_token(flow: Flow) -> None:
    response = Client().get("/api/v1/plan")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="apertur"'
    assert response.json()["error"]["code"] == "authentication_required"


def test_query_string_token_is_not_accepted(flow: Flow) -> None:
    tokens = flow.tokens()
    response = Client().get(f"/api/v1/plan?access_token={tokens['access_token']}")
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Token abc", "Basic Zm9vOmJhcg==", "Digest username=x"])
def test_another_scheme_gets_the_bare_bearer_challenge(flow: Flow, header: str) -> None:
    """RFC 6750 §3.1: an unsupported authentication method is answered like no credentials: 401, no error code."""
    response = Client().get("/api/v1/plan", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="apertur"'
    assert response.json()["error"]["code"] == "authentication_required"


def test_bearer_without_a_token_is_invalid_request(flow: Flow) -> None:
    response = Client().get("/api/v1/plan", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 400
    assert 'error="invalid_request"' in response["WWW-Authenticate"]


@pytest.mark.parametrize("kind", ["access_token", "api_key"])
@pytest.mark.parametrize("suffix", [" extra", ",", ' x="y"', "\u00e9"])
def test_a_malformed_bearer_header_is_invalid_request(flow: Flow, kind: str, suffix: str) -> None:
    """RFC 6750 §2.1: ``credentials = "Bearer" 1*SP b64token``, b64token being letters, digits and ``-._~+/``
    then ``=`` padding. Anything else after the token (a second word, a comma, a parameter, a non-ASCII character)
    is a malformed request, which §3.1 answers ``invalid_request`` (400); it was looked up as a token and answered
    ``invalid_token`` (401), telling the client to refresh or reconnect instead of fixing its header."""
    if kind == "access_token":
        value = flow.tokens()["access_token"]
    else:
        from apertur.projects.services import create_api_key

        value = create_api_key(project=flow.project, name="k").secret
    assert api_get("/api/v1/plan", value).status_code == 200
    response = api_get("/api/v1/plan", value + suffix)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert response["WWW-Authenticate"].startswith('Bearer realm="apertur", error="invalid_request", ')


@pytest.mark.parametrize("value", ["oat_forged", "", "ort_not_an_access_token"])
def test_invalid_token(flow: Flow, value: str) -> None:
    response = Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {value}".strip())
    assert response.status_code in {400, 401}


def test_refresh_token_is_not_an_access_token(flow: Flow) -> None:
    tokens = flow.tokens()
    response = api_get("/api/v1/plan", tokens["refresh_token"])
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_token"
    assert error["message"] == "The access token is invalid, expired or revoked."
    assert error["request_id"] == response["X-Request-Id"]
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_insufficient_scope_names_the_scope(flow: Flow) -> None:
    tokens = flow.tokens(scope="upload:read")
    response = api_get("/api/v1/project", tokens["access_token"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert "project:read" in response.json()["error"]["message"]
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert 'scope="project:read"' in response["WWW-Authenticate"]


def test_deactivation_and_suspension_kill_tokens_at_once(flow: Flow) -> None:
    tokens = flow.tokens()
    services.deactivate_app(app=flow.created.app)
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 401
    services.reactivate_app(app=flow.created.app)
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 200
    partner_services.suspend(partner=flow.created.app.partner, reviewer=None, reason="Abuse")
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 401
    refresh = Client().post(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": flow.client_id,
            "client_secret": flow.secret,
        },
    )
    assert refresh.json()["error"] == "invalid_client"
    partner_services.restore(partner=flow.created.app.partner, reviewer=None)
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 200


def test_bearer_request_is_one_query(flow: Flow) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tokens = flow.tokens(scope="project:read")
    with CaptureQueriesContext(connection) as ctx:
        assert api_get("/api/v1/project", tokens["access_token"]).status_code == 200
    assert len(ctx.captured_queries) == 1


def test_openapi_document_lists_the_endpoints() -> None:
    data = Client().get("/api/v1/openapi.json").json()
    assert "/api/v1/plan" in data["paths"] and "/api/v1/project" in data["paths"]
    assert "plan:read" in data["paths"]["/api/v1/plan"]["get"]["description"]


def test_a_deactivated_customer_s_tokens_and_keys_stop_working(flow: Flow) -> None:
    from apertur.projects.services import create_api_key

    tokens = flow.tokens()
    key = create_api_key(project=flow.project, name="k").secret
    flow.customer.is_active = False
    flow.customer.save()
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 401
    assert api_get("/api/v1/plan", key).status_code == 401


def test_hostile_inputs_are_clean_errors(flow: Flow) -> None:
    response = Client().post(
        "/oauth/token",
        f'{{"grant_type": "refresh_token", "refresh_token": "\\ud800", "client_id": "{flow.client_id}", '
        f'"client_secret": "{flow.secret}"}}',
        content_type="application/json",
    )
    assert response.status_code == 400
    tokens = flow.tokens(scope="upload:read")
    import base64
    import json as _json

    for raw in ([("2026-01-01T00:00:00+00:00"), 10**30], ["2026-01-01T00:00:00", 1], ["1e999", 1]):
        cursor = base64.urlsafe_b64encode(_json.dumps(raw).encode()).decode().rstrip("=")
        response = api_get(f"/api/v1/upload-sessions?cursor={cursor}", tokens["access_token"])
        assert response.status_code == 422, raw
    # JSON nested deeper than the parser recurses (4 kB of cursor): a RecursionError, a 500
    cursor = base64.urlsafe_b64encode(b"[" * 3000).decode().rstrip("=")
    assert api_get(f"/api/v1/upload-sessions?cursor={cursor}", tokens["access_token"]).status_code == 422
