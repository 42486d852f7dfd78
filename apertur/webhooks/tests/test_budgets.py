"""Budgets on the writes that leave rows behind however few endpoints there are at once: creations (each one and
its deletion audited; the count cap is freed by deleting), changes and secret rolls (each audited). One rule in the
services, so the page and the API refuse alike (``rate_limited``, 429 with ``Retry-After``), and a refusal writes
nothing. Deleting an endpoint and turning one off are never refused: a leaked or misbehaving endpoint must stop."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api, api  # noqa: F401 - the fixtures are reused here
from apertur.oauth.tests.conftest import Flow, flow  # noqa: F401
from apertur.projects.services import create_project
from apertur.testing import lower_budget, make_user, refused_by_budget
from apertur.uploads import destinations
from apertur.webhooks import services
from apertur.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db
URL = "https://hooks.example.com/x"
DAY = dt.timedelta(days=1)


def test_creations_up_to_the_budget_then_refused_even_after_deleting(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "ENDPOINTS_CREATED_PER_PROJECT", 2)
    project = create_project(owner=make_user(), name="Weddings")
    for _ in range(2):  # created and deleted at once: the count cap never bites
        services.delete_endpoint(endpoint=services.create_endpoint(project=project, url=URL))
    refused_by_budget(lambda: services.create_endpoint(project=project, url=URL), "new webhook endpoints")
    assert WebhookEndpoint.objects.count() == 0
    services.create_endpoint(project=project, url=URL, livemode=False)  # test mode has its own budget
    services.create_endpoint(project=create_project(owner=make_user(), name="Other"), url=URL)  # per project


def test_changes_up_to_the_budget_then_refused_but_turning_off_always_goes_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lower_budget(monkeypatch, services, "ENDPOINT_CHANGES_PER_PROJECT", 2)
    project = create_project(owner=make_user(), name="Weddings")
    endpoint = services.create_endpoint(project=project, url=URL)
    services.update_endpoint(endpoint=endpoint, description="one")
    services.update_endpoint(endpoint=endpoint, events=["upload.created"])
    refused_by_budget(lambda: services.update_endpoint(endpoint=endpoint, description="three"), "changes")
    refused_by_budget(lambda: services.update_endpoint(endpoint=endpoint, enabled=True), "changes")
    assert WebhookEndpoint.objects.get().description == "one"
    services.update_endpoint(endpoint=endpoint, enabled=False)  # stopping an endpoint is never refused
    assert WebhookEndpoint.objects.get().enabled is False
    # ... but turning off one that is off already changes nothing: it counts as any other change.
    refused_by_budget(lambda: services.update_endpoint(endpoint=endpoint, enabled=False), "changes")


def test_secret_rolls_up_to_the_budget_per_endpoint_and_per_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "SECRET_ROLLS_PER_HOLDER", 2)
    project = create_project(owner=make_user(), name="Weddings")
    endpoint = services.create_endpoint(project=project, url=URL)
    for _ in range(2):
        endpoint = services.rotate_secret(endpoint=endpoint, expire_previous_in=DAY)
    secret = endpoint.secret
    refused_by_budget(lambda: services.rotate_secret(endpoint=endpoint, expire_previous_in=DAY), "signing secret rolls")
    assert WebhookEndpoint.objects.get().secret == secret
    services.rotate_secret(endpoint=services.create_endpoint(project=project, url=URL), expire_previous_in=DAY)
    destination = destinations.create_https_destination(project=project, name="Archive", url=URL)
    for _ in range(2):
        destination = destinations.rotate_secret(destination=destination, expire_previous_in=DAY)
    refused_by_budget(
        lambda: destinations.rotate_secret(destination=destination, expire_previous_in=DAY), "signing secret rolls"
    )


def test_the_api_answers_429_with_retry_after(monkeypatch: pytest.MonkeyPatch, api: Api) -> None:  # noqa: F811
    lower_budget(monkeypatch, services, "ENDPOINTS_CREATED_PER_PROJECT", 1)
    lower_budget(monkeypatch, services, "ENDPOINT_CHANGES_PER_PROJECT", 1)
    lower_budget(monkeypatch, services, "SECRET_ROLLS_PER_HOLDER", 1)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"}
    created = api.post("/webhooks", {"url": URL})
    assert created.status_code == 201, created.content
    endpoint = created.json()["id"]
    path = f"/api/v1/webhooks/{endpoint}"
    attempts = {
        "create": lambda: api.post("/webhooks", {"url": URL}),
        "change": lambda: Client().patch(path, {"description": "x"}, content_type="application/json", **auth),
        "roll": lambda: api.post(f"/webhooks/{endpoint}/rotate-secret"),
    }
    assert attempts["change"]().status_code == 200
    assert attempts["roll"]().status_code == 200
    for what, attempt in attempts.items():
        refused = attempt()
        assert refused.status_code == 429, what
        assert refused.json()["error"]["code"] == "rate_limited" and int(refused["Retry-After"]) > 0
    assert WebhookEndpoint.objects.count() == 1
    assert Client().delete(path, **auth).status_code == 204  # deleting is never refused


def test_the_pages_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "ENDPOINTS_CREATED_PER_PROJECT", 1)
    lower_budget(monkeypatch, services, "SECRET_ROLLS_PER_HOLDER", 0)
    owner = make_user()
    project = create_project(owner=owner, name="Weddings")
    browser = Client()
    browser.force_login(owner)
    new = f"/projects/{project.public_id}/webhooks/new"
    assert browser.post(new, {"url": URL}).status_code == 302
    refused = browser.post(new, {"url": URL})
    assert "Too many new webhook endpoints" in refused.content.decode()
    endpoint = WebhookEndpoint.objects.get()
    base = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}"
    page = browser.get(f"{base}/roll-secret").content.decode()
    replacing = page.split('name="replacing" value="')[1].split('"')[0]
    rolled = browser.post(f"{base}/roll-secret", {"expire_previous_in": "3600", "replacing": replacing}, follow=True)
    assert "Too many signing secret rolls" in rolled.content.decode()
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


def test_the_real_budgets_leave_room_for_real_use() -> None:
    assert services.ENDPOINTS_CREATED_PER_PROJECT.max_hits >= services.MAX_ENDPOINTS_PER_PROJECT
    assert services.ENDPOINT_CHANGES_PER_PROJECT.max_hits >= 2 * services.MAX_ENDPOINTS_PER_PROJECT
    assert services.SECRET_ROLLS_PER_HOLDER.max_hits >= 3


def test_enabling_past_the_budget_says_so_on_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "ENDPOINT_CHANGES_PER_PROJECT", 0)
    owner = make_user()
    project = create_project(owner=owner, name="Weddings")
    endpoint = services.create_endpoint(project=project, url=URL)
    browser = Client()
    browser.force_login(owner)
    base = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}"
    assert browser.post(f"{base}/disable").status_code == 302  # turning off is never refused
    refused = browser.post(f"{base}/enable", follow=True)
    assert refused.status_code == 200
    assert "Too many changes to webhook endpoints" in refused.content.decode()
    assert WebhookEndpoint.objects.get().enabled is False
