from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.projects.services import create_project
from apertur.testing import make_user
from apertur.webhooks import services
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


T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)  # 07:00 in Toronto (EST)


def _endpoint(project) -> WebhookEndpoint:  # type: ignore[no-untyped-def]
    return services.create_endpoint(project=project, url="https://hooks.example.com/x")


def test_roll_secret_asks_first_then_shows_the_new_secret_once_and_the_overlap(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    endpoint = _endpoint(project)
    old = endpoint.secret
    base = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}"
    assert f'href="{base}/roll-secret"' in browser.get(f"{base}/").content.decode()
    with time_machine.travel(T0, tick=False):
        confirm = browser.get(f"{base}/roll-secret")
        assert confirm.status_code == 200
        page = confirm.content.decode()
        assert '<form method="post">' in page and 'name="csrfmiddlewaretoken"' in page
        choices = re.findall(r'name="expire_previous_in" value="(\d+)"( checked)?', page)
        assert choices == [("0", ""), ("3600", ""), ("86400", " checked"), ("259200", ""), ("604800", "")]
        assert WebhookEndpoint.objects.get().secret == old  # asking changes nothing
        rolled = browser.post(f"{base}/roll-secret", {"expire_previous_in": "3600"}, follow=True)
    page = rolled.content.decode()
    stored = WebhookEndpoint.objects.get()
    assert (stored.previous_secret, stored.previous_secret_expires_at) == (old, T0 + dt.timedelta(hours=1))
    shown = re.search(r'data-testid="webhook-secret">([^<]+)<', page)
    assert shown and shown.group(1) == stored.secret != old
    assert "New signing secret" in page and old not in page
    assert "2026-03-02 08:00 EST" in page  # until when the old secret still signs, in the project's zone
    audit = AuditEvent.objects.get(action="webhook_endpoint.secret_rotated")
    assert audit.actor == project.owner
    with time_machine.travel(T0 + dt.timedelta(minutes=5), tick=False):
        again = browser.get(f"{base}/").content.decode()
    assert stored.secret not in again and 'data-testid="webhook-secret"' not in again  # shown once
    assert 'data-testid="previous-secret-until"' in again and "2026-03-02 08:00 EST" in again
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):
        expired = browser.get(f"{base}/").content.decode()
    assert 'data-testid="previous-secret-until"' not in expired


def test_rolling_with_no_overlap_says_the_old_secret_stopped(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    endpoint = _endpoint(project)
    base = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}"
    page = browser.post(f"{base}/roll-secret", {"expire_previous_in": "0"}, follow=True).content.decode()
    stored = WebhookEndpoint.objects.get()
    assert stored.secret != endpoint.secret and stored.previous_secret == ""
    assert f'data-testid="webhook-secret">{stored.secret}<' in page
    assert "The previous secret no longer signs deliveries." in page


@pytest.mark.parametrize("choice", ["", "60", "999999", "-1"])
def test_only_the_offered_overlaps_are_taken(owner, choice: str) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    endpoint = _endpoint(project)
    data = {"expire_previous_in": choice} if choice else {}
    response = browser.post(f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/roll-secret", data)
    assert response.status_code == 400 and "Choose when the current secret stops working" in response.content.decode()
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


def test_rolling_needs_the_csrf_token(owner) -> None:  # type: ignore[no-untyped-def]
    project, _ = owner
    endpoint = _endpoint(project)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(project.owner)
    url = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/roll-secret"
    assert strict.post(url, {"expire_previous_in": "0"}).status_code == 403
    assert WebhookEndpoint.objects.get().secret == endpoint.secret
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', strict.get(url).content.decode())
    assert token
    assert strict.post(url, {"expire_previous_in": "0", "csrfmiddlewaretoken": token.group(1)}).status_code == 302
    assert WebhookEndpoint.objects.get().secret != endpoint.secret


def test_only_the_projects_owner_can_roll(owner) -> None:  # type: ignore[no-untyped-def]
    project, _ = owner
    endpoint = _endpoint(project)
    stranger = Client()
    stranger.force_login(make_user())
    url = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/roll-secret"
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, {"expire_previous_in": "0"}).status_code == 404
    assert WebhookEndpoint.objects.get().secret == endpoint.secret
    assert not AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated").exists()


def test_the_delivery_log_pages_newest_first(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.core.pages import PAGE_SIZE

    project, browser = owner
    endpoint = _endpoint(project)
    start = dt.datetime.now(tz=dt.UTC)
    events = []
    for n in range(PAGE_SIZE + 3):
        with time_machine.travel(start + dt.timedelta(seconds=n), tick=False):
            events.append(services.send_test_event(endpoint=endpoint).event.public_id)
    base = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/"
    first = browser.get(base).content.decode()
    shown = re.findall(r'<span class="muted">(evt_\w+)</span>', first)
    assert shown == events[::-1][:PAGE_SIZE]
    assert "Page 1 of 2" in first and 'href="?page=2" rel="next"' in first
    second = browser.get(base, {"page": 2}).content.decode()
    assert re.findall(r'<span class="muted">(evt_\w+)</span>', second) == events[::-1][PAGE_SIZE:]
    assert "Page 2 of 2" in second and 'rel="prev"' in second
    assert "kept for 30 days after its event" in first  # the housekeeping deletes them then (EVENTS_KEPT)


def test_the_page_that_shows_the_signing_secret_is_never_stored_by_the_browser(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    shown = browser.post(
        f"/projects/{project.public_id}/webhooks/new", {"url": "https://hooks.example.com/x"}, follow=True
    )
    assert 'data-testid="webhook-secret"' in shown.content.decode()
    assert "no-store" in shown["Cache-Control"]


def test_a_refused_endpoint_keeps_the_events_that_were_checked(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    refused = browser.post(
        f"/projects/{project.public_id}/webhooks/new",
        {"url": "http://hooks.example.com/x", "events": ["upload.created", "session.closed"]},
    )
    assert refused.status_code == 400
    checked = re.findall(r'<input type="checkbox" name="events" value="([^"]+)" checked>', refused.content.decode())
    assert checked == ["upload.created", "session.closed"]


def test_a_new_signing_secret_waits_for_its_own_endpoints_page(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    other = services.create_endpoint(project=project, url="https://hooks.example.com/other")
    browser.post(f"/projects/{project.public_id}/webhooks/new", {"url": "https://hooks.example.com/new"})
    new = WebhookEndpoint.objects.get(url="https://hooks.example.com/new")
    base = f"/projects/{project.public_id}/webhooks"
    assert new.secret not in browser.get(f"{base}/{other.public_id}/").content.decode()
    assert new.secret in browser.get(f"{base}/{new.public_id}/").content.decode()


def test_an_endpoint_for_every_event_says_so_in_words(owner) -> None:  # type: ignore[no-untyped-def]
    """None ticked means every event; the pages say "All events", not the stored wildcard "*"."""
    project, browser = owner
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/all", events=["*"])
    detail = browser.get(f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/").content.decode()
    assert "<dt>Events</dt><dd>All events</dd>" in detail
    listed = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert "· All events</li>" in listed and "<code>*</code>" not in listed


def test_the_owner_disables_and_enables_an_endpoint_after_a_page_that_says_where_events_go(owner) -> None:  # type: ignore[no-untyped-def]
    project, browser = owner
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x", events=["upload.created"])
    page = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/"
    detail = browser.get(page).content.decode()
    assert f'href="{page}disable"' in detail and f"{page}enable" not in detail
    confirm = browser.get(f"{page}disable").content.decode()
    assert "Disable this webhook endpoint?" in confirm and "<code>https://hooks.example.com/x</code>" in confirm
    assert WebhookEndpoint.objects.get().enabled  # looking at the page changes nothing
    careful = Client(enforce_csrf_checks=True)
    careful.force_login(project.owner)
    assert careful.post(f"{page}disable").status_code == 403 and WebhookEndpoint.objects.get().enabled
    done = browser.post(f"{page}disable", follow=True)
    assert done.redirect_chain == [(page, 302)] and "Webhook endpoint disabled." in done.content.decode()
    assert not WebhookEndpoint.objects.get().enabled
    assert f'href="{page}enable"' in done.content.decode()
    assert "while the endpoint is disabled, test events are all it is sent" in done.content.decode()
    assert browser.get(f"{page}disable")["Location"] == page  # already disabled: nothing to confirm
    confirm = browser.get(f"{page}enable").content.decode()
    assert "Enable this webhook endpoint?" in confirm and "the events it subscribes to from Weddings" in confirm
    assert "Events that happened while it was disabled are not sent." in confirm
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.post(f"{page}enable").status_code == 404 and not WebhookEndpoint.objects.get().enabled
    browser.post(f"{page}enable")
    assert WebhookEndpoint.objects.get().enabled
    updates = AuditEvent.objects.filter(action="webhook_endpoint.updated").order_by("pk")
    assert [(e.actor_id, e.data["enabled"]) for e in updates] == [(project.owner.pk, False), (project.owner.pk, True)]


def test_the_project_page_shows_an_endpoints_description_and_that_it_is_disabled(owner) -> None:  # type: ignore[no-untyped-def]
    # The description the owner typed was shown nowhere, and a disabled endpoint looked the same as an enabled
    # one on the project page (destinations there show their status).
    project, browser = owner
    browser.post(
        f"/projects/{project.public_id}/webhooks/new", {"url": "https://hooks.example.com/x", "description": "CRM sync"}
    )
    endpoint = WebhookEndpoint.objects.get()
    detail = browser.get(f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/").content.decode()
    assert "CRM sync" in detail
    listed = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert "CRM sync" in listed and ">Disabled<" not in listed
    browser.post(f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/disable")
    for url in (f"/projects/{project.public_id}/", f"/projects/{project.public_id}/webhooks/"):
        assert '<span class="pill rejected">Disabled</span>' in browser.get(url).content.decode(), url


def test_a_refused_endpoint_marks_its_url_field(owner) -> None:  # type: ignore[no-untyped-def]
    """The form is not a Django form: the URL field is marked invalid and described by the alert above it."""
    project, browser = owner
    html = browser.post(f"/projects/{project.public_id}/webhooks/new", {"url": "ftp://hooks.example"}).content.decode()
    assert '<div class="alert error" role="alert" id="form-error">' in html
    assert re.search(r'<input id="url"[^>]* aria-invalid="true" aria-describedby="form-error"', html)
    assert "aria-invalid" not in html.split('id="description"')[1].split(">")[0]


def test_a_roll_form_naming_no_secret_we_gave_rolls_nothing_rather_than_failing(owner) -> None:  # type: ignore[no-untyped-def]
    """The form's ``replacing`` is whatever the browser posts: a value that is not a fingerprint we gave (non-ASCII,
    which ``hmac.compare_digest`` refuses with a TypeError on strings) is a roll made meanwhile, not a 500."""
    project, browser = owner
    endpoint = _endpoint(project)
    url = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/roll-secret"
    response = browser.post(url, {"expire_previous_in": "0", "replacing": "é"})
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


def test_deleting_an_endpoint_twice_says_it_is_gone_instead_of_not_found(owner) -> None:  # type: ignore[no-untyped-def]
    """A double click on Delete endpoint (or a second tab): the second request answered the 404 page, as if the
    deletion had failed. It goes back to the project's page saying the endpoint no longer exists."""
    project, browser = owner
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    url = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/delete"
    assert browser.post(url).status_code == 302
    again = browser.post(url, follow=True)
    assert again.status_code == 200 and again.redirect_chain[-1][0] == f"/projects/{project.public_id}/"
    assert "This webhook endpoint no longer exists" in again.content.decode()
    assert AuditEvent.objects.filter(action="webhook_endpoint.deleted").count() == 1
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.post(url).status_code == 404


def test_test_events_are_limited_per_owner_so_apertur_cannot_be_used_to_flood_a_url(owner) -> None:  # type: ignore[no-untyped-def]
    """A test event is a POST to any public URL the owner typed, retried up to 7 times when it fails: unlimited,
    anyone who signed up could make Apertur's workers flood a third party's server (and fill the delivery queue).
    Per owner, across their projects and endpoints (more projects or endpoints give no more): past the budget
    nothing is queued and the page says when to try again."""
    project, browser = owner
    other = create_project(owner=project.owner, name="Parties")
    endpoints = [
        services.create_endpoint(project=p, url="https://victim.example/hook", events=["upload.created"])
        for p in (project, other)
    ]
    limit = 30  # an hour
    pages = [
        browser.post(f"/projects/{e.project.public_id}/webhooks/{e.public_id}/test", follow=True).content.decode()
        for e in endpoints * 20
    ]
    assert WebhookDelivery.objects.count() == limit
    assert all("Test event queued" in page for page in pages[:limit])
    assert all("Too many test events" in page for page in pages[limit:])
    # Another owner keeps their own budget.
    theirs = create_project(owner=make_user(), name="Theirs")
    endpoint = services.create_endpoint(project=theirs, url="https://hooks.example.com/x", events=["upload.created"])
    services.send_test_event(endpoint=endpoint)
    assert WebhookDelivery.objects.count() == limit + 1
