"""The refresh token grant with rotation and reuse detection (RFC 6749 §6, RFC 9700 §4.14.2)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.oauth.models import Connection, Token
from apertur.oauth.tests.conftest import Flow, api_get
from apertur.oauth.tokens import disconnect
from apertur.testing import make_app

pytestmark = pytest.mark.django_db


def refresh(flow: Flow, refresh_token: str, **extra: str) -> Any:
    body = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": flow.client_id,
        "client_secret": flow.secret,
        **extra,
    }
    return Client().post("/api/v1/oauth/token", body, content_type="application/json")


def test_rotation_returns_new_pair_and_retires_the_old_refresh_token(flow: Flow) -> None:
    first = flow.tokens(scope="project:read")
    response = refresh(flow, first["refresh_token"])
    assert response.status_code == 200, response.content
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scopes"] == ["plan:read", "project:read"]
    assert second["project_id"] == first["project_id"]
    assert second["plan"]["name"] == "Pro"
    assert api_get("/api/v1/project", second["access_token"]).status_code == 200
    rows = list(Token.objects.order_by("id"))
    assert rows[0].family == rows[1].family
    assert rows[0].rotated_at is not None
    assert AuditEvent.objects.filter(action="oauth.token_refreshed").count() == 1


def test_reusing_a_rotated_refresh_token_revokes_the_family(flow: Flow) -> None:
    first = flow.tokens()
    second = refresh(flow, first["refresh_token"]).json()
    third = refresh(flow, second["refresh_token"]).json()
    reuse = refresh(flow, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert "already used" in reuse.json()["error_description"]
    assert api_get("/api/v1/plan", third["access_token"]).status_code == 401
    assert refresh(flow, third["refresh_token"]).json()["error"] == "invalid_grant"
    assert AuditEvent.objects.filter(action="oauth.refresh_reuse_detected").count() == 1


def test_other_families_survive_a_reuse(flow: Flow) -> None:
    mine = flow.tokens()
    other = flow.tokens()
    refresh(flow, mine["refresh_token"])
    refresh(flow, mine["refresh_token"])  # reuse: kills only mine's family
    assert api_get("/api/v1/plan", other["access_token"]).status_code == 200


def test_narrower_scope_allowed_wider_refused(flow: Flow) -> None:
    first = flow.tokens(scope="project:read upload:read")
    narrower = refresh(flow, first["refresh_token"], scope="project:read")
    assert narrower.status_code == 200
    assert narrower.json()["scopes"] == ["plan:read", "project:read"]
    assert api_get("/api/v1/uploads", narrower.json()["access_token"]).status_code == 403
    token = narrower.json()["refresh_token"]
    # RFC 6749 §6: the new refresh token keeps the original grant, so the full scope can be asked again...
    again = refresh(flow, token, scope="project:read upload:read")
    assert again.status_code == 200 and again.json()["scopes"] == ["plan:read", "upload:read", "project:read"]
    token = again.json()["refresh_token"]
    # ...but never more than was granted.
    wider = refresh(flow, token, scope="project:read upload:read billing:read")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    unknown = refresh(flow, token, scope="admin")
    assert unknown.json()["error"] == "invalid_scope"
    assert refresh(flow, token).status_code == 200  # a refused scope does not burn the token


def test_a_refresh_scope_is_separated_by_spaces_only(flow: Flow) -> None:
    """RFC 6749 §3.3 and §6: ``scope`` on refresh has the same syntax, space-separated; a tab is no separator."""
    first = flow.tokens(scope="project:read upload:read")
    response = refresh(flow, first["refresh_token"], scope="project:read\tupload:read")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert refresh(flow, first["refresh_token"], scope="project:read upload:read").status_code == 200


def test_consenting_again_to_fewer_scopes_revokes_broader_tokens(flow: Flow) -> None:
    broad = flow.tokens(scope="project:read upload:read")
    narrow = flow.tokens(scope="project:read")
    assert api_get("/api/v1/plan", broad["access_token"]).status_code == 401
    assert refresh(flow, broad["refresh_token"]).json()["error"] == "invalid_grant"
    assert api_get("/api/v1/plan", narrow["access_token"]).status_code == 200


def test_alias_in_refresh_scope(flow: Flow) -> None:
    first = flow.tokens(scope="upload:create")
    assert refresh(flow, first["refresh_token"], scope="sessions:write").json()["scopes"] == [
        "plan:read",
        "upload:create",
    ]


def test_a_failed_client_authentication_leaves_the_refresh_token_as_it_was(flow: Flow) -> None:
    """The refresh token is read (and on PostgreSQL locked) before the client authenticates; a wrong secret
    or another client's id is invalid_client, and neither rotates nor burns the token."""
    first = flow.tokens()
    wrong = refresh(flow, first["refresh_token"], client_secret="aptr_cs_wrong")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    stranger = refresh(flow, first["refresh_token"], client_id="aptr_ci_someone_else")
    assert stranger.status_code == 401
    assert Token.objects.get().rotated_at is None
    assert not AuditEvent.objects.filter(action="oauth.refresh_reuse_detected").exists()
    assert refresh(flow, first["refresh_token"]).status_code == 200


def test_a_deactivated_app_cannot_refresh(flow: Flow) -> None:
    from apertur.oauth import services

    first = flow.tokens()
    services.deactivate_app(app=flow.created.app)
    response = refresh(flow, first["refresh_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_refresh_token_of_another_client_is_invalid_grant(flow: Flow) -> None:
    first = flow.tokens()
    other = make_app(flow.created.app.partner, name="Other")
    response = Client().post(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": other.app.client_id,
            "client_secret": other.client_secret,
        },
    )
    # Described as an unknown token would be: nothing tells the other client the token exists.
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token is unknown, or was issued to another client.",
    }
    assert refresh(flow, "ort_unknown").json() == response.json()
    assert refresh(flow, first["refresh_token"]).status_code == 200  # not burnt


def test_a_revoked_refresh_token_says_so(flow: Flow) -> None:
    first = flow.tokens()
    revoked = Client().post(
        "/oauth/revoke", {"token": first["refresh_token"], "client_id": flow.client_id, "client_secret": flow.secret}
    )
    assert revoked.status_code == 200
    response = refresh(flow, first["refresh_token"])
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token was revoked. Ask the user to connect the app again.",
    }


def test_a_removed_connections_refresh_token_says_so(flow: Flow) -> None:
    first = flow.tokens()
    disconnect(connection=Connection.objects.get(), actor=flow.customer)
    response = refresh(flow, first["refresh_token"])
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The user removed this connection. Ask them to connect the app again.",
    }


def test_refresh_tokens_die_after_60_days_unused(flow: Flow) -> None:
    first = flow.tokens()
    now = dt.datetime.now(tz=dt.UTC)
    with time_machine.travel(now + dt.timedelta(days=59)):
        second = refresh(flow, first["refresh_token"])
        assert second.status_code == 200
    with time_machine.travel(now + dt.timedelta(days=59 + 60, seconds=1)):
        assert refresh(flow, second.json()["refresh_token"]).json() == {
            "error": "invalid_grant",
            "error_description": "The refresh token has expired. Ask the user to connect the app again.",
        }


def test_access_tokens_expire_after_an_hour(flow: Flow) -> None:
    first = flow.tokens()
    now = dt.datetime.now(tz=dt.UTC)
    with time_machine.travel(now + dt.timedelta(minutes=59)):
        assert api_get("/api/v1/plan", first["access_token"]).status_code == 200
    with time_machine.travel(now + dt.timedelta(hours=1, seconds=1)):
        response = api_get("/api/v1/plan", first["access_token"])
        assert response.status_code == 401
        assert 'error="invalid_token"' in response["WWW-Authenticate"]
        assert refresh(flow, first["refresh_token"]).status_code == 200


def test_missing_refresh_token(flow: Flow) -> None:
    response = Client().post(
        "/oauth/token", {"grant_type": "refresh_token", "client_id": flow.client_id, "client_secret": flow.secret}
    )
    assert response.json()["error"] == "invalid_request"
