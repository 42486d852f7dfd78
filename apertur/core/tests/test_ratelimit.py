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
