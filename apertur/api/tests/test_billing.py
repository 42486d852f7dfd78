from __future__ import annotations

import datetime as dt

import pytest

from apertur.api.tests.conftest import Api
from apertur.oauth.tests.conftest import Flow
from apertur.projects.models import Payment, Refund, Subscription
from apertur.projects.selectors import plan_by_name

pytestmark = pytest.mark.django_db


def test_billing_shows_plan_subscription_and_payments(api: Api, flow: Flow) -> None:
    assert api.get("/billing").json()["subscription"] is None
    sub = Subscription.objects.create(project=flow.project, external_id="sub_1", plan=plan_by_name("Pro"))
    paid = dt.datetime(2026, 3, 1, 15, 0, tzinfo=dt.UTC)
    payment = Payment.objects.create(
        project=flow.project, subscription=sub, external_id="in_1", amount_cents=24_999, paid_at=paid
    )
    Refund.objects.create(payment=payment, external_id="re_1", amount_cents=5_000, created_at=paid)
    body = api.get("/billing").json()
    assert body["plan"]["name"] == "Pro"
    assert body["subscription"]["id"] == "sub_1" and body["subscription"]["status"] == "active"
    assert body["payments"] == [
        {
            "id": "in_1",
            "amount_cents": 24_999,
            "currency": "CAD",
            "refunded_cents": 5_000,
            "description": "",
            "paid_at": "2026-03-01T15:00:00+00:00",
        }
    ]


def test_billing_needs_its_scope_and_test_mode_sees_no_payments(narrow_api: Api, test_key_api: Api, flow: Flow) -> None:
    assert narrow_api.get("/billing").status_code == 403
    Payment.objects.create(
        project=flow.project, external_id="in_2", amount_cents=100, paid_at=dt.datetime.now(tz=dt.UTC)
    )
    body = test_key_api.get("/billing").json()
    assert body["payments"] == [] and body["livemode"] is False


def test_billing_lists_the_latest_20_payments_newest_first(api: Api, flow: Flow) -> None:
    """The refund sum groups the query, which then dropped Payment's default ordering: any 20, in any order.
    Inserted oldest last, so the table's own order is not the answer by chance."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in (5, 24, 0, 13, *range(1, 5), *range(6, 13), *range(14, 24)):
        Payment.objects.create(
            project=flow.project, external_id=f"in_{n:02d}", amount_cents=100, paid_at=start + dt.timedelta(days=n)
        )
    ids = [p["id"] for p in api.get("/billing").json()["payments"]]
    assert ids == [f"in_{n:02d}" for n in range(24, 4, -1)]
