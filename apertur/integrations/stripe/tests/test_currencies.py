"""Payments in currencies whose minor unit is not the hundredth: Stripe's amounts are in the currency's own
minor unit (¥10,000 is ``10000``; 1.000 KWD is ``1000``), rates are per major unit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apertur.commissions.models import CommissionEntry
from apertur.core.money import Money, convert, percent_of
from apertur.integrations.stripe import events
from apertur.integrations.stripe.services import receive
from apertur.projects.models import ExchangeRate, Payment, Refund
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db
PAID_AT = dt.datetime(2026, 2, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def customer():  # type: ignore[no-untyped-def]
    user = make_user("yen@example.com")
    create_project(owner=user, name="Tokyo")
    Attribution.objects.create(
        customer=user,
        partner=make_partner(),
        source=AttributionSource.REFERRAL,
        at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )
    return user


def pay(customer, amount: int, currency: str, exchange_rate: str | None = None) -> Payment:  # type: ignore[no-untyped-def]
    evt = events.invoice_paid(
        customer="cus_yen",
        email=customer.email,
        amount=amount,
        currency=currency,
        at=PAID_AT,
        exchange_rate=exchange_rate,
    )
    assert receive(evt).status == "processed"
    return Payment.objects.get(external_id=evt["data"]["object"]["id"])


def test_yen_from_the_rate_table(customer) -> None:  # type: ignore[no-untyped-def]
    ExchangeRate.objects.create(currency="JPY", date=dt.date(2026, 1, 1), rate="0.0093")
    payment = pay(customer, 10_000, "jpy")  # ¥10,000 = 93.00 CAD
    assert (payment.amount_cents, payment.currency, payment.amount_cad_cents) == (10_000, "JPY", 9_300)
    assert CommissionEntry.objects.get(payment=payment).amount_cents == 930


def test_yen_from_the_balance_transaction(customer) -> None:  # type: ignore[no-untyped-def]
    payment = pay(customer, 10_000, "jpy", exchange_rate="0.0093")
    assert payment.amount_cad_cents == 9_300
    assert CommissionEntry.objects.get(payment=payment).amount_cents == 930


def test_three_decimal_dinar(customer) -> None:  # type: ignore[no-untyped-def]
    payment = pay(customer, 1_000, "kwd", exchange_rate="4.4")  # 1.000 KWD = 4.40 CAD
    assert payment.amount_cad_cents == 440
    assert CommissionEntry.objects.get(payment=payment).amount_cents == 44


def test_two_decimal_currencies_are_unchanged(customer) -> None:  # type: ignore[no-untyped-def]
    payment = pay(customer, 10_000, "usd", exchange_rate="1.3712")
    assert payment.amount_cad_cents == 13_712
    assert CommissionEntry.objects.get(payment=payment).amount_cents == 1_371


def test_a_refund_converts_at_the_payments_own_rate_however_small(customer) -> None:  # type: ignore[no-untyped-def]
    """Stripe's rate for a currency worth a fraction of a cent (VND: 0.0000537234 CAD per dong) keeps its
    significant digits: half the payment refunded takes back half its commission, not 0.5 % more."""
    payment = pay(customer, 100_000_000, "vnd", exchange_rate="0.0000537234")  # 5,372.34 CAD
    assert payment.amount_cad_cents == 537_234
    assert Payment.objects.get(pk=payment.pk).cad_rate == Decimal("0.0000537234")
    refund = events.refund_created(
        refund_id="re_half", charge_id=payment.charge_id, amount=50_000_000, at=PAID_AT + dt.timedelta(days=1)
    )
    assert receive(refund).status == "processed"
    assert Refund.objects.get().amount_cad_cents == 268_617
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-26_862, 53_723]


def test_the_rate_table_keeps_a_small_rate_exactly(customer) -> None:  # type: ignore[no-untyped-def]
    ExchangeRate.objects.create(currency="VND", date=dt.date(2026, 1, 1), rate="0.0000537234")
    assert ExchangeRate.objects.get().rate == Decimal("0.0000537234")
    assert pay(customer, 100_000_000, "vnd").amount_cad_cents == 537_234


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.integers(min_value=1, max_value=3_000), min_size=1, max_size=6))
def test_partial_refunds_in_yen_take_back_10_percent_of_their_converted_total(customer, pieces) -> None:  # type: ignore[no-untyped-def]
    """Partial refunds after partial refunds are rounded once on their total (docs/commissions.md, The ledger:
    "rounded once on the total"), in the payment's currency: converting each yen refund to CAD cents on its own
    first rounded every piece (¥1 is 0.93 cent, counted 1), so splitting a refund took back more than one refund
    of the same total."""
    payment = pay(customer, 100_000, "jpy", exchange_rate="0.0093")  # 930.00 CAD, commission 9,300
    for i, amount in enumerate(pieces):
        refund = events.refund_created(
            refund_id=f"re_{payment.pk}_{i}",
            charge_id=payment.charge_id,
            amount=amount,
            at=PAID_AT + dt.timedelta(days=1),
        )
        assert receive(refund).status == "processed"
    refunded_cad = convert(Money(sum(pieces), "JPY"), to="CAD", rate="0.0093")
    net = sum(CommissionEntry.objects.filter(payment=payment).values_list("amount_cents", flat=True))
    assert net == 9_300 - percent_of(refunded_cad, 10).cents


def test_a_payment_with_no_rate_yet_waits_staff_are_told_and_the_rate_they_add_applies_it(
    customer, settings, mailoutbox, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    """Regression: webhooks never carry an expanded balance transaction, so every payment not in CAD is converted
    at the rate table's rate; with none for its currency it was stored `ignored`: no payment, no commission, nobody
    told, and the table had no page to add a rate on. Now it waits for the rate, staff are told (once a day per
    currency and date, not per retry), and the rate added in the admin applies it at the next pass."""
    from django.test import Client

    from apertur.integrations.stripe.models import StripeEvent
    from apertur.integrations.stripe.services import retry_waiting_pass
    from apertur.testing import make_staff

    settings.STAFF_NOTIFY_EMAIL = "ops@apertur.example"
    evt = events.invoice_paid(
        customer="cus_usd", email=customer.email, amount=10_000, currency="usd", at=PAID_AT, invoice_id="in_usd"
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert receive(evt).status == "waiting"
        retry_waiting_pass(PAID_AT)  # the hourly pass: still no rate, no second email
    [mail] = [m for m in mailoutbox if m.to == ["ops@apertur.example"]]
    assert "USD" in mail.subject and "2026-02-01" in mail.body and evt["id"] in mail.body
    assert "/admin/projects/exchangerate/add/" in mail.body
    staff = Client()
    staff.force_login(make_staff())
    refused = staff.post("/admin/projects/exchangerate/add/", {"currency": "usd", "date": "2026-01-30", "rate": "-1"})
    assert refused.status_code == 200 and not ExchangeRate.objects.exists()
    # As Stripe writes it: kept upper-case, as payments look it up.
    added = staff.post("/admin/projects/exchangerate/add/", {"currency": "usd", "date": "2026-01-30", "rate": "1.3712"})
    assert added.status_code == 302, added.content.decode()[-2000:]
    assert ExchangeRate.objects.get().currency == "USD"
    retry_waiting_pass(PAID_AT + dt.timedelta(hours=1))
    assert StripeEvent.objects.get(event_id=evt["id"]).status == "processed"
    payment = Payment.objects.get()
    assert (payment.amount_cad_cents, payment.cad_rate) == (13_712, Decimal("1.3712"))
    assert CommissionEntry.objects.get().amount_cents == 1_371
