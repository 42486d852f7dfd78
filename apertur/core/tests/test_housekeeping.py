"""The worker's housekeeping deletes what is kept only for a while, and nothing else."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from apertur.core import housekeeping
from apertur.core.models import IdempotencyKey
from apertur.testing import plan_with_indexes, while_paused
from apertur.webhooks.tasks import deliver_webhook

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def _key(name: str, age: dt.timedelta) -> None:
    IdempotencyKey.objects.create(
        owner="app:1:live", key=name, method="POST", path="/x", body_hash="0" * 64, status=201, created_at=NOW - age
    )


def _task(status: str, finished_age: dt.timedelta | None, queued_age: dt.timedelta | None = None) -> int:
    deliver_webhook.enqueue(0)
    result = DBTaskResult.objects.order_by("-enqueued_at", "-pk").first()
    assert result is not None
    finished = NOW - finished_age if finished_age is not None else None
    queued = NOW - (queued_age or (finished_age or dt.timedelta()) + dt.timedelta(minutes=1))
    DBTaskResult.objects.filter(pk=result.pk).update(status=status, finished_at=finished, enqueued_at=queued)
    return result.pk


def test_prune_deletes_old_keys_and_old_finished_task_results_only() -> None:
    _key("old", dt.timedelta(hours=25))
    _key("fresh", dt.timedelta(hours=23))
    old_done = _task("SUCCESSFUL", dt.timedelta(days=15))
    old_failed = _task("FAILED", dt.timedelta(days=15))
    recent = _task("SUCCESSFUL", dt.timedelta(days=13), queued_age=dt.timedelta(days=20))  # retried for a week
    waiting = _task("READY", None)
    done = housekeeping.prune(now=NOW)
    assert (done["idempotency_keys"], done["task_results"]) == (1, 2)
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    left = set(DBTaskResult.objects.values_list("pk", flat=True))
    assert left == {recent, waiting} and not left & {old_done, old_failed}
    done = housekeeping.prune(now=NOW)
    assert (done["idempotency_keys"], done["task_results"]) == (0, 0)


def test_old_task_results_are_found_by_index_not_by_reading_every_row(postgres_only: None) -> None:
    """Each batch looked for ``finished_at`` older than 14 days, which no index serves: a read of the whole table
    (millions of results on a busy day) per batch of 5,000. A task finishes after it was queued, so the results are
    also queued before that time, which the ``(enqueued_at, id)`` index finds."""
    plan = plan_with_indexes(housekeeping.old_task_results(NOW).order_by().values_list("pk", flat=True)[:5])
    assert "task_result_enqueued" in plan and "Seq Scan" not in plan, plan


def test_a_backlog_is_deleted_in_bounded_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(housekeeping, "BATCH", 2)
    monkeypatch.setattr(housekeeping, "MAX_BATCHES", 2)
    for n in range(7):
        _key(f"k{n}", dt.timedelta(days=2))
    assert housekeeping.prune(now=NOW)["idempotency_keys"] == 4  # two batches of two this pass
    assert housekeeping.prune(now=NOW)["idempotency_keys"] == 3


def test_a_pass_skips_the_rows_a_request_holds_instead_of_waiting_for_them(postgres_only: None) -> None:
    """A pass's batch waited for any row a request held (a replayed refresh token locks its row, an app deletion its
    tokens before its cascade deletes them) while holding the rows it had already deleted: the two waited for each
    other when the request then reached one of those (a deadlock, one of them rolled back). A batch now skips a
    held row (the next pass deletes it) and never waits."""
    for name in ("held", "a", "b"):
        _key(name, dt.timedelta(days=2))
    held, release = threading.Event(), threading.Event()

    def request() -> None:
        with transaction.atomic():
            assert list(IdempotencyKey.objects.select_for_update().filter(key="held").values_list("pk", flat=True))
            held.set()
            assert release.wait(timeout=10)

    outcome = while_paused(request, lambda: housekeeping.prune(now=NOW)["idempotency_keys"], paused=held, go=release)
    assert outcome["second"] == 2 and not outcome["second_waited"], outcome
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["held"]
    assert housekeeping.prune(now=NOW)["idempotency_keys"] == 1  # the next pass


@pytest.mark.django_db(transaction=True)
def test_the_background_pass_runs_and_stops() -> None:
    _key("old", dt.timedelta(days=2))
    stop = threading.Event()
    with time_machine.travel(NOW, tick=False):
        thread = housekeeping.start_in_background(stop=stop, interval=0.05)
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert not IdempotencyKey.objects.exists()


def test_an_app_adds_its_own_pass_and_gets_the_pass_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dt.datetime] = []
    monkeypatch.setattr(housekeeping, "_pruners", dict(housekeeping._pruners))
    housekeeping.register("example", lambda at: seen.append(at) or 3)
    assert housekeeping.prune(now=NOW)["example"] == 3
    assert seen == [NOW]


def test_the_webhooks_app_registers_its_pass() -> None:
    # Registered from WebhooksConfig.ready: core itself never imports the domain apps.
    assert "previous_signing_secrets" in housekeeping._pruners


def test_one_apps_failing_pass_does_not_stop_the_others(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(at: dt.datetime) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(housekeeping, "_pruners", {"broken": broken, "after": lambda at: 2})
    done = housekeeping.prune(now=NOW)
    assert done["broken"] == 0 and done["after"] == 2
    assert "housekeeping: the broken pass failed" in caplog.text


def _running(age: dt.timedelta, workers: list[str]) -> str:
    deliver_webhook.enqueue(0)
    result = DBTaskResult.objects.order_by("-enqueued_at", "-pk").first()
    assert result is not None
    DBTaskResult.objects.filter(pk=result.pk).update(status="RUNNING", started_at=NOW - age, worker_ids=workers)
    return str(result.pk)


def test_a_task_a_dead_worker_left_running_is_queued_again_then_failed_past_its_claims(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """db_worker holds no lock while a task runs: a worker killed mid-task (SIGKILL, out of memory) left it RUNNING
    for ever, and its work (an owner's upload notice) was lost with nobody told."""
    abandoned = _running(dt.timedelta(minutes=31), ["111@gone"])
    running = _running(dt.timedelta(minutes=29), ["222@alive"])
    hopeless = _running(dt.timedelta(hours=2), ["1@a", "2@b", "3@c"])
    with time_machine.travel(NOW, tick=False):
        assert housekeeping.prune(now=NOW)["abandoned_tasks"] == 2
        ready = {str(pk) for pk in DBTaskResult.objects.ready().values_list("pk", flat=True)}
    assert ready == {abandoned}  # a worker picks it up at once
    statuses = dict(DBTaskResult.objects.values_list("pk", "status"))
    assert {str(k): v for k, v in statuses.items()} == {abandoned: "READY", running: "RUNNING", hopeless: "FAILED"}
    failed = DBTaskResult.objects.get(pk=hopeless)
    assert failed.finished_at == NOW and "Abandoned 3 times" in failed.traceback and "3@c" in failed.traceback
    assert "abandoned by worker ['111@gone']: queued again" in caplog.text
    assert housekeeping.prune(now=NOW)["abandoned_tasks"] == 0  # once


def test_routine_audit_events_go_after_90_days_and_every_other_event_stays() -> None:
    """A token refresh and a guest's upload each wrote an audit event kept for ever: the audit log grew as the token
    table did (24 rows a day for a connection refreshed hourly). Their apps name them routine (the token and the
    upload keep their own record): they go 90 days on. Whatever a person did, and the first issue of a token, stay."""
    from apertur.core.models import AuditEvent

    def event(action: str, age: dt.timedelta) -> int:
        row = AuditEvent.objects.create(action=action, object_type="x.y", object_id="1", at=NOW - age)
        return row.pk

    old_refresh = event("oauth.token_refreshed", dt.timedelta(days=90, seconds=1))
    old_upload = event("upload.created", dt.timedelta(days=91))
    kept = {
        event("oauth.token_refreshed", dt.timedelta(days=89)),
        event("upload.created", dt.timedelta(days=90)),
        event("oauth.token_issued", dt.timedelta(days=1000)),
        event("oauth.consent_granted", dt.timedelta(days=1000)),
        event("project.created", dt.timedelta(days=1000)),
    }
    assert housekeeping.prune(now=NOW)["routine_audit_events"] == 2
    assert set(AuditEvent.objects.values_list("pk", flat=True)) == kept
    assert not AuditEvent.objects.filter(pk__in=[old_refresh, old_upload]).exists()
    assert housekeeping.prune(now=NOW)["routine_audit_events"] == 0
