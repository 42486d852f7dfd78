"""apertur.core.transactions.write_transaction: on SQLite, this process's writers take turns on a mutex."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apertur.core import transactions
from apertur.core.models import AuditEvent


@pytest.mark.django_db(transaction=True)
def test_sqlite_writers_hold_the_process_mutex_for_the_whole_transaction() -> None:
    with transactions.write_transaction():
        assert connection.in_atomic_block
        assert transactions._SQLITE_WRITER.locked() == (connection.vendor == "sqlite")
        # nested (a savepoint): no second acquisition, no deadlock
        with transactions.write_transaction():
            AuditEvent.objects.create(action="test.nested", object_type="t", object_id="1")
    assert not transactions._SQLITE_WRITER.locked()
    assert AuditEvent.objects.filter(action="test.nested").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_all_commit() -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                with transactions.write_transaction():
                    AuditEvent.objects.create(action="test.concurrent", object_type="t", object_id=f"{n}-{i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert AuditEvent.objects.filter(action="test.concurrent").count() == 80


@pytest.mark.django_db(transaction=True)
def test_a_failed_transaction_releases_the_mutex() -> None:
    with pytest.raises(RuntimeError), transactions.write_transaction():
        raise RuntimeError
    assert not transactions._SQLITE_WRITER.locked()
