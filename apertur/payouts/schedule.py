"""The monthly schedule. ``apertur worker`` calls :func:`tick` when it starts and every
``PAYOUT_SCHEDULER_INTERVAL`` seconds after (five minutes by default):

1. every due period (a 15th at 09:00 Toronto that has passed) without a finished :class:`PayoutRun` is run,
   oldest first: a run missed while the service was down happens at next start, for its own period (its
   rule is dated, not "now": the same entries are paid whenever it runs). A period another scheduler holds the
   lease of ends the pass's runs: that scheduler runs the later ones after it, in order;
2. a period whose run left payouts ``created`` (PayPal unreachable) stays unfinished, so the next tick retries
   them with the same ``sender_batch_id`` (a run that raises is logged and stays unfinished too, without
   keeping the next steps from happening);
3. payouts PayPal has not settled are polled, and webhook events not applied yet are applied;
4. payouts PayPal has held (ONHOLD, BLOCKED) for longer than ``PAYOUT_HELD_ALERT_DAYS`` are reported to staff, once
   per hold (:func:`services.alert_held`);
5. payouts PayPal has left sent or processing (item PENDING) for longer than ``PAYOUT_PROCESSING_ALERT_DAYS`` (since
   they were sent or released from a hold) are reported to staff, once per stretch (:func:`services.alert_processing`).

Two schedulers at once (two workers) are harmless: a lease on the period's row keeps the second from calling
PayPal needlessly, and the database's unique constraints make one payout per partner and period anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import Min, Q

from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import last_payout_run_at
from apertur.core import clock
from apertur.integrations.paypal.client import PayPalClient, client_or_default
from apertur.partners.models import Partner
from apertur.payouts import reconcile, services
from apertur.payouts.models import Payout, PayoutRun, PayoutStatus

logger = logging.getLogger(__name__)
LEASE = dt.timedelta(minutes=15)
MAX_CATCH_UP = 36  # periods: a scheduler that was down three years catches up at most this far back


def _period_of(at: dt.datetime) -> str:
    local = at.astimezone(clock.BUSINESS_TZ)
    return f"{local.year:04d}-{local.month:02d}"


def _next_period(period: str) -> str:
    year, month = services.parse_period(period)
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def due_periods(at: dt.datetime | None = None) -> list[str]:
    """Periods whose run date has passed and whose run has not finished, oldest first. The first period is
    the month after the earliest payment that earned a commission (no earlier run could pay anything)."""
    now = at or clock.now()
    latest = _period_of(last_payout_run_at(now))
    earliest = CommissionEntry.objects.aggregate(first=Min("paid_at"))["first"]
    if earliest is None:
        return []
    period = _next_period(_period_of(earliest))
    periods: list[str] = []
    while period <= latest:
        periods.append(period)
        period = _next_period(period)
    periods = periods[-MAX_CATCH_UP:]
    finished = set(
        PayoutRun.objects.filter(period__in=periods, finished_at__isnull=False).values_list("period", flat=True)
    )
    # A payout still `created` (PayPal unreachable, or a staff retry that did not get through) keeps its
    # period due, whatever the run row says: it must be sent again with its sender_batch_id.
    unsent = set(
        Payout.objects.filter(status=PayoutStatus.CREATED, period__lte=latest).values_list("period", flat=True)
    )
    return sorted({p for p in periods if p not in finished} | unsent)


def late_run_at(partner: Partner, at: dt.datetime | None = None) -> dt.datetime | None:
    """The partner's late run: the latest run whose date has passed by ``at`` when it was not made for the partner
    (it has not finished, and holds no payout of theirs: a payout for the period is that run made for them, even
    while it is still being sent), and falls after the month of the partner's first commission (no earlier run pays
    them anything). None otherwise: the next run is the coming 15th.

    The latest, not the oldest missed one: the scheduler's next pass makes every missed run, oldest first
    (:func:`due_periods`), and by the latest of them the partner is paid what that run's dated rule takes; an older
    missed run shown alone would announce what it pays (often nothing, its hold not over), not what arrives."""
    now = at or clock.now()
    latest = _period_of(last_payout_run_at(now))
    first = CommissionEntry.objects.filter(partner=partner).aggregate(first=Min("paid_at"))["first"]
    if first is None or _next_period(_period_of(first)) > latest:
        return None
    if Payout.objects.filter(partner=partner, period__gte=latest).exists():
        return None
    if PayoutRun.objects.filter(period=latest, finished_at__isnull=False).exists():
        return None
    return services.run_at(latest)


def _record(period: str, trigger: str) -> None:
    try:
        with transaction.atomic():
            PayoutRun.objects.get_or_create(period=period, defaults={"trigger": trigger, "started_at": clock.now()})
    except IntegrityError:  # created by a concurrent run
        pass


def _claim(period: str, trigger: str) -> dt.datetime | None:
    """Take the period's lease (a conditional UPDATE: atomic on SQLite and PostgreSQL alike): its end, which
    names it, or None when another scheduler holds it."""
    now = clock.now()
    until = now + LEASE
    _record(period, trigger)
    taken = (
        PayoutRun.objects.filter(period=period)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=until, trigger=trigger)
    )
    return until if taken else None


def summarize(decisions: list[services.Decision]) -> dict[str, Any]:
    reasons = Counter(d.reason for d in decisions)
    return {
        "partners": len(decisions),
        "reasons": dict(sorted(reasons.items())),
        "paid_cents": sum(d.amount_cents for d in decisions if d.reason == services.Reason.PAID),
    }


def run_period(
    *,
    period: str,
    client: PayPalClient | None = None,
    trigger: str = "schedule",
    lease: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[services.Decision] | None:
    """Run one period under its lease and record it; ``None`` when another scheduler holds the lease. The
    run is finished when nothing is left for PayPal to be asked again (no payout still ``created``, no
    error). ``lease=False`` (a person's ``apertur payouts run``) runs even while a scheduler holds the lease:
    the unique constraints, not the lease, keep that to one payout."""
    held = _claim(period, trigger) if lease else None
    if lease and held is None:
        return None
    if not lease:
        _record(period, trigger)
    decisions: list[services.Decision] = []
    completed = False
    try:
        decisions = services.run(period=period, dry_run=False, client=client, progress=progress)
        completed = True
    finally:
        unfinished = (
            not completed
            or any(d.reason == services.Reason.ERROR for d in decisions)
            or Payout.objects.filter(period=period, status=PayoutStatus.CREATED).exists()
        )
        PayoutRun.objects.filter(period=period).update(
            finished_at=None if unfinished else clock.now(), summary=summarize(decisions)
        )
        # Our lease only: a person's run holds none, and a run that outlived its lease must not drop the one
        # another scheduler took meanwhile (that one still runs the period and the later ones, in order).
        if held is not None:
            PayoutRun.objects.filter(period=period, lease_until=held).update(lease_until=None)
    return decisions


@dataclass(slots=True)
class TickResult:
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # leased by another scheduler
    poll: dict[str, Any] = field(default_factory=dict)
    events_applied: int = 0
    held_alerted: list[str] = field(default_factory=list)  # sender_item_ids staff were just told PayPal holds
    # sender_item_ids staff were just told PayPal has left unsettled too long
    processing_alerted: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "skipped": self.skipped,
            "poll": self.poll,
            "events_applied": self.events_applied,
            "held_alerted": self.held_alerted,
            "processing_alerted": self.processing_alerted,
        }


def tick(*, client: PayPalClient | None = None) -> TickResult:
    """One pass of the schedule (see the module docstring)."""
    result = TickResult()
    with client_or_default(client) as paypal:
        for period in due_periods():
            try:
                decisions = run_period(period=period, client=paypal)
            except Exception:
                # Left unfinished, so the next pass runs it again; the later periods wait for it (in order), but the
                # payouts already sent are still polled below.
                logger.exception("payout run %s failed; the next pass of the schedule runs it again", period)
                break
            if decisions is None:
                # Another scheduler runs this period, and then the later ones, in order: a later period's rule also
                # covers this one's earnings, which running it now would pay (and mail) as the later month's.
                result.skipped.append(period)
                break
            result.runs[period] = summarize(decisions)
        result.poll = reconcile.poll_open(client=paypal).as_json()
        result.events_applied = reconcile.process_pending_events(client=paypal)
    # After polling: an item PayPal released or settled since the last pass is paid by now, not reported.
    result.held_alerted = [payout.sender_item_id for payout in services.alert_held()]
    result.processing_alerted = [payout.sender_item_id for payout in services.alert_processing()]
    return result


def interval() -> float:
    return float(getattr(settings, "PAYOUT_SCHEDULER_INTERVAL", 300))


def start_in_background(*, stop: threading.Event | None = None) -> threading.Thread:
    """The scheduler thread ``apertur worker`` starts: a tick now, then one every :func:`interval` seconds,
    until ``stop`` is set (the thread is a daemon: it ends with the worker)."""
    stop = stop or threading.Event()

    def loop() -> None:
        while True:
            close_old_connections()
            try:
                result = tick()
                if any(
                    (
                        result.runs,
                        result.poll.get("changed"),
                        result.events_applied,
                        result.held_alerted,
                        result.processing_alerted,
                    )
                ):
                    logger.info("payout schedule: %s", result.as_json())
            except Exception:  # logged; the next tick tries again
                logger.exception("payout schedule tick failed")
            finally:
                close_old_connections()
            if stop.wait(interval()):
                return

    thread = threading.Thread(target=loop, name="payout-scheduler", daemon=True)
    thread.start()
    return thread
