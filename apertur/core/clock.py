"""The one clock. Everything that asks "what time is it" asks here, so tests can move time
(time-machine patches ``datetime``/``time`` underneath) and nothing reads the database's ``now()``.

Business dates (payout days, monthly periods) are in America/Toronto.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("America/Toronto")


def now() -> dt.datetime:
    """The current instant, timezone-aware, in UTC."""
    return dt.datetime.now(tz=dt.UTC)


def business_now() -> dt.datetime:
    return now().astimezone(BUSINESS_TZ)


def business_date(at: dt.datetime | None = None) -> dt.date:
    """The calendar date in Toronto at ``at`` (default: now)."""
    return (at or now()).astimezone(BUSINESS_TZ).date()


# ASCII digits and the whole string (``$`` would accept a trailing newline, ``\d`` any script's digits: each another
# spelling of a month), a two-digit month, and a year a date can have (not 0000).
_YEAR_MONTH = re.compile(r"(?!0000)([0-9]{4})-(0[1-9]|1[0-2])")


def parse_year_month(value: str) -> tuple[int, int] | None:
    """``2026-03`` → ``(2026, 3)``; None for anything else. The one rule for a month people type (a payout run's
    period, a statement's month): each caller raises its own error."""
    match = _YEAR_MONTH.fullmatch(value)
    return (int(match.group(1)), int(match.group(2))) if match else None
