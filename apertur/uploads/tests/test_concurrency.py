"""Races of guest uploads, on PostgreSQL with real parallel connections."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import pytest
from django.db import connection, transaction

from apertur.projects.services import create_project
from apertur.testing import image_file, make_user, record_outcome, wait_until_blocked
from apertur.uploads import services


def test_an_upload_does_not_wait_for_an_upload_to_another_project_on_the_same_plan(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload locks its session (and project) to check the limits; it used to lock the plan row joined to them
    too (``select_for_update`` without ``of``), which every project on that plan shares: guest uploads to all of
    a plan's projects took turns, and each waited for the other's file to be stored."""
    first = services.create_session(project=create_project(owner=make_user(), name="Weddings"), title="Ana & Ben")
    second = services.create_session(project=create_project(owner=make_user(), name="Parties"), title="Carla")
    held, release = threading.Event(), threading.Event()
    real_schedule = services.destinations.schedule

    def schedule_held_in_the_first_upload(**kwargs: Any) -> None:
        if threading.current_thread().name == "first-upload":
            held.set()  # the first upload's transaction holds its locks
            assert release.wait(timeout=10)
        real_schedule(**kwargs)

    monkeypatch.setattr(services.destinations, "schedule", schedule_held_in_the_first_upload)
    outcome: dict[str, Any] = {}

    def first_upload() -> None:
        try:
            outcome["first"] = services.accept_upload(session=first, file=image_file())
        except Exception as exc:
            outcome["first"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=first_upload, name="first-upload")
    thread.start()
    try:
        assert held.wait(timeout=10)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                outcome["second"] = services.accept_upload(session=second, file=image_file())
        except Exception as exc:
            outcome["second"] = exc
    finally:
        release.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert not isinstance(outcome["second"], Exception), outcome["second"]  # was: lock timeout, on the plan row
    assert not isinstance(outcome["first"], Exception), outcome["first"]


@pytest.mark.parametrize("removed", ["webhook endpoint", "destination"])
def test_an_upload_while_its_projects_endpoint_or_destination_is_deleted_is_kept(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, removed: str
) -> None:
    """An upload records a delivery to each of the project's webhook endpoints and destinations in its transaction.
    One deleted at that moment (read by the upload before the deletion committed) made the delivery's foreign
    key fail when the upload committed: an IntegrityError, the guest's photo refused with a 500. The upload now
    waits for the deletion and records no delivery to what is gone."""

    from django.db.models.signals import post_delete

    from apertur.testing import fake_dns
    from apertur.uploads.destinations import create_https_destination, delete_destination
    from apertur.uploads.models import Destination, DestinationDelivery
    from apertur.webhooks.models import WebhookDelivery, WebhookEndpoint
    from apertur.webhooks.services import create_endpoint, delete_endpoint

    fake_dns(monkeypatch, {"hooks.example.com": [["93.184.215.14"]]})
    project = create_project(owner=make_user(), name="Weddings")
    session = services.create_session(project=project, title="Ana & Ben")
    if removed == "webhook endpoint":
        endpoint = create_endpoint(project=project, url="https://hooks.example.com/in", events=["upload.created"])
        model: Any = WebhookEndpoint
        delete: Any = lambda: delete_endpoint(endpoint=endpoint)  # noqa: E731
    else:
        destination = create_https_destination(project=project, name="Archive", url="https://hooks.example.com/in")
        model = Destination
        delete = lambda: delete_destination(destination=destination)  # noqa: E731
    held, release = threading.Event(), threading.Event()

    def hold_the_deletion(**kwargs: Any) -> None:
        if threading.current_thread().name == "delete":
            held.set()  # the row is deleted, not committed
            assert release.wait(timeout=10)

    post_delete.connect(hold_the_deletion, sender=model, weak=False, dispatch_uid="test-hold-the-deletion")
    outcome: dict[str, Any] = {}

    run = partial(record_outcome, outcome)

    deleting = threading.Thread(target=run, args=("delete", delete), name="delete")
    uploading = threading.Thread(
        target=run, args=("upload", lambda: services.accept_upload(session=session, file=image_file())), name="upload"
    )
    try:
        deleting.start()
        assert held.wait(timeout=10)
        uploading.start()
        # Until the upload is done or waits for the deletion's lock.
        wait_until_blocked(uploading)
    finally:
        release.set()
        deleting.join(timeout=30)
        uploading.join(timeout=30)
        post_delete.disconnect(sender=model, dispatch_uid="test-hold-the-deletion")
    assert not deleting.is_alive() and not uploading.is_alive()
    assert outcome["delete"] is None, outcome["delete"]
    assert not isinstance(outcome["upload"], Exception), outcome["upload"]  # was: IntegrityError (foreign key)
    assert not model.objects.exists()
    assert not WebhookDelivery.objects.exists() and not DestinationDelivery.objects.exists()


@pytest.mark.parametrize("kind", ["webhook endpoint", "destination"])
def test_disabling_while_a_worker_claims_one_of_its_deliveries_does_not_deadlock(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Disabling a webhook endpoint or a destination locks it, then ends its pending deliveries (their rows). A
    worker claiming one of them locked, in one statement, the delivery and then the rows joined to it, the
    endpoint or destination among them: the reverse order. Both at once deadlocked, and PostgreSQL killed one of
    them (the worker's attempt, or the owner's disable: a 500). The claim now locks the delivery only."""

    from django.db.models.signals import post_save

    from apertur.testing import fake_dns
    from apertur.uploads import destinations
    from apertur.uploads.models import Destination, DestinationDelivery
    from apertur.webhooks import services as webhooks
    from apertur.webhooks.models import WebhookDelivery, WebhookEndpoint

    fake_dns(monkeypatch, {"hooks.example.com": [["93.184.215.14"]]})
    project = create_project(owner=make_user(), name="Weddings")
    session = services.create_session(project=project, title="Ana & Ben")
    model: Any
    if kind == "webhook endpoint":
        row: Any = webhooks.create_endpoint(
            project=project, url="https://hooks.example.com/in", events=["upload.created"]
        )
        model, deliveries = WebhookEndpoint, WebhookDelivery
        monkeypatch.setattr(webhooks, "_post", lambda *args, **kwargs: 500)
        disable: Any = lambda: webhooks.update_endpoint(endpoint=row, enabled=False)  # noqa: E731
        claim: Any = lambda pk: webhooks.attempt(delivery_id=pk)  # noqa: E731
    else:
        row = destinations.create_https_destination(project=project, name="Archive", url="https://hooks.example.com/in")
        model, deliveries = Destination, DestinationDelivery
        monkeypatch.setattr(destinations, "_send_https", lambda *args: (_ for _ in ()).throw(RuntimeError("HTTP 500")))
        disable = lambda: destinations.disable_destination(destination=row)  # noqa: E731
        claim = lambda pk: destinations.attempt(delivery_id=pk)  # noqa: E731
    services.accept_upload(session=session, file=image_file())
    delivery = deliveries.objects.get(status="pending")
    held, release = threading.Event(), threading.Event()

    def hold_the_disabling(**kwargs: Any) -> None:
        if threading.current_thread().name == "disable":
            held.set()  # the endpoint or destination is locked; its pending deliveries are next
            assert release.wait(timeout=10)

    post_save.connect(hold_the_disabling, sender=model, weak=False, dispatch_uid="test-hold-the-disabling")
    outcome: dict[str, Any] = {}

    run = partial(record_outcome, outcome)

    disabling = threading.Thread(target=run, args=("disable", disable), name="disable")
    claiming = threading.Thread(target=run, args=("claim", lambda: claim(delivery.pk)), name="claim")
    try:
        disabling.start()
        assert held.wait(timeout=10)
        claiming.start()
        # Until the worker is done or waits for a lock.
        wait_until_blocked(claiming)
    finally:
        release.set()
        disabling.join(timeout=30)
        claiming.join(timeout=30)
        post_save.disconnect(sender=model, dispatch_uid="test-hold-the-disabling")
    assert not disabling.is_alive() and not claiming.is_alive()
    assert not isinstance(outcome["disable"], Exception), outcome["disable"]  # was: deadlock detected, one side
    assert not isinstance(outcome["claim"], Exception), outcome["claim"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)  # ended by the disabling, not revived


@pytest.mark.parametrize("limit", ["max_files", "uploads_per_month"])
def test_two_guests_racing_for_the_last_upload_never_pass_the_limit(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """Two guests send a photo at once and one is left of the link's ``max_files`` (or of the project's uploads for
    the month, through two links): the second waits for the first and is refused, never both kept."""
    project = create_project(owner=make_user(), name="Weddings")
    if limit == "uploads_per_month":
        project.plan.uploads_per_month, project.plan.max_active_sessions = 1, 2
        project.plan.save(update_fields=["uploads_per_month", "max_active_sessions"])
        first = services.create_session(project=project, title="Ana & Ben")
        second = services.create_session(project=project, title="Carla")
    else:
        first = second = services.create_session(project=project, title="Ana & Ben", max_files=1)
    held, release = threading.Event(), threading.Event()
    real_schedule = services.destinations.schedule

    def schedule_held_in_the_first_upload(**kwargs: Any) -> None:
        if threading.current_thread().name == "first-upload":
            held.set()
            assert release.wait(timeout=10)
        real_schedule(**kwargs)

    monkeypatch.setattr(services.destinations, "schedule", schedule_held_in_the_first_upload)
    outcome: dict[str, Any] = {}

    def upload(name: str, session: Any) -> None:
        record_outcome(outcome, name, lambda: services.accept_upload(session=session, file=image_file()))

    threads = [
        threading.Thread(target=upload, args=("first", first), name="first-upload"),
        threading.Thread(target=upload, args=("second", second), name="second-upload"),
    ]
    threads[0].start()
    try:
        assert held.wait(timeout=10)
        threads[1].start()
        assert wait_until_blocked(threads[1])  # the second upload waits for the first's locks
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert not isinstance(outcome["first"], Exception), outcome["first"]
    assert isinstance(outcome["second"], services.QuotaExceeded), outcome["second"]
    assert services.Upload.objects.filter(project=project).count() == 1
