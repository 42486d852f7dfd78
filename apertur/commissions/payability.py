"""Whether the next payout run would pay a partner at all is the payouts app's rule (approval, a staff hold, a
verified PayPal email PayPal has not refused: ``payouts.services.payable_reason``). ``payouts`` reads
``commissions``, never the reverse (ARCHITECTURE 3), so the payouts app registers that rule here from its
``AppConfig.ready`` and the commissions dashboard asks it, instead of a second copy of the rule."""

from __future__ import annotations

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
