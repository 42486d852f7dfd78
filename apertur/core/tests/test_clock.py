import datetime as dt

import pytest
import time_machine

from apertur.core import clock


def test_clock_is_movable_and_business_dates_are_toronto() -> None:
    # 03:30 UTC on March 15 is still March 14 in Toronto (UTC-4 after the DST change on March 8, 2026).
    with time_machine.travel(dt.datetime(2026, 3, 15, 3, 30, tzinfo=dt.UTC), tick=False):
        assert clock.now() == dt.datetime(2026, 3, 15, 3, 30, tzinfo=dt.UTC)
        assert clock.business_date() == dt.date(2026, 3, 14)
        assert clock.business_now().utcoffset() == dt.timedelta(hours=-4)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03", (2026, 3)),
        ("0001-12", (1, 12)),
        ("2026-3", None),  # two digits for the month, as every month is written here
        ("2026-03\n", None),
        ("\u0662\u0660\u0662\u0666-03", None),  # another script's digits
        ("0000-05", None),  # no date has year 0000
        ("2026-13", None),
        ("2026-00", None),
        (" 2026-03", None),
    ],
)
def test_a_year_and_month_is_four_ascii_digits_a_dash_and_two(value: str, expected: tuple[int, int] | None) -> None:
    """One rule for the months people type: the payout run's --period and the statements' --month (the latter
    accepted 2026-1 and other scripts' digits where the former refused them)."""
    assert clock.parse_year_month(value) == expected
