import datetime as dt

import pytest
import time_machine

from apertur.core import ratelimit
from apertur.core.errors import RateLimited

LIMIT = ratelimit.Limit("test", 3, 60)


def test_budget_then_refusal_then_new_window() -> None:
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, 0, 10, tzinfo=dt.UTC), tick=False):
        for _ in range(3):
            ratelimit.hit(LIMIT, "k")
        with pytest.raises(RateLimited) as info:
            ratelimit.hit(LIMIT, "k")
        assert info.value.retry_after == 50
        with pytest.raises(RateLimited):
            ratelimit.check(LIMIT, "k")
        ratelimit.check(LIMIT, "other")  # keys are independent
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, 1, 0, tzinfo=dt.UTC), tick=False):
        ratelimit.check(LIMIT, "k")
        ratelimit.hit(LIMIT, "k")


def test_reset() -> None:
    for _ in range(3):
        ratelimit.hit(LIMIT, "r")
    ratelimit.reset(LIMIT, "r")
    ratelimit.hit(LIMIT, "r")


def test_local_memory_counts_live_in_the_process_and_old_windows_are_dropped() -> None:
    from django.core.cache import cache

    with time_machine.travel(dt.datetime(2026, 3, 1, 12, 0, 10, tzinfo=dt.UTC), tick=False):
        status = ratelimit.consume(LIMIT, "p")
        assert (status.limit, status.remaining, status.reset) == (3, 2, 50)
        assert ratelimit.consume(LIMIT, "p").remaining == 1
        assert cache.get(ratelimit._key(LIMIT, "p", 1772366400)) is None  # not in Django's cache
        windows = ratelimit._process_counters._windows
        assert windows == {("test", 1772366400): {"p": 2}}
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, 1, 5, tzinfo=dt.UTC), tick=False):
        assert ratelimit.consume(LIMIT, "p").remaining == 2  # a new window, the old one forgotten
        assert windows == {("test", 1772366460): {"p": 1}}
    ratelimit.clear_process_counters()
    assert windows == {}


def test_other_cache_backends_keep_the_counters_in_the_cache(settings: object, tmp_path: object) -> None:
    from django.core.cache import caches
    from django.test import override_settings

    location = str(tmp_path)
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": location}}
    ):
        with time_machine.travel(dt.datetime(2026, 3, 1, 12, 0, 10, tzinfo=dt.UTC), tick=False):
            for _ in range(3):
                ratelimit.hit(LIMIT, "f")
            assert caches["default"].get(ratelimit._key(LIMIT, "f", 1772366400)) == 3
            with pytest.raises(RateLimited):
                ratelimit.check(LIMIT, "f")
            ratelimit.reset(LIMIT, "f")
            ratelimit.check(LIMIT, "f")
        assert ratelimit._process_counters._windows == {}
