"""How many projects an account, and how many API keys a project, may have: one rule in the services, so the
page, the API and the CLI refuse alike (``limit_reached``, 409), and a refusal creates nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.core.errors import AperturError
from apertur.projects import services
from apertur.projects.models import ApiKey, Project
from apertur.testing import make_user

pytestmark = pytest.mark.django_db


def test_projects_up_to_the_limit_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_PROJECTS_PER_ACCOUNT", 3, raising=False)
    owner, other = make_user(), make_user()
    for n in range(3):
        services.create_project(owner=owner, name=f"Project {n}")
    with pytest.raises(AperturError) as refused:
        services.create_project(owner=owner, name="One too many")
    assert (refused.value.code, refused.value.status) == ("limit_reached", 409)
    assert "at most 3 projects" in refused.value.message
    assert Project.objects.filter(owner=owner).count() == 3
    services.create_project(owner=other, name="Project 0")  # per account


def test_the_projects_page_shows_the_limit_by_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_PROJECTS_PER_ACCOUNT", 1, raising=False)
    owner = make_user()
    browser = Client()
    browser.force_login(owner)
    assert browser.post("/projects/", {"name": "First"}).status_code == 302
    refused = browser.post("/projects/", {"name": "Second"})
    assert refused.status_code == 400
    assert "at most 1 projects" in refused.content.decode()
    assert list(Project.objects.filter(owner=owner).values_list("name", flat=True)) == ["First"]


def test_api_keys_in_use_up_to_the_limit_per_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_API_KEYS_PER_PROJECT", 2, raising=False)
    project = services.create_project(owner=make_user(), name="Weddings")
    first = services.create_api_key(project=project, name="One").key
    services.create_api_key(project=project, name="Two")
    with pytest.raises(AperturError) as refused:
        services.create_api_key(project=project, name="Three")
    assert refused.value.code == "limit_reached" and "Revoke one" in refused.value.message
    assert ApiKey.objects.filter(project=project).count() == 2
    services.create_api_key(project=project, name="Test", livemode=False)  # test mode counts apart
    services.revoke_api_key(key=first)  # a revoked key frees its slot
    services.create_api_key(project=project, name="Three")


def test_the_project_page_shows_the_api_key_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_API_KEYS_PER_PROJECT", 1, raising=False)
    owner = make_user()
    project = services.create_project(owner=owner, name="Weddings")
    browser = Client()
    browser.force_login(owner)
    browser.post(f"/projects/{project.public_id}/api-keys", {"name": "Server"})
    page = browser.post(f"/projects/{project.public_id}/api-keys", {"name": "Another"}, follow=True)
    assert "at most 1 live API keys" in page.content.decode()
    assert ApiKey.objects.filter(project=project).count() == 1
