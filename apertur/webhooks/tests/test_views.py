from __future__ import annotations

import re

import pytest
from django.test import Client

from apertur.projects.services import create_project
from apertur.testing import make_user
from apertur.webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():  # type: ignore[no-untyped-def]
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    return project, browser


def test_add_endpoint_secret_once_test_event_and_delete(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    base = f"/projects/{project.public_id}/webhooks"
    bad = browser.post(f"{base}/new", {"url": "http://hooks.example.com/x"})
    assert bad.status_code == 400 and "must use https" in bad.content.decode()
    assert WebhookEndpoint.objects.count() == 0
    page = browser.post(
        f"{base}/new", {"url": "https://hooks.example.com/x", "events": ["upload.created"]}, follow=True
    ).content.decode()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["upload.created"]
    secret = re.search(r'data-testid="webhook-secret">([^<]+)<', page)
    assert secret and secret.group(1) == endpoint.secret
    again = browser.get(f"{base}/{endpoint.public_id}/").content.decode()
    assert endpoint.secret not in again
    browser.post(f"{base}/{endpoint.public_id}/test")
    assert WebhookDelivery.objects.get().event.type == "webhook.test"
    assert "webhook.test" in browser.get(f"{base}/{endpoint.public_id}/").content.decode()
    assert "stop receiving events" in browser.get(f"{base}/{endpoint.public_id}/delete").content.decode()
    browser.post(f"{base}/{endpoint.public_id}/delete")
    assert WebhookEndpoint.objects.count() == 0


def test_other_owners_get_404(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    browser.post(f"/projects/{project.public_id}/webhooks/new", {"url": "https://hooks.example.com/x"})
    endpoint = WebhookEndpoint.objects.get()
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.get(f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/").status_code == 404
    assert stranger.post(f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/delete").status_code == 404
    assert WebhookEndpoint.objects.count() == 1


def test_the_new_endpoint_form_does_not_offer_webhook_test(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    form = browser.get(f"/projects/{project.public_id}/webhooks/new").content.decode()
    assert 'value="upload.created"' in form
    assert 'value="webhook.test"' not in form
    refused = browser.post(
        f"/projects/{project.public_id}/webhooks/new",
        {"url": "https://hooks.example.com/x", "events": ["webhook.test"]},
    )
    assert refused.status_code == 400 and "cannot be subscribed to" in refused.content.decode()
    assert WebhookEndpoint.objects.count() == 0
