import datetime as dt

import time_machine

from apertur.core import clock


def test_clock_is_movable_and_business_dates_are_toronto() -> None:
    # 03:30 UTC on March 15 is still March 14 in Toronto (UTC-4 after the DST change on March 8, 2026).
    with time_machine.travel(dt.datetime(2026, 3, 15, 3, 30, tzinfo=dt.UTC), tick=False):
        assert clock.now() == dt.datetime(2026, 3, 15, 3, 30, tzinfo=dt.UTC)
        assert clock.business_date() == dt.date(2026, 3, 14)
        assert clock.business_now().utcoffset() == dt.timedelta(hours=-4)
