from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api
from apertur.oauth.tests.conftest import Flow
from apertur.projects.models import Project

pytestmark = pytest.mark.django_db


def patch(api: Api, body: dict[str, Any]) -> Any:
    return Client().patch(
        "/api/v1/project/settings", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {api.token}"
    )


def test_get_and_patch_settings(api: Api, flow: Flow) -> None:
    assert api.get("/project/settings").json() == {
        "name": "Weddings",
        "description": "",
        "default_session_days": None,
        "default_max_files": None,
        "notify_owner_on_upload": False,
    }
    changed = patch(api, {"description": "Our weddings", "default_session_days": 30})
    assert changed.status_code == 200
    assert changed.json()["default_session_days"] == 30 and changed.json()["name"] == "Weddings"
    cleared = patch(api, {"default_session_days": None})
    assert cleared.json()["default_session_days"] is None
    assert cleared.json()["description"] == "Our weddings"  # untouched when left out


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"default_session_days": 0}, "default_session_days"),
        ({"default_max_files": 10**9}, "default_max_files"),
        ({"name": ""}, "name"),
        ({"description": "x" * 501}, "description"),
        ({"notify_owner_on_upload": "maybe"}, "notify_owner_on_upload"),
    ],
)
def test_bad_settings_change_nothing(api: Api, flow: Flow, body: dict[str, Any], field: str) -> None:
    response = patch(api, body)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"] == field
    project = Project.objects.get(pk=flow.project.pk)
    assert project.settings_json() == flow.project.settings_json()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_every_bad_name_answers_one_code(api: Api, flow: Flow, name: str) -> None:
    """As the owner's settings page answers it: an empty name was django-ninja's ``validation_error``."""
    error = patch(api, {"name": name}).json()["error"]
    assert (error["code"], error["field"]) == ("invalid_project_name", "name")
    assert Project.objects.get(pk=flow.project.pk).name == flow.project.name


def test_patch_needs_project_settings_scope(flow: Flow) -> None:
    read_only = Api(flow.tokens(scope="project:read")["access_token"])
    assert read_only.get("/project/settings").status_code == 200
    response = patch(read_only, {"description": "x"})
    assert response.status_code == 403
    assert 'scope="project:settings"' in response["WWW-Authenticate"]


def test_test_mode_cannot_change_the_settings_and_is_told_why(test_key_api: Api, flow: Flow) -> None:
    response = patch(test_key_api, {"description": "x"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "livemode_required"
    assert response["WWW-Authenticate"].startswith('Bearer realm="apertur", error="livemode_required"')
    assert Project.objects.get(pk=flow.project.pk).description == ""
    assert test_key_api.get("/project/settings").status_code == 200  # reading is fine


@pytest.mark.parametrize("field", ["name", "description", "notify_owner_on_upload"])
def test_null_for_a_setting_that_cannot_be_cleared_is_422_not_ignored(api: Api, flow: Flow, field: str) -> None:
    """PATCH: a field left out is kept and ``null`` clears the two defaults. ``null`` for a field that has no
    empty value was answered 200 with nothing changed: the caller was told its change was made."""
    response = patch(api, {field: None})
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"] == field
    assert Project.objects.get(pk=flow.project.pk).settings_json() == flow.project.settings_json()


def test_openapi_names_livemode_required_among_the_403s_of_patch_settings(test_key_api: Api) -> None:
    """A test-mode credential on PATCH /project/settings is a ``403 livemode_required``; the document's 403 named
    only ``insufficient_scope``."""
    assert patch(test_key_api, {"description": "x"}).json()["error"]["code"] == "livemode_required"
    schema = Client().get("/api/v1/openapi.json").json()
    assert (
        "livemode_required" in schema["paths"]["/api/v1/project/settings"]["patch"]["responses"]["403"]["description"]
    )


def test_a_settings_change_through_the_api_is_audited_with_the_caller_and_its_address(api: Api, flow: Flow) -> None:
    """The owner's Settings page records who changed what; the API's change recorded neither the caller nor its
    address (the settings-page helper's leftover), where closing a link or deleting an endpoint through the API
    record both."""
    from apertur.core.models import AuditEvent

    changed = Client().patch(
        "/api/v1/project/settings",
        {"default_max_files": 25},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
        REMOTE_ADDR="203.0.113.9",
    )
    assert changed.status_code == 200, changed.content
    event = AuditEvent.objects.get(action="project.settings_changed")
    assert event.ip == "203.0.113.9" and event.data["via"] == f"app:{flow.created.app.pk}:project:{flow.project.pk}"
    assert event.data["after"]["default_max_files"] == 25
