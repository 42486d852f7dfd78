"""A webhook URL whose name resolves to a public address when checked and to a private one when connected to
(DNS rebinding) is never delivered to."""

from __future__ import annotations

from typing import Any

import pytest

from apertur.projects.services import create_project
from apertur.testing import fake_dns, make_user
from apertur.uploads import services as uploads
from apertur.webhooks import services
from apertur.webhooks.models import DeliveryStatus, WebhookDelivery
from apertur.webhooks.tests.test_services import Receiver

pytestmark = pytest.mark.django_db


def test_a_webhook_name_that_rebinds_to_loopback_is_not_delivered_to(settings: Any, monkeypatch: Any) -> None:
    receiver = Receiver()
    try:
        settings.WEBHOOKS_ALLOW_LOOPBACK = False
        port = receiver.server.server_address[1]
        # Public when saved and when checked before the attempt; loopback from then on.
        fake_dns(monkeypatch, {"hooks.rebind.example": [["93.184.215.14"], ["93.184.215.14"], ["127.0.0.1"]]})
        project = create_project(owner=make_user(), name="Weddings")
        endpoint = services.create_endpoint(project=project, url="https://hooks.rebind.example/x")
        type(endpoint).objects.filter(pk=endpoint.pk).update(url=f"http://hooks.rebind.example:{port}/hooks")
        uploads.create_session(project=project, title="Party")
        assert services.run_due() == 1
        delivery = WebhookDelivery.objects.get()
        assert delivery.status == DeliveryStatus.PENDING  # a failed attempt, retried on schedule
        assert delivery.last_error == "blocked: hooks.rebind.example resolves to a non-public address"
        assert receiver.requests == []
    finally:
        receiver.close()
