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


def test_give_back_undoes_a_hit_in_its_own_window_only() -> None:
    with time_machine.travel(dt.datetime(2026, 3, 1, 12, 0, 10, tzinfo=dt.UTC), tick=False) as traveller:
        hits = [ratelimit.hit(LIMIT, "g") for _ in range(3)]
        ratelimit.give_back(hits[0])
        ratelimit.hit(LIMIT, "g")  # the budget has room again
        with pytest.raises(RateLimited):
            ratelimit.hit(LIMIT, "g")
        late = hits[1]
        traveller.move_to(dt.datetime(2026, 3, 1, 12, 1, 5, tzinfo=dt.UTC))
        ratelimit.hit(LIMIT, "g")
        ratelimit.give_back(late)  # counted in the previous window: nothing to undo in this one
        ratelimit.hit(LIMIT, "g")
        ratelimit.hit(LIMIT, "g")
        with pytest.raises(RateLimited):
            ratelimit.hit(LIMIT, "g")


def test_give_back_never_goes_below_zero() -> None:
    counted = ratelimit.hit(LIMIT, "z")
    ratelimit.reset(LIMIT, "z")
    ratelimit.give_back(counted, counted)
    for _ in range(3):
        ratelimit.hit(LIMIT, "z")
    with pytest.raises(RateLimited):
        ratelimit.hit(LIMIT, "z")


def test_hit_all_refused_counts_nothing() -> None:
    tight = ratelimit.Limit("tight", 1, 60)
    ratelimit.hit(tight, "t")
    for _ in range(5):
        with pytest.raises(RateLimited):
            ratelimit.hit_all((LIMIT, "a"), (tight, "t"))
    # The refused attempts gave back their hits on the first budget, and on the spent one too.
    assert ratelimit.consume(LIMIT, "a").remaining == 2
    ratelimit.give_back(ratelimit.Hit(limit=tight, key="t", window_start=ratelimit._window(tight)[0]))
    ratelimit.hit_all((LIMIT, "a"), (tight, "t"))


def test_give_back_in_another_cache_backend(tmp_path: object) -> None:
    from django.test import override_settings

    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
        }
    ):
        hits = [ratelimit.hit(LIMIT, "f") for _ in range(3)]
        ratelimit.give_back(hits[0])
        ratelimit.hit(LIMIT, "f")
        with pytest.raises(RateLimited):
            ratelimit.hit(LIMIT, "f")
        ratelimit.reset(LIMIT, "f")
        ratelimit.give_back(hits[1])  # an emptied counter stays empty, not negative
        for _ in range(3):
            ratelimit.hit(LIMIT, "f")
        with pytest.raises(RateLimited):
            ratelimit.hit(LIMIT, "f")


def test_a_redis_out_of_reach_is_a_503_the_caller_can_retry(
    redis_down: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis down raised the driver's ConnectionError out of every rate-limited view: an HTML 500 page even
    where the caller reads JSON (the token endpoint, the guest upload script). Rate limits stay a hard
    dependency (docs/deploy.md), but the failure is a ServiceUnavailable (503) the views already render, logged."""
    import time

    from apertur.core.errors import ServiceUnavailable

    monkeypatch.setattr(ratelimit, "_last_logged", [float("-inf")])
    started = time.monotonic()
    for attempt in (lambda: ratelimit.hit(LIMIT, "k"), lambda: ratelimit.check(LIMIT, "k")):
        with pytest.raises(ServiceUnavailable) as refused:
            attempt()
        assert refused.value.status == 503 and refused.value.code == "service_unavailable"
    assert time.monotonic() - started < 5
    logged = [r for r in caplog.records if r.name == "apertur.core.ratelimit" and "Redis" in r.getMessage()]
    assert len(logged) == 1  # once, not once per request, for as long as it lasts
