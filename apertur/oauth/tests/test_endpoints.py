"""Revocation (RFC 7009), introspection (RFC 7662) and metadata (RFC 8414)."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.oauth.tests.conftest import Flow, api_get
from apertur.testing import assert_head_like_get, make_app

pytestmark = pytest.mark.django_db


def post(flow: Flow, path: str, **data: str) -> dict:
    response = Client().post(path, {"client_id": flow.client_id, "client_secret": flow.secret, **data})
    assert response["Cache-Control"] == "no-store"
    return {"status": response.status_code, **response.json()}


def test_revoking_an_access_token(flow: Flow) -> None:
    tokens = flow.tokens()
    assert post(flow, "/oauth/revoke", token=tokens["access_token"]) == {"status": 200}
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 401
    assert AuditEvent.objects.filter(action="oauth.token_revoked").count() == 1


def test_revoking_a_refresh_token_revokes_its_grant(flow: Flow) -> None:
    tokens = flow.tokens()
    assert post(flow, "/oauth/revoke", token=tokens["refresh_token"], token_type_hint="refresh_token")["status"] == 200
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 401
    refreshed = post(flow, "/oauth/token", grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed["error"] == "invalid_grant"


@pytest.mark.parametrize("hint", ["refresh-token", "id_token", "ACCESS_TOKEN"])
@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_an_unknown_token_type_hint_is_ignored(flow: Flow, kind: str, hint: str) -> None:
    """RFC 7009 §2.1: an invalid hint "is ignored ... and does not influence the revocation response". It was
    answered 400 unsupported_token_type, and the token stayed alive."""
    tokens = flow.tokens()
    assert post(flow, "/oauth/revoke", token=tokens[kind], token_type_hint=hint) == {"status": 200}
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 401
    refreshed = post(flow, "/oauth/token", grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refreshed["status"] == (400 if kind == "refresh_token" else 200)


def test_revoking_unknown_token_is_200(flow: Flow) -> None:
    assert post(flow, "/oauth/revoke", token="oat_unknown") == {"status": 200}


@pytest.mark.parametrize("path", ["/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/json"])
def test_an_empty_token_is_a_missing_token(flow: Flow, path: str, content_type: str) -> None:
    """RFC 6749 §3.2, which RFC 7009 §2.1 and RFC 7662 §2.1 build on: "Parameters sent without a value MUST be
    treated as if they were omitted from the request." ``token`` is required at both endpoints; an empty one was
    looked up as an unknown token (revocation 200 ``{}``, introspection ``{"active": false}``), hiding a client's
    bug behind a success."""
    body = {"token": "", "client_id": flow.client_id, "client_secret": flow.secret}
    if content_type == "application/json":
        response = Client().post(path, body, content_type=content_type)
    else:
        response = Client().post(path, body)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": "Missing 'token'."}
    assert response["Cache-Control"] == "no-store"


def test_revoking_needs_client_authentication(flow: Flow) -> None:
    tokens = flow.tokens()
    response = Client().post("/oauth/revoke", {"token": tokens["access_token"]})
    assert response.status_code == 401
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 200


def test_another_client_cannot_revoke_my_token(flow: Flow) -> None:
    tokens = flow.tokens()
    other = make_app(flow.created.app.partner, name="Other")
    response = Client().post(
        "/oauth/revoke",
        {"token": tokens["access_token"], "client_id": other.app.client_id, "client_secret": other.client_secret},
    )
    # RFC 7009 §2.1: the token was not issued to this client, so the request is refused and the client told why.
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "This token was issued to another client; a client can revoke only its own.",
    }
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 200


def test_introspection_of_own_tokens(flow: Flow) -> None:
    tokens = flow.tokens(scope="project:read")
    data = post(flow, "/oauth/introspect", token=tokens["access_token"])
    assert data["active"] is True
    assert data["scope"] == "plan:read project:read"
    assert data["client_id"] == flow.client_id
    assert data["sub"] == flow.customer.public_id
    assert data["project_id"] == flow.project.public_id
    assert data["token_type"] == "Bearer"
    assert data["livemode"] is True
    assert data["exp"] - data["iat"] == 3600
    refresh = post(flow, "/oauth/introspect", token=tokens["refresh_token"], token_type_hint="refresh_token")
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    post(flow, "/oauth/revoke", token=tokens["access_token"])
    assert post(flow, "/oauth/introspect", token=tokens["access_token"]) == {"status": 200, "active": False}


def test_introspecting_a_refresh_token_after_a_narrowing_refresh(flow: Flow) -> None:
    """RFC 7662 §2.2 ``scope`` is the presented token's: a refresh token can still ask for the whole original
    grant (RFC 6749 §6), even when the refresh that issued it asked for a narrower access token."""
    first = flow.tokens(scope="project:read upload:create")
    narrowed = post(
        flow, "/oauth/token", grant_type="refresh_token", refresh_token=first["refresh_token"], scope="project:read"
    )
    assert narrowed["scope"] == "plan:read project:read"
    access = post(flow, "/oauth/introspect", token=narrowed["access_token"])
    assert access["scope"] == "plan:read project:read"
    refresh = post(flow, "/oauth/introspect", token=narrowed["refresh_token"], token_type_hint="refresh_token")
    assert refresh["token_type"] == "refresh_token"
    assert refresh["scope"] == "plan:read upload:create project:read"
    # what introspection says is what the refresh token gets
    widened = post(
        flow,
        "/oauth/token",
        grant_type="refresh_token",
        refresh_token=narrowed["refresh_token"],
        scope=refresh["scope"],
    )
    assert widened["status"] == 200 and widened["scope"] == refresh["scope"]


def test_introspection_of_other_clients_tokens_reveals_nothing(flow: Flow) -> None:
    tokens = flow.tokens()
    other = make_app(flow.created.app.partner, name="Other")
    response = Client().post(
        "/oauth/introspect",
        {"token": tokens["access_token"], "client_id": other.app.client_id, "client_secret": other.client_secret},
    )
    assert response.json() == {"active": False}
    assert post(flow, "/oauth/introspect", token="oat_garbage") == {"status": 200, "active": False}


def test_introspection_needs_client_authentication(flow: Flow) -> None:
    tokens = flow.tokens()
    response = Client().post("/oauth/introspect", {"token": tokens["access_token"]})
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
def test_own_token_with_a_wrong_secret_is_401(flow: Flow, path: str) -> None:
    """The token is read before the client authenticates (its row carries its app's credentials); owning the
    token is no credential."""
    tokens = flow.tokens()
    for secret in ("aptr_cs_wrong", ""):
        response = Client().post(
            path, {"token": tokens["access_token"], "client_id": flow.client_id, "client_secret": secret}
        )
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 200


@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
def test_a_deactivated_app_or_suspended_partner_cannot_use_its_tokens_here(flow: Flow, path: str) -> None:
    from apertur.oauth import services
    from apertur.partners import services as partner_services

    tokens = flow.tokens()
    services.deactivate_app(app=flow.created.app)
    assert (
        Client()
        .post(path, {"token": tokens["access_token"], "client_id": flow.client_id, "client_secret": flow.secret})
        .status_code
        == 401
    )
    services.reactivate_app(app=flow.created.app)
    partner_services.suspend(partner=flow.created.app.partner, reviewer=None, reason="Abuse")
    assert (
        Client()
        .post(path, {"token": tokens["access_token"], "client_id": flow.client_id, "client_secret": flow.secret})
        .status_code
        == 401
    )


def test_metadata_answers_head_like_get() -> None:
    assert assert_head_like_get(Client(), "/.well-known/oauth-authorization-server").status_code == 200


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect", "/api/v1/oauth/token"])
def test_post_only_endpoints_still_refuse_head(path: str) -> None:
    assert Client().head(path).status_code == 405


def test_metadata_document(settings) -> None:  # type: ignore[no-untyped-def]
    settings.APERTUR_BASE_URL = "https://apertur.example"
    response = Client().get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    data = response.json()
    AuthorizationServerMetadata(data).validate()
    assert data["issuer"] == "https://apertur.example"
    assert data["authorization_endpoint"] == "https://apertur.example/oauth/authorize"
    assert data["token_endpoint"] == "https://apertur.example/oauth/token"
    assert data["revocation_endpoint"] == "https://apertur.example/oauth/revoke"
    assert data["introspection_endpoint"] == "https://apertur.example/oauth/introspect"
    assert data["code_challenge_methods_supported"] == ["S256"]
    assert data["authorization_response_iss_parameter_supported"] is True  # RFC 9207 §3
    assert set(data["grant_types_supported"]) == {"authorization_code", "refresh_token"}
    assert set(data["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    assert "plan:read" in data["scopes_supported"] and "billing:read" in data["scopes_supported"]
