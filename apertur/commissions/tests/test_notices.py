"""The monthly statement email: its figures agree with the dashboard and its CSV for the same month."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core import mail

from apertur.commissions import notices, selectors, services
from apertur.commissions.selectors import EarningFilters
from apertur.commissions.tests.test_dashboard import TORONTO, customer_of, pay, refund
from apertur.projects.models import Dispute, DisputeStatus
from apertur.testing import make_partner

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=TORONTO)  # November is over
NOVEMBER = dt.date(2026, 11, 1)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def november_rows(partner: Any) -> list[selectors.Earning]:
    filters = EarningFilters(date_from=dt.date(2026, 11, 1), date_to=dt.date(2026, 11, 30))
    return list(selectors.earning_rows(selectors.earning_list(partner=partner, filters=filters)))


def test_a_won_dispute_is_earned_once_in_the_statement(django_capture_on_commit_callbacks: Any) -> None:
    """A won dispute re-earns the commission under a key of its own: the payment still earned its 10 % once, as
    the dashboard's Commission column and the CSV's commission_cents say, and nothing is reversed in the end."""
    partner = make_partner()
    customer = customer_of(partner, "dana@example.com", "Dana's darkroom")
    disputed = pay(customer, 1_999, dt.datetime(2026, 11, 30, 23, 30, tzinfo=TORONTO))  # 200: 199.9 rounded up
    refunded = pay(customer, 10_000, dt.datetime(2026, 11, 2, 9, 0, tzinfo=TORONTO))  # 1,000
    refund(refunded, 2_500, dt.datetime(2026, 11, 20, tzinfo=TORONTO))  # −250
    dispute = Dispute.objects.create(
        payment=disputed.payment, external_id="dp_statement", amount_cents=1_999, opened_at=NOW
    )
    services.on_dispute_opened(dispute=dispute)
    Dispute.objects.filter(pk=dispute.pk).update(status=DisputeStatus.WON, closed_at=NOW)
    dispute.refresh_from_db()
    services.on_dispute_won(dispute=dispute)

    rows = november_rows(partner)
    commission, net = sum(r.commission_cents for r in rows), sum(r.net_cents for r in rows)
    assert (commission, net) == (1_200, 950)
    series = {m.month: m.net_cents for m in selectors.monthly_earnings(partner=partner)}
    assert series[NOVEMBER] == net

    with django_capture_on_commit_callbacks(execute=True):
        (result,) = notices.send_statements(month=NOVEMBER)
    assert (result.payments, result.earned_cents, result.reversed_cents, result.net_cents) == (2, 1_200, -250, 950)
    body = mail.outbox[-1].body
    assert "Commission earned: $12.00 CAD" in body
    assert "Reversed (refunds, chargebacks): -$2.50 CAD" in body
    assert "Net for the month: $9.50 CAD" in body


@pytest.mark.parametrize(
    ("source", "how"),
    [("referral", "referred"), ("oauth", "connected")],
)
def test_the_first_payment_email_says_how_the_customer_came(
    source: str, how: str, django_capture_on_commit_callbacks: Any
) -> None:
    """A customer attributed through an OAuth connection was not referred: the partner's dashboard counts them
    apart ("Through OAuth connections"), and the email says which they are."""
    partner = make_partner()
    customer = customer_of(partner, f"{source}@example.com", source=source)
    with django_capture_on_commit_callbacks(execute=True):
        assert notices.first_payment(entry=pay(customer, 10_000, dt.datetime(2026, 11, 5, 12, tzinfo=TORONTO)))
    (message,) = mail.outbox
    assert message.subject == f"A customer you {how} made their first payment"
    assert f"A customer you {how} to Apertur has made their first payment." in message.body


def test_the_statement_counts_connected_customers_payments_without_calling_them_referred(
    django_capture_on_commit_callbacks: Any,
) -> None:
    partner = make_partner()
    pay(customer_of(partner, "linked@example.com", source="oauth"), 10_000, dt.datetime(2026, 11, 5, tzinfo=TORONTO))
    with django_capture_on_commit_callbacks(execute=True):
        (result,) = notices.send_statements(month=NOVEMBER)
    assert result.payments == 1
    assert "Payments made in November 2026 by customers you referred or connected: 1" in mail.outbox[-1].body
