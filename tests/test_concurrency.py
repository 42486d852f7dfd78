"""Races that only a real database with parallel connections can show (run by make test on PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from apertur.accounts.models import User
from apertur.core.errors import AperturError
from apertur.partners import services as partner_services
from apertur.partners.models import Partner, PartnerStatus
from apertur.testing import APPLICATION, make_partner, make_user


def race(fn: Callable[[], Any], n: int = 2) -> list[Any]:
    """Run ``fn`` in ``n`` threads released together; return each result or exception."""
    barrier = threading.Barrier(n, timeout=10)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_signups_with_one_email_make_one_account(postgres_only: None) -> None:
    from apertur.accounts.services import create_user

    results = race(lambda: create_user(email="race@example.com", password="correct-horse-battery"), n=4)
    assert sum(isinstance(r, User) for r in results) == 1
    assert all(isinstance(r, User) or getattr(r, "code", "") == "email_taken" for r in results)
    assert User.objects.filter(email="race@example.com").count() == 1


def test_two_applications_at_once_make_one_partner(postgres_only: None) -> None:
    user = make_user()
    results = race(lambda: partner_services.apply(user=user, **APPLICATION), n=3)
    assert sum(isinstance(r, Partner) for r in results) == 1
    assert all(isinstance(r, Partner | AperturError) for r in results)
    assert Partner.objects.filter(user=user).count() == 1


def test_approve_and_reject_at_once_one_wins(postgres_only: None) -> None:
    partner = make_partner(approved=False)
    outcomes = iter(["approve", "reject"])
    lock = threading.Lock()

    def decide() -> Any:
        with lock:
            action = next(outcomes)
        if action == "approve":
            return partner_services.approve(partner=partner, reviewer=None)
        return partner_services.reject(partner=partner, reviewer=None, reason="Not a fit")

    results = race(decide)
    assert sum(isinstance(r, Partner) for r in results) == 1
    assert sum(getattr(r, "code", "") == "invalid_partner_status" for r in results) == 1
    partner.refresh_from_db()
    assert partner.status in {PartnerStatus.APPROVED, PartnerStatus.REJECTED}


def test_rate_limits_are_shared_through_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """With REDIS_URL set, every app process counts in one place. Two independent Redis cache clients
    stand in for two processes."""
    import os

    from django.core.cache.backends.redis import RedisCache

    from apertur.core import ratelimit
    from apertur.core.errors import RateLimited

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    first, second = RedisCache(url, {}), RedisCache(url, {})
    try:
        first.clear()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis not reachable at {url}: {exc}")
        pytest.skip(f"Redis not reachable at {url}")
    limit = ratelimit.Limit("shared", 2, 60)
    try:
        # ratelimit reads caches["default"]: each client in turn is the "process" counting.
        monkeypatch.setattr(ratelimit, "caches", {"default": first})
        ratelimit.hit(limit, "ip")
        monkeypatch.setattr(ratelimit, "caches", {"default": second})
        ratelimit.hit(limit, "ip")
        assert ratelimit._process_counters._windows == {}  # nothing counted in this process's memory
        with pytest.raises(RateLimited):
            ratelimit.hit(limit, "ip")
    finally:
        first.clear()
