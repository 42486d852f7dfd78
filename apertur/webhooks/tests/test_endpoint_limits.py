"""How many webhook endpoints a project may have, per mode: one rule in ``create_endpoint``, so the page and
``POST /api/v1/webhooks`` refuse alike (``limit_reached``, 409), and a refusal creates nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api, api  # noqa: F401 - the fixture is reused here
from apertur.core.errors import AperturError
from apertur.oauth.tests.conftest import Flow, flow  # noqa: F401 - the fixture is reused here
from apertur.projects.services import create_project
from apertur.testing import make_user
from apertur.webhooks import services
from apertur.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db
URL = "https://hooks.example.com/x"


def test_endpoints_up_to_the_limit_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_ENDPOINTS_PER_PROJECT", 2, raising=False)
    project = create_project(owner=make_user(), name="Weddings")
    first = services.create_endpoint(project=project, url=URL)
    services.update_endpoint(endpoint=services.create_endpoint(project=project, url=URL), enabled=False)
    with pytest.raises(AperturError) as refused:
        services.create_endpoint(project=project, url=URL)  # a disabled endpoint still counts
    assert (refused.value.code, refused.value.status) == ("limit_reached", 409)
    assert "at most 2 webhook endpoints" in refused.value.message and "Delete one" in refused.value.message
    assert WebhookEndpoint.objects.filter(project=project).count() == 2
    services.create_endpoint(project=project, url=URL, livemode=False)  # test mode counts apart
    services.create_endpoint(project=create_project(owner=make_user(), name="Other"), url=URL)  # per project
    services.delete_endpoint(endpoint=first)
    services.create_endpoint(project=project, url=URL)  # deleting one frees its slot


def test_the_page_shows_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_ENDPOINTS_PER_PROJECT", 1, raising=False)
    owner = make_user()
    project = create_project(owner=owner, name="Weddings")
    services.create_endpoint(project=project, url=URL)
    browser = Client()
    browser.force_login(owner)
    refused = browser.post(f"/projects/{project.public_id}/webhooks/new", {"url": URL})
    assert refused.status_code == 400
    html = refused.content.decode()
    assert 'role="alert"' in html and "at most 1 webhook endpoints" in html
    assert WebhookEndpoint.objects.filter(project=project).count() == 1


def test_the_api_answers_409_limit_reached(monkeypatch: pytest.MonkeyPatch, api: Api, flow: Flow) -> None:  # noqa: F811
    monkeypatch.setattr(services, "MAX_ENDPOINTS_PER_PROJECT", 1, raising=False)
    assert api.post("/webhooks", {"url": URL}).status_code == 201
    refused = api.post("/webhooks", {"url": URL})
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "limit_reached" and "at most 1 webhook endpoints" in error["message"]
    assert WebhookEndpoint.objects.filter(project=flow.project).count() == 1
