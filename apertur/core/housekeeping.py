"""Rows kept only for a while, deleted by the worker (``apertur worker`` runs :func:`start_in_background`).

- Idempotency keys: 24 hours, as Stripe keeps them (docs/api.md). A key older than that is also treated as
  new when it is used again (api.idempotency), so what a client sees does not depend on when this ran.
- Finished background-task results (django-tasks' database backend keeps every one): 14 days. Unfinished
  ones are never touched.
- Whatever a domain app adds with :func:`register` from its ``AppConfig.ready`` (core does not import the apps:
  dependencies point one way). The webhooks app clears signing secrets whose overlap after a roll has ended; the
  Stripe intake retries billing events still waiting for an earlier one, and gives up (telling staff) those past
  their week, when no delivery has done so.

Deletes go in bounded batches (each its own short transaction), so a backlog never holds a long lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from django.db import close_old_connections
from django.db.models import Model, QuerySet
from django_tasks_db.models import DBTaskResult

from apertur.core import clock
from apertur.core.models import IdempotencyKey

logger = logging.getLogger(__name__)

IDEMPOTENCY_TTL = dt.timedelta(hours=24)
TASK_RESULTS_TTL = dt.timedelta(days=14)
BATCH = 5_000
MAX_BATCHES = 200  # per table and pass: a backlog larger than a million rows is finished by the next passes
INTERVAL_SECONDS = 3600.0

#: A pass an app adds: given the pass's time, it returns how many rows it deleted or cleared.
Pruner = Callable[[dt.datetime], int]
_pruners: dict[str, Pruner] = {}


def register(name: str, pruner: Pruner) -> None:
    """Add ``pruner`` to every pass under ``name`` (registering a name again replaces it)."""
    _pruners[name] = pruner


def _delete(queryset: QuerySet[Model]) -> int:
    deleted = 0
    for _ in range(MAX_BATCHES):
        ids = list(queryset.order_by().values_list("pk", flat=True)[:BATCH])
        if not ids:
            break
        deleted += queryset.model._default_manager.filter(pk__in=ids).delete()[0]
    return deleted


def prune(*, now: dt.datetime | None = None) -> dict[str, int]:
    """One pass: what was deleted, per kind."""
    at = now or clock.now()
    done = {
        "idempotency_keys": _delete(IdempotencyKey.objects.filter(created_at__lt=at - IDEMPOTENCY_TTL)),
        "task_results": _delete(DBTaskResult.objects.finished().filter(finished_at__lt=at - TASK_RESULTS_TTL)),
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
                    logger.info("housekeeping: deleted %s", deleted)
            except Exception:  # logged; the next pass tries again
                logger.exception("housekeeping pass failed")
            finally:
                close_old_connections()
            if stop.wait(interval):
                return

    thread = threading.Thread(target=loop, name="housekeeping", daemon=True)
    thread.start()
    return thread
