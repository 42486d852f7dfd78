from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api
from apertur.oauth.tests.conftest import Flow
from apertur.projects.services import create_project
from apertur.testing import make_user
from apertur.uploads import services as uploads
from apertur.webhooks import services
from apertur.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_crud_and_delivery_log(api: Api, flow: Flow, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    created = api.post("/webhooks", {"url": "https://hooks.snapflow.example/apertur", "events": ["upload.created"]})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"].startswith("we_") and body["secret"].startswith("whsec_")
    got = api.get(f"/webhooks/{body['id']}").json()
    assert "secret" not in got or got["secret"] is None
    assert [e["id"] for e in api.get("/webhooks").json()["data"]] == [body["id"]]
    patched = Client().patch(
        f"/api/v1/webhooks/{body['id']}",
        {"events": ["*"], "enabled": False},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert patched.status_code == 200 and patched.json()["events"] == ["*"] and patched.json()["enabled"] is False
    test = api.post(f"/webhooks/{body['id']}/test")
    assert test.status_code == 202 and test.json()["event_type"] == "webhook.test"
    log = api.get(f"/webhooks/{body['id']}/deliveries").json()
    assert log["data"][0]["event_type"] == "webhook.test"
    deleted = Client().delete(f"/api/v1/webhooks/{body['id']}", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert deleted.status_code == 204
    assert WebhookEndpoint.objects.count() == 0


def test_bad_url_is_422_and_stores_nothing(api: Api) -> None:
    response = api.post("/webhooks", {"url": "http://hooks.example.com/x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "url"
    assert "must use https" in response.json()["error"]["message"]
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://10.0.0.1/h",
        "https://169.254.169.254/latest",
        "https://localhost/h",
        "https://0x7f000001/h",
        "https://[::1]/h",
    ],
)
def test_private_urls_are_422_at_creation(api: Api, settings: Any, url: str) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    response = api.post("/webhooks", {"url": url})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook_endpoint" and error["field"] == "url"
    assert "must be public" in error["message"]
    assert WebhookEndpoint.objects.count() == 0


def test_an_empty_event_list_is_422(api: Api) -> None:
    response = api.post("/webhooks", {"url": "https://hooks.example.com/x", "events": []})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "events"
    assert WebhookEndpoint.objects.count() == 0


def test_webhook_test_is_not_a_subscription_is_422(api: Api) -> None:
    response = api.post("/webhooks", {"url": "https://hooks.example.com/x", "events": ["webhook.test"]})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_webhook_endpoint", "events")
    assert "cannot be subscribed to" in error["message"]
    assert WebhookEndpoint.objects.count() == 0


def test_needs_webhooks_manage(narrow_api: Api) -> None:
    assert narrow_api.get("/webhooks").status_code == 403
    assert narrow_api.post("/webhooks", {"url": "https://hooks.example.com/x"}).status_code == 403


def test_other_projects_endpoints_are_404(api: Api) -> None:
    other = create_project(owner=make_user(), name="Not mine")
    endpoint = services.create_endpoint(project=other, url="https://hooks.example.com/x")
    assert api.get(f"/webhooks/{endpoint.public_id}").status_code == 404
    deleted = Client().delete(f"/api/v1/webhooks/{endpoint.public_id}", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert deleted.status_code == 404
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_events_from_api_actions_are_recorded(api: Api, flow: Flow) -> None:
    endpoint = services.create_endpoint(project=flow.project, url="https://hooks.example.com/x")
    session = api.post("/upload-sessions", {"title": "Party"}).json()
    api.post(f"/upload-sessions/{session['id']}/close")
    types = sorted(endpoint.deliveries.values_list("event__type", flat=True))
    assert types == ["session.closed", "session.created"]
    uploads.create_session(project=flow.project, title="another")
    assert endpoint.deliveries.count() == 3
