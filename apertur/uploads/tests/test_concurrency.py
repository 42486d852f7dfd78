"""Races of guest uploads, on PostgreSQL with real parallel connections."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction

from apertur.projects.services import create_project
from apertur.testing import image_file, make_user
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
