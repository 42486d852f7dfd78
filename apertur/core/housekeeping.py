"""Rows kept only for a while, deleted by the worker (``apertur worker`` runs :func:`start_in_background`).

- Idempotency keys: 24 hours, as Stripe keeps them (docs/api.md). A key older than that is also treated as
  new when it is used again (api.idempotency), so what a client sees does not depend on when this ran.
- Finished background-task results (django-tasks' database backend keeps every one): 14 days. Unfinished
  ones are never deleted.
- Background tasks a worker abandoned: still ``RUNNING`` :data:`ABANDONED_AFTER` after they started, their worker
  died mid-task (SIGKILL, out of memory, a lost machine; db_worker holds no lock while a task runs, so nothing
  else notices). Each is queued again, at most until it has been claimed :data:`MAX_CLAIMS` times (a task that
  kills its worker each time), then marked failed with the reason, for staff to see in the admin. Every task is
  bounded far below that age (an outbound attempt by ``outbound.send_bounded``, a mail by ``EMAIL_TIMEOUT``) and
  safe to run again (webhook deliveries are at-least-once, with their ``webhook-id``).
- Routine audit events: those one request of machine or guest traffic writes (a token refresh, a guest's upload),
  named by their app with :func:`register_routine_audit`, go :data:`ROUTINE_AUDIT_KEPT` (90 days) after they
  happened. They made the audit log the largest table (a connection refreshed hourly writes 24 a day) while what
  they record stays in its own rows (the token, the upload). Every other audit event is kept.
- Whatever a domain app adds with :func:`register` from its ``AppConfig.ready`` (core does not import the apps:
  dependencies point one way). The webhooks app clears signing secrets whose overlap after a roll has ended, and
  with the uploads app queues again the deliveries and destination copies whose queued look was lost
  (``outbound.requeue_overdue``), and deletes events with their deliveries after 30 days; the OAuth app deletes
  token rows and codes 30 days after their last possible use; the Stripe intake retries billing events still
  waiting for an earlier one, and gives up (telling staff) those past their week, when no delivery has done so; it
  also deletes the refused deliveries it kept, after 30 days.

Deletes go in bounded batches (each its own short transaction), so a backlog never holds a long lock, and on
PostgreSQL a batch skips the rows a request holds (:func:`delete_in_batches`): a pass never waits for a lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from django.db import close_old_connections, connections, transaction
from django.db.models import Model, QuerySet
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from apertur.core import clock
from apertur.core.models import AuditEvent, IdempotencyKey

logger = logging.getLogger(__name__)

IDEMPOTENCY_TTL = dt.timedelta(hours=24)
TASK_RESULTS_TTL = dt.timedelta(days=14)
ABANDONED_AFTER = dt.timedelta(minutes=30)
MAX_CLAIMS = 3
BATCH = 5_000
MAX_BATCHES = 200  # per table and pass: a backlog larger than a million rows is finished by the next passes
INTERVAL_SECONDS = 3600.0
ROUTINE_AUDIT_KEPT = dt.timedelta(days=90)

#: A pass an app adds: given the pass's time, it returns how many rows it deleted or cleared.
Pruner = Callable[[dt.datetime], int]
_pruners: dict[str, Pruner] = {}
_routine_audit: set[str] = set()


def register(name: str, pruner: Pruner) -> None:
    """Add ``pruner`` to every pass under ``name`` (registering a name again replaces it)."""
    _pruners[name] = pruner


def register_routine_audit(*actions: str) -> None:
    """Have every pass delete the audit events of ``actions`` :data:`ROUTINE_AUDIT_KEPT` after they happened: the
    events one request of machine or guest traffic writes, whose object keeps its own record."""
    _routine_audit.update(actions)


def delete_in_batches(queryset: QuerySet[Model]) -> int:
    """Delete what ``queryset`` selects, :data:`BATCH` rows at a time, at most :data:`MAX_BATCHES` times; returns
    how many rows of its model were deleted (rows a cascade took with them are not counted). A batch found short
    is the last: the next one would only read the table again to find nothing.

    On PostgreSQL a batch locks its rows first, skipping those a request holds (``FOR UPDATE SKIP LOCKED``): those
    go in a later pass. So a pass never waits for a lock while it holds its own, and can be neither part of a
    deadlock nor the reason a request waits longer than one batch (a replayed refresh token locking its row, an app
    deletion locking its tokens before its cascade). SQLite takes no row locks: writers there take turns."""
    deleted = 0
    label = queryset.model._meta.label
    for _ in range(MAX_BATCHES):
        with transaction.atomic(using=queryset.db):
            free = queryset.order_by().select_for_update(skip_locked=True, of=("self",))
            ids = list(free.values_list("pk", flat=True)[:BATCH])
            if ids:
                deleted += queryset.model._default_manager.filter(pk__in=ids).delete()[1].get(label, 0)
        if len(ids) < BATCH:
            break
    return deleted


def old_task_results(at: dt.datetime) -> QuerySet[DBTaskResult]:
    """Task results finished :data:`TASK_RESULTS_TTL` before ``at``. A task finishes after it was queued, so those
    were queued before that too: said to the database, it reads them from the ``(enqueued_at, id)`` index (core
    migration ``0003``) instead of every row of the table for each batch (nothing indexes ``finished_at``)."""
    cutoff = at - TASK_RESULTS_TTL
    return DBTaskResult.objects.finished().filter(enqueued_at__lt=cutoff, finished_at__lt=cutoff)


def _recover_abandoned(at: dt.datetime) -> int:
    """Queue again (or, past :data:`MAX_CLAIMS`, fail) the tasks a dead worker left ``RUNNING``. Each row changes by
    a conditional UPDATE on its status, so two workers' passes recover it once."""
    stale = DBTaskResult.objects.running().filter(started_at__lt=at - ABANDONED_AFTER).order_by("started_at")
    recovered = 0
    for pk, path, workers in stale.values_list("pk", "task_path", "worker_ids")[:BATCH]:
        still = DBTaskResult.objects.filter(pk=pk, status=TaskResultStatus.RUNNING)
        if len(workers) < MAX_CLAIMS:
            changed = still.update(status=TaskResultStatus.READY, started_at=None, run_after=at)
            if changed:
                logger.warning("task %s (%s) was abandoned by worker %s: queued again", pk, path, workers[-1:])
        else:
            reason = (
                f"Abandoned {len(workers)} times: each worker that ran it stopped before it finished "
                f"({', '.join(workers)}). Not queued again; look at the workers' logs (out of memory?)."
            )
            changed = still.update(
                status=TaskResultStatus.FAILED,
                finished_at=at,
                exception_class_path="apertur.core.housekeeping.Abandoned",
                traceback=reason,
            )
            if changed:
                logger.error("task %s (%s): %s", pk, path, reason)
        recovered += changed
    return recovered


def prune(*, now: dt.datetime | None = None) -> dict[str, int]:
    """One pass: what was deleted, per kind."""
    at = now or clock.now()
    done = {
        "idempotency_keys": delete_in_batches(IdempotencyKey.objects.filter(created_at__lt=at - IDEMPOTENCY_TTL)),
        "task_results": delete_in_batches(old_task_results(at)),
        "abandoned_tasks": _recover_abandoned(at),
        "routine_audit_events": delete_in_batches(
            AuditEvent.objects.filter(action__in=sorted(_routine_audit), at__lt=at - ROUTINE_AUDIT_KEPT)
        )
        if _routine_audit
        else 0,
    }
    for name, pruner in _pruners.items():
        try:
            done[name] = pruner(at)
        except Exception:  # one app's pass failing must not keep the others from running; the next pass retries
            logger.exception("housekeeping: the %s pass failed", name)
            done[name] = 0
    return done


def start_in_background(*, stop: threading.Event | None = None, interval: float = INTERVAL_SECONDS) -> threading.Thread:
    """A pass now, then one every ``interval`` seconds until ``stop`` is set (a daemon thread: it ends with the
    worker). Several workers running it at once only delete the same rows twice over (a no-op)."""
    stop = stop or threading.Event()

    def loop() -> None:
        while True:
            close_old_connections()
            try:
                deleted = prune()
                if any(deleted.values()):
                    logger.info("housekeeping: %s", deleted)
            except Exception:  # logged; the next pass tries again
                logger.exception("housekeeping pass failed")
            finally:
                close_old_connections()
            if stop.wait(interval):
                connections.close_all()  # this thread's own: close_old_connections keeps a young one open
                return

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread
