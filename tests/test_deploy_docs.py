"""docs/deploy.md tells operators which Stripe events to send: the list must be exactly what the intake handles
(one missing there and refunds or disputes would silently not reach the ledger)."""

from __future__ import annotations

import re
from pathlib import Path

from apertur.integrations.stripe.handlers import HANDLERS

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"


def test_the_stripe_events_listed_for_operators_are_the_handled_ones() -> None:
    text = DOC.read_text()
    block = re.search(r"<!-- stripe-events:.*?-->(.*?)<!-- /stripe-events -->", text, re.S)
    assert block is not None, "the stripe-events block is missing from docs/deploy.md"
    listed = re.findall(r"`([a-z_.]+)`", block.group(1))
    assert len(listed) == len(set(listed))
    assert set(listed) == set(HANDLERS)
