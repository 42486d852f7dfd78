"""Subscription events in any delivery order: the plan follows the latest event by its time, and an OAuth
attribution is dated at the subscription's start however late its ``created`` event arrives (audit D4)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
import time_machine
from django.db import transaction

from apertur.commissions.models import CommissionEntry
from apertur.integrations.stripe import events
from apertur.integrations.stripe.models import StripeEvent
from apertur.integrations.stripe.services import receive
from apertur.oauth.tokens import connect
from apertur.projects.models import Project, Subscription
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution
from apertur.testing import make_app, make_user

pytestmark = pytest.mark.django_db


def t(d: int, h: int = 12, s: int = 0, m: int = 1) -> dt.datetime:
    return dt.datetime(2026, m, d, h, 0, s, tzinfo=dt.UTC)


@pytest.fixture
def world() -> dict[str, Any]:
    """A customer on Free who connected a partner's app on 2026-01-01."""
    created = make_app()
    customer = make_user("orders@example.com")
    project = create_project(owner=customer, name="Orders")
    with time_machine.travel(t(1), tick=False):
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    return {"app": created.app, "customer": customer, "project": project}


def history(customer: Any, *, realistic: bool = True) -> list[dict[str, Any]]:
    """Subscribed on Pro 01-10 12:00 (paid 12:00:01), upgraded to Business 01-20 12:00 (paid 12:00:01), in
    order. ``realistic``: the update carries the subscription's own ``created`` and the old price in
    ``previous_attributes``, as Stripe sends it; otherwise it says neither (the audit's repro)."""
    meta = {"apertur_user_id": customer.public_id}
    common = {"customer": "cus_order", "sub_id": "sub_order", "metadata": meta}
    upgrade: dict[str, Any] = {"started": t(10), "previous_lookup_key": "pro"} if realistic else {}
    return [
        events.subscription(lookup_key="pro", at=t(10), event_id="evt_created", **common),
        events.invoice_paid(
            customer="cus_order",
            email=customer.email,
            amount=2_900,
            at=t(10, s=1),
            invoice_id="in_pro",
            event_id="evt_in1",
        ),
        events.subscription(
            lookup_key="business",
            at=t(20),
            kind="customer.subscription.updated",
            event_id="evt_updated",
            **common,
            **upgrade,
        ),
        events.invoice_paid(
            customer="cus_order",
            email=customer.email,
            amount=7_000,
            at=t(20, s=1),
            invoice_id="in_biz",
            event_id="evt_in2",
        ),
    ]


def outcome(customer: Any) -> tuple[Any, ...]:
    attribution = Attribution.objects.filter(customer=customer).values_list("source", "at").first()
    ledger = list(
        CommissionEntry.objects.filter(customer=customer)
        .order_by("paid_at", "kind")
        .values_list("payment__external_id", "kind", "amount_cents")
    )
    sub = Subscription.objects.get(external_id="sub_order")
    plan = Project.objects.get(owner=customer).plan.name
    return attribution, ledger, plan, (sub.plan.name, sub.status, sub.started_at)


def deliver_in(order: tuple[dict[str, Any], ...], customer: Any) -> tuple[Any, ...]:
    """Deliver, read the outcome, and roll back to the state before, so every order starts afresh."""
    with transaction.atomic():
        with time_machine.travel(t(21), tick=False):
            for evt in order:
                receive(evt)
        assert not StripeEvent.objects.filter(status__in=["waiting", "failed"]).exists()
        result = outcome(customer)
        transaction.set_rollback(True)
    return result


EXPECTED = (
    ("oauth", t(10)),
    [("in_pro", "earned", 290), ("in_biz", "earned", 700)],
    "Business",
    ("Business", "active", t(10)),
)


@pytest.mark.parametrize("realistic", [True, False], ids=["as-stripe-sends", "bare-update"])
def test_every_delivery_order_gives_the_in_order_result(world: dict[str, Any], realistic: bool) -> None:
    customer = world["customer"]
    in_order = history(customer, realistic=realistic)
    assert deliver_in(tuple(in_order), customer) == EXPECTED
    failures = []
    for order in itertools.permutations(in_order):
        got = deliver_in(order, customer)
        if got != EXPECTED:
            failures.append(([e["id"] for e in order], got))
    assert not failures, failures


def test_the_audit_order_reversed(world: dict[str, Any]) -> None:
    """updated(business), its invoice, created(pro), its invoice: the partner keeps the 290 of the first Pro
    payment and the project stays on Business."""
    created, inv1, updated, inv2 = history(world["customer"])
    assert deliver_in((updated, inv2, created, inv1), world["customer"]) == EXPECTED


def test_a_stale_update_does_not_override_the_plan(world: dict[str, Any]) -> None:
    customer, project = world["customer"], world["project"]
    meta = {"apertur_user_id": customer.public_id}
    common = {"customer": "cus_order", "sub_id": "sub_order", "metadata": meta, "started": t(10)}
    receive(events.subscription(lookup_key="pro", at=t(10), **common))
    kind = "customer.subscription.updated"
    receive(events.subscription(lookup_key="business", at=t(20), kind=kind, previous_lookup_key="pro", **common))
    # An update from 01-15 (still on Pro) delivered after the one of 01-20.
    late = receive(events.subscription(lookup_key="pro", at=t(15), kind=kind, **common))
    assert late.status == "processed" and "kept Business" in late.detail
    project.refresh_from_db()
    sub = Subscription.objects.get(external_id="sub_order")
    assert (project.plan.name, sub.plan.name, sub.state_at) == ("Business", "Business", t(20))
    # A newer one applies; a cancellation is not undone by an older update delivered after it.
    receive(events.subscription(lookup_key="pro", at=t(25), kind=kind, previous_lookup_key="business", **common))
    project.refresh_from_db()
    assert project.plan.name == "Pro"
    receive(
        events.subscription(
            lookup_key="pro", at=t(2, m=2), kind="customer.subscription.deleted", status="canceled", **common
        )
    )
    receive(events.subscription(lookup_key="business", at=t(28), kind=kind, previous_lookup_key="pro", **common))
    project.refresh_from_db()
    sub.refresh_from_db()
    assert (project.plan.name, sub.status, sub.canceled_at) == ("Free", "canceled", t(2, m=2))


def test_an_attribution_is_not_moved_to_another_partner(world: dict[str, Any]) -> None:
    """The upgrade is seen first and attributes the customer to the app connected on 01-15; the subscription
    started on 01-10, when only another partner's app (01-01) was connected: the attribution stays."""
    customer, project = world["customer"], world["project"]
    other = make_app(name="Other")
    with time_machine.travel(t(15), tick=False):
        connect(app=other.app, project=project, user=customer, scopes=["plan:read"])
    created, inv1, updated, inv2 = history(customer, realistic=False)
    with time_machine.travel(t(21), tick=False):
        for evt in (updated, inv2, created, inv1):
            receive(evt)
    attribution = Attribution.objects.get(customer=customer)
    assert (attribution.partner, attribution.at) == (other.app.partner, t(20))
    assert list(CommissionEntry.objects.filter(customer=customer).values_list("amount_cents", flat=True)) == [700]
