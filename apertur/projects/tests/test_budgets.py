"""Budgets on a project's writes that leave rows behind: API keys created (a revoked key stays, and each creation
and revocation is audited; the count cap is freed by revoking) and settings changes (each audited, and each save of
the project voids every process's access-token cache). One rule in the services: the page and the API refuse
alike (``rate_limited``, 429 with ``Retry-After``), and a refusal writes nothing. Revoking is never refused."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api, api  # noqa: F401 - the fixtures are reused here
from apertur.oauth.tests.conftest import Flow, flow  # noqa: F401
from apertur.projects import services
from apertur.projects.models import ApiKey, Project
from apertur.testing import lower_budget, make_user, refused_by_budget

pytestmark = pytest.mark.django_db


def _owned() -> tuple[Project, Client]:
    owner = make_user()
    project = services.create_project(owner=owner, name="Weddings")
    browser = Client()
    browser.force_login(owner)
    return project, browser


def test_api_keys_up_to_the_budget_then_refused_even_after_revoking(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "API_KEYS_CREATED_PER_PROJECT", 2)
    project = services.create_project(owner=make_user(), name="Weddings")
    for n in range(2):  # created and revoked at once: the count cap never bites
        services.revoke_api_key(key=services.create_api_key(project=project, name=f"Key {n}").key)
    refused_by_budget(lambda: services.create_api_key(project=project, name="One too many"), "new API keys")
    assert ApiKey.objects.filter(project=project).count() == 2
    other = services.create_project(owner=make_user(), name="Other")
    services.create_api_key(project=other, name="Theirs")  # per project


def test_the_project_page_says_so_and_revoking_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "API_KEYS_CREATED_PER_PROJECT", 1)
    project, browser = _owned()
    url = f"/projects/{project.public_id}/api-keys"
    assert browser.post(url, {"name": "Server"}).status_code == 302
    refused = browser.post(url, {"name": "Another"}, follow=True)
    assert "Too many new API keys" in refused.content.decode()
    key = ApiKey.objects.get()
    browser.post(f"/projects/{project.public_id}/api-keys/{key.pk}/revoke")
    assert ApiKey.objects.get().revoked_at is not None


def test_settings_changes_up_to_the_budget_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "SETTINGS_CHANGES_PER_PROJECT", 2)
    project = services.create_project(owner=make_user(), name="Weddings")
    services.update_settings(project=project, description="one")
    services.update_settings(project=project, default_session_days=30)
    refused_by_budget(lambda: services.update_settings(project=project, description="three"), "changes")
    assert Project.objects.get(pk=project.pk).description == "one"
    services.update_settings(project=services.create_project(owner=make_user(), name="Other"), description="x")


def test_the_settings_page_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "SETTINGS_CHANGES_PER_PROJECT", 0)
    project, browser = _owned()
    refused = browser.post(f"/projects/{project.public_id}/settings", {"name": "Weddings", "description": "New"})
    assert refused.status_code == 400
    assert "Too many changes to the project&#x27;s settings" in refused.content.decode()
    assert Project.objects.get(pk=project.pk).description == ""


def test_the_api_answers_429_with_retry_after(monkeypatch: pytest.MonkeyPatch, api: Api) -> None:  # noqa: F811
    lower_budget(monkeypatch, services, "SETTINGS_CHANGES_PER_PROJECT", 1)

    def patch() -> Any:
        return Client().patch(
            "/api/v1/project/settings",
            {"description": "x"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {api.token}",
        )

    assert patch().status_code == 200
    refused = patch()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused["Retry-After"]) > 0


def test_the_real_budgets_leave_room_for_real_use() -> None:
    assert services.API_KEYS_CREATED_PER_PROJECT.max_hits >= 2 * services.MAX_API_KEYS_PER_PROJECT
    assert services.SETTINGS_CHANGES_PER_PROJECT.max_hits >= 30


def test_staff_editing_in_the_admin_answer_to_no_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.testing import PASSWORD, make_staff

    lower_budget(monkeypatch, services, "SETTINGS_CHANGES_PER_PROJECT", 0)
    project = services.create_project(owner=make_user(), name="Weddings")
    browser = Client()
    assert browser.login(email=make_staff().email, password=PASSWORD)
    form = {"name": "Weddings", "plan": project.plan_id, "description": "By staff"}
    form |= {"default_session_days": "", "default_max_files": ""}
    saved = browser.post(f"/admin/projects/project/{project.pk}/change/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert Project.objects.get(pk=project.pk).description == "By staff"
