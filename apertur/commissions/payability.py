"""Whether the next payout run would pay a partner at all is the payouts app's rule (approval, a staff hold, a
verified PayPal email PayPal has not refused: ``payouts.services.payable_reason``). ``payouts`` reads
``commissions``, never the reverse (ARCHITECTURE 3), so the payouts app registers that rule here from its
``AppConfig.ready`` and the commissions dashboard asks it, instead of a second copy of the rule. So too for which
run is next: only the payouts app knows whether a run whose date has passed was made (``late_run_at``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from apertur.partners.models import Partner

#: The partner → why the next run will pay them nothing (a sentence), or None.
Rule = Callable[[Partner], str | None]
_rule: Rule | None = None


def register(rule: Rule) -> None:
    global _rule
    _rule = rule


def why_not_paid(*, partner: Partner) -> str | None:
    """Why the next run will pay ``partner`` nothing whatever their balance, or None (nothing registered: None)."""
    return _rule(partner) if _rule is not None else None


#: (partner, at) → the scheduled time of the latest payout run that was due by ``at`` and has not been made for
#: the partner yet (a late run: the worker was down, or the run is still going), or None. Registered by the
#: payouts app (``payouts.schedule.late_run_at``), which records the runs.
LateRun = Callable[[Partner, dt.datetime], dt.datetime | None]
_late_run: LateRun | None = None


def register_late_run(late_run: LateRun) -> None:
    global _late_run
    _late_run = late_run


def late_run_at(*, partner: Partner, at: dt.datetime) -> dt.datetime | None:
    """The run due for ``partner`` at ``at`` and not made yet, if any (nothing registered: None)."""
    return _late_run(partner, at) if _late_run is not None else None
