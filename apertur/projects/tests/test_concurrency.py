"""Races of projects, on PostgreSQL with real parallel connections."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from apertur.projects import services
from apertur.projects.models import Project
from apertur.projects.selectors import plan_by_name
from apertur.testing import make_user

CHANGES: dict[str, Callable[[Project], Any]] = {
    "settings": lambda project: services.update_settings(project=project, description="Summer weddings"),
    "plan": lambda project: services.change_plan(project=project, plan=plan_by_name("Pro")),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_changing_a_project_does_not_hold_up_new_projects_on_its_plan(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """A settings or plan change locks its project; it used to lock the plan row joined to it too
    (``select_for_update`` without ``of``), which every project on that plan shares: a signup (its first project
    references the Free plan, a foreign key check that waits for such a lock) waited for it, and a project renamed
    to a name being created at that moment deadlocked with the creation (a 500 for one of them)."""
    changed = services.create_project(owner=make_user(), name="Weddings")
    newcomer = make_user()
    held, release = threading.Event(), threading.Event()
    real_record = services.audit.record

    def record_held_in_the_change(**kwargs: Any) -> None:
        real_record(**kwargs)
        if threading.current_thread().name == "change":
            held.set()  # the change's transaction holds its locks
            assert release.wait(timeout=10)

    monkeypatch.setattr(services.audit, "record", record_held_in_the_change)
    outcome: dict[str, Any] = {}

    def changing() -> None:
        try:
            outcome["change"] = CHANGES[change](changed)
        except Exception as exc:
            outcome["change"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=changing, name="change")
    thread.start()
    try:
        assert held.wait(timeout=10)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                outcome["create"] = services.create_project(owner=newcomer, name="My project")
        except Exception as exc:
            outcome["create"] = exc
    finally:
        release.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert isinstance(outcome["create"], Project), outcome["create"]  # was: lock timeout, on the plan row
    assert isinstance(outcome["change"], Project), outcome["change"]
