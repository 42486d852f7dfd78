"""Races of projects, on PostgreSQL with real parallel connections."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db import connection, transaction

from apertur.projects import services
from apertur.projects.errors import ProjectNameTaken
from apertur.projects.models import Project
from apertur.projects.selectors import plan_by_name
from apertur.testing import make_user, record_outcome, wait_until_blocked

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


@pytest.mark.parametrize(
    ("second", "name"), [("rename", "Garden party"), ("rename", "garden PARTY"), ("create", "garden PARTY")]
)
def test_a_name_taken_by_a_creation_in_flight_is_refused_not_doubled_nor_a_500(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, second: str, name: str
) -> None:
    """An owner's project names are unique whatever their case, which only the check in code enforces (the
    constraint is on the exact name). A creation and a rename (or another creation) at once both passed the check:
    with another case the owner got two projects of one name; with the same name the rename's UPDATE failed on the
    constraint, an IntegrityError (a 500). Name changes of one owner now take turns on the owner's row."""

    owner = make_user()
    other = services.create_project(owner=owner, name="Weddings")
    held, release = threading.Event(), threading.Event()
    real_record = services.audit.record

    def record_held_in_the_creation(**kwargs: Any) -> None:
        real_record(**kwargs)
        if threading.current_thread().name == "first":
            held.set()  # "Garden party" is inserted, not committed
            assert release.wait(timeout=10)

    monkeypatch.setattr(services.audit, "record", record_held_in_the_creation)
    outcome: dict[str, Any] = {}

    run = partial(record_outcome, outcome)

    first = threading.Thread(
        target=run, args=("first", lambda: services.create_project(owner=owner, name="Garden party")), name="first"
    )
    if second == "rename":
        action: Callable[[], Any] = lambda: services.update_settings(project=other, name=name)  # noqa: E731
    else:
        action = lambda: services.create_project(owner=owner, name=name)  # noqa: E731
    later = threading.Thread(target=run, args=("second", action), name="second")
    first.start()
    try:
        assert held.wait(timeout=10)
        later.start()
        # Until the second is done (the old behaviour for a name in another case) or waits for a lock.
        wait_until_blocked(later)
    finally:
        release.set()
        first.join(timeout=30)
        later.join(timeout=30)
    assert not first.is_alive() and not later.is_alive()
    assert isinstance(outcome["first"], Project), outcome["first"]
    assert isinstance(outcome["second"], ProjectNameTaken), outcome["second"]  # was IntegrityError, or a Project
    assert Project.objects.filter(owner=owner, name__iexact="garden party").count() == 1
