"""Races of attributions, on PostgreSQL with real parallel connections."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import time_machine
from django.db import transaction

from apertur.oauth.tokens import connect
from apertur.projects.services import create_project
from apertur.referrals import services
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_app, make_partner, make_user, record_outcome, wait_until_blocked

UTC = dt.UTC


def test_an_oauth_attribution_moved_by_staff_meanwhile_is_not_dated_earlier(postgres_only: None) -> None:
    """Stripe delivers an earlier qualifying moment (the subscription's start) while staff move the customer to
    another partner. The move earlier checked the partner before the attribution's lock only: it then dated the
    new partner's attribution back to the old partner's connection, and the new partner earned on payments made
    before the customer was theirs."""
    created = make_app()
    customer = make_user()
    project = create_project(owner=customer, name="Weddings")
    with time_machine.travel(dt.datetime(2026, 3, 1, tzinfo=UTC), tick=False), transaction.atomic():
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    attributed_at = dt.datetime(2026, 3, 10, tzinfo=UTC)
    attribution = Attribution.objects.create(
        customer=customer,
        partner=created.app.partner,
        source=AttributionSource.OAUTH,
        app=created.app,
        at=attributed_at,
    )
    other = make_partner()
    held, release = threading.Event(), threading.Event()

    def staff_move() -> Any:
        with transaction.atomic():
            moved = services.change_attribution(attribution=attribution, partner=other, reason="Support", actor=None)
            held.set()  # the move holds the attribution's lock, uncommitted
            assert release.wait(timeout=10)
        return moved

    outcome: dict[str, Any] = {}
    staff = threading.Thread(target=record_outcome, args=(outcome, "staff", staff_move))
    stripe = threading.Thread(
        target=record_outcome,
        args=(
            outcome,
            "stripe",
            lambda: services.attribute_by_oauth(customer=customer, at=dt.datetime(2026, 3, 5, tzinfo=UTC)),
        ),
    )
    staff.start()
    try:
        assert held.wait(timeout=10)
        stripe.start()
        assert wait_until_blocked(stripe)  # read the old partner, then waits for the staff move's lock
    finally:
        release.set()
        staff.join(timeout=30)
        if stripe.ident is not None:  # started
            stripe.join(timeout=30)
    assert not isinstance(outcome["staff"], Exception), outcome
    assert outcome["stripe"] is None
    attribution.refresh_from_db()
    assert (attribution.partner_id, attribution.at, attribution.app_id) == (other.pk, attributed_at, created.app.pk)
