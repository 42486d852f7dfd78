"""How many upload sessions a project may open in a day (``SESSIONS_PER_PROJECT``): only *open* sessions are
capped by the plan, so open-then-close loops wrote session rows, audit events and webhook events (each delivered
to every endpoint, an outbound POST) without end. One rule in the service: the page, the API and the CLI refuse
alike, and a refusal writes nothing. And a project's destinations: created, enabled again, an S3 access key replaced
(each audited); disabling one is never refused."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api, api  # noqa: F401 - the fixtures are reused here
from apertur.core import ratelimit
from apertur.core.errors import RateLimited
from apertur.core.models import AuditEvent
from apertur.oauth.tests.conftest import Flow, flow  # noqa: F401
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import lower_budget, make_user, refused_by_budget
from apertur.uploads import destinations, services
from apertur.uploads.models import Destination, DestinationStatus, UploadSession
from apertur.webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def budget_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "SESSIONS_PER_PROJECT", ratelimit.Limit("t-sessions", 2, 24 * 60 * 60))


def test_sessions_up_to_the_daily_budget_then_refused_with_nothing_written(budget_of_two: None) -> None:
    project = create_project(owner=make_user(), name="Weddings", plan=plan_by_name("Pro"))
    for n in range(2):  # opened and closed at once: the plan's cap on open sessions never bites
        services.close_session(session=services.create_session(project=project, title=f"Link {n}"))
    audits, events = AuditEvent.objects.count(), WebhookEvent.objects.count()
    with pytest.raises(RateLimited) as refused:
        services.create_session(project=project, title="One too many")
    assert refused.value.retry_after > 0
    assert "Too many upload links" in refused.value.message
    assert UploadSession.objects.filter(project=project).count() == 2
    assert (AuditEvent.objects.count(), WebhookEvent.objects.count()) == (audits, events)
    services.create_session(project=project, title="Test", livemode=False)  # test mode has its own budget
    other = create_project(owner=make_user(), name="Other")
    services.create_session(project=other, title="Theirs")  # per project


def test_the_api_answers_429_with_retry_after(budget_of_two: None, api: Api) -> None:  # noqa: F811
    for n in range(2):
        created = api.post("/upload-sessions", {"title": f"Link {n}"})
        assert created.status_code == 201, created.content
        assert api.post(f"/upload-sessions/{created.json()['id']}/close").status_code == 200
    refused = api.post("/upload-sessions", {"title": "One too many"})
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0
    assert UploadSession.objects.count() == 2


def test_the_project_page_says_so_by_the_form(budget_of_two: None) -> None:
    owner = make_user()
    project = create_project(owner=owner, name="Weddings", plan=plan_by_name("Pro"))
    browser = Client()
    browser.force_login(owner)
    for n in range(2):
        assert browser.post(f"/projects/{project.public_id}/sessions", {"title": f"Link {n}"}).status_code == 302
    refused = browser.post(f"/projects/{project.public_id}/sessions", {"title": "One too many"}, follow=True)
    assert "Too many upload links" in refused.content.decode()
    assert UploadSession.objects.count() == 2


def test_below_the_real_budget_a_busy_day_is_accepted(flow: Flow) -> None:  # noqa: F811
    """The real budget, not a test one: a day of steady use (one link every couple of minutes) goes through."""
    assert services.SESSIONS_PER_PROJECT.max_hits >= 500
    for n in range(30):
        services.close_session(session=services.create_session(project=flow.project, title=f"Link {n}"))
    assert UploadSession.objects.count() == 30


URL = "https://hooks.example.com/in"


def _s3(project, **kwargs):  # type: ignore[no-untyped-def]
    return destinations.create_s3_destination(
        project=project, name="Bucket", bucket="photos", access_key_id="AKIA", secret_access_key="secret", **kwargs
    )


def test_destinations_created_up_to_the_budget_then_refused_even_after_removing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cap on destinations is freed by removing one; each creation and removal stays in the audit log."""
    monkeypatch.setattr(destinations, "CREATED_PER_PROJECT", ratelimit.Limit("t-destinations", 2, 60 * 60))
    project = create_project(owner=make_user(), name="Weddings")
    destinations.delete_destination(
        destination=destinations.create_https_destination(project=project, name="A", url=URL)
    )
    destinations.delete_destination(destination=_s3(project))
    audits = AuditEvent.objects.count()
    for create in (
        lambda: destinations.create_https_destination(project=project, name="x", url=URL),
        lambda: _s3(project),
    ):
        with pytest.raises(RateLimited) as refused:
            create()
        assert "Too many new destinations" in refused.value.message and refused.value.retry_after > 0
    assert Destination.objects.filter(project=project).count() == 0 and AuditEvent.objects.count() == audits
    _s3(project, livemode=False)  # test mode has its own budget
    _s3(create_project(owner=make_user(), name="Other"))  # per project
    owner = project.owner
    browser = Client()
    browser.force_login(owner)
    page = browser.post(f"/projects/{project.public_id}/destinations/new", {"kind": "https", "name": "A", "url": URL})
    assert page.status_code == 400 and "Too many new destinations" in page.content.decode()


def test_the_real_destination_budget_leaves_room_for_real_use() -> None:
    assert destinations.CREATED_PER_PROJECT.max_hits >= 2 * destinations.MAX_DESTINATIONS_PER_PROJECT
    assert destinations.ENABLED_PER_PROJECT.max_hits >= 2 * destinations.MAX_DESTINATIONS_PER_PROJECT
    assert destinations.ACCESS_KEY_REPLACEMENTS_PER_DESTINATION.max_hits >= 3


def _status(destination: Destination) -> str:
    return Destination.objects.get(pk=destination.pk).status


def test_destinations_enabled_up_to_the_budget_then_refused_and_disabling_still_goes_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each disable and enable is audited: a disable-enable loop wrote two events a turn without end. Enabling is
    counted per project and mode; disabling (it stops copies leaving Apertur) is never refused."""
    lower_budget(monkeypatch, destinations, "ENABLED_PER_PROJECT", 2)
    project = create_project(owner=make_user(), name="Weddings")
    destination = _s3(project)
    destinations.enable_destination(destination=destination)  # already on: writes nothing, spends nothing
    for _ in range(2):
        destinations.disable_destination(destination=destination)
        destinations.enable_destination(destination=destination)
    destinations.disable_destination(destination=destination)  # past the budget: still goes through
    assert _status(destination) == DestinationStatus.DISABLED
    refused_by_budget(lambda: destinations.enable_destination(destination=destination), "destinations enabled")
    assert _status(destination) == DestinationStatus.DISABLED
    assert AuditEvent.objects.filter(action="destination.disabled").count() == 3
    test_mode = _s3(project, livemode=False)  # test mode has its own budget
    destinations.disable_destination(destination=test_mode)
    destinations.enable_destination(destination=test_mode)
    assert _status(test_mode) == DestinationStatus.ACTIVE


def test_the_destination_page_says_so_and_disabling_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, destinations, "ENABLED_PER_PROJECT", 0)
    owner = make_user()
    project = create_project(owner=owner, name="Weddings")
    destination = _s3(project)
    browser = Client()
    browser.force_login(owner)
    base = f"/projects/{project.public_id}/destinations/{destination.public_id}"
    disabled = browser.post(f"{base}/disable", follow=True)
    assert "Destination “Bucket” disabled." in disabled.content.decode()
    assert _status(destination) == DestinationStatus.DISABLED
    audits = AuditEvent.objects.count()
    refused = browser.post(f"{base}/enable", follow=True)
    assert refused.status_code == 200 and "Too many destinations enabled. Try again in" in refused.content.decode()
    assert _status(destination) == DestinationStatus.DISABLED and AuditEvent.objects.count() == audits


def test_access_key_replacements_up_to_the_budget_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, destinations, "ACCESS_KEY_REPLACEMENTS_PER_DESTINATION", 2)
    owner = make_user()
    project = create_project(owner=owner, name="Weddings")
    destination = _s3(project)
    for n in range(2):
        destinations.replace_s3_credentials(destination=destination, access_key_id=f"AKIA{n}", secret_access_key="s")
    refused_by_budget(
        lambda: destinations.replace_s3_credentials(
            destination=destination, access_key_id="AKIA9", secret_access_key="other"
        ),
        "access key replacements",
    )
    stored = Destination.objects.get(pk=destination.pk)
    assert (stored.config["access_key_id"], stored.secret) == ("AKIA1", "s")
    browser = Client()
    browser.force_login(owner)
    form = {"access_key_id": "AKIA9", "secret_access_key": "other"}
    page = browser.post(f"/projects/{project.public_id}/destinations/{destination.public_id}/access-key", form)
    assert page.status_code == 400 and "Too many access key replacements. Try again in" in page.content.decode()
    assert Destination.objects.get(pk=destination.pk).config["access_key_id"] == "AKIA1"
    destinations.replace_s3_credentials(destination=_s3(project), access_key_id="AKIA9", secret_access_key="s")  # each
