"""The one clock. Everything that asks "what time is it" asks here, so tests can move time
(time-machine patches ``datetime``/``time`` underneath) and nothing reads the database's ``now()``.

Business dates (payout days, monthly periods) are in America/Toronto.
"""

from __future__ import annotations

import datetime as dt
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
