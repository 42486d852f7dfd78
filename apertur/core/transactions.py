"""Write transactions on the hot paths.

SQLite lets one connection write at a time. A transaction that finds the write lock taken waits in SQLite's
busy handler, which polls with sleeps of 1, 2, 5, 10 … 100 ms: under load, a token request that waits at all
often sleeps far longer than the writer ahead of it needed (p99 of the code exchange with four request threads
on SQLite: 80–230 ms). :func:`write_transaction` makes the writers of one process queue on a mutex instead,
which wakes the next one as soon as the previous one commits; writers in other processes still meet SQLite's
busy handler, as before. On PostgreSQL it is ``transaction.atomic()`` and nothing else (row locks order the
writers there).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

_SQLITE_WRITER = threading.Lock()


@contextmanager
def write_transaction() -> Iterator[None]:
    """``transaction.atomic()``, entered by one thread of this process at a time on SQLite."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        # Inside a transaction already (a test's, a caller's): BEGIN IMMEDIATE took the write lock for it.
        with transaction.atomic():
            yield
        return
    with _SQLITE_WRITER, transaction.atomic():
        yield
