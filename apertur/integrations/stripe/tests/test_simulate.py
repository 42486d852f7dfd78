"""The simulated billing history: dates, amounts, refunds and the shapes the intake expects."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from apertur.integrations.stripe.simulate import (
    RefundSpec,
    add_months,
    at_noon,
    customer_id_for,
    event_time,
    history,
)


def test_add_months_keeps_the_day_or_takes_the_months_last() -> None:
    assert add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2026, 1, 31), 3) == dt.date(2026, 4, 30)
    assert add_months(dt.date(2026, 11, 15), 2) == dt.date(2027, 1, 15)
    assert add_months(dt.date(2026, 3, 10), -3) == dt.date(2025, 12, 10)


def test_events_happen_at_noon_in_toronto() -> None:
    assert at_noon(dt.date(2026, 1, 15)) == dt.datetime(2026, 1, 15, 17, tzinfo=dt.UTC)  # EST
    assert at_noon(dt.date(2026, 7, 15)) == dt.datetime(2026, 7, 15, 16, tzinfo=dt.UTC)  # EDT


def test_todays_events_happen_now_and_past_days_at_noon() -> None:
    """A customer referred or connected this afternoon earns from a payment simulated today: at noon it
    would be earlier than the attribution (and before noon, in the future)."""
    afternoon = dt.datetime(2026, 3, 2, 20, 30, 15, 250_000, tzinfo=dt.UTC)  # 15:30:15.25 in Toronto
    with time_machine.travel(afternoon, tick=False):
        assert event_time(dt.date(2026, 3, 2)) == dt.datetime(2026, 3, 2, 20, 30, 16, tzinfo=dt.UTC)
        assert event_time(dt.date(2026, 3, 1)) == at_noon(dt.date(2026, 3, 1))
        (sub, paid) = history(email="a@example.com", plan="Pro", price_cents=2_900, months=1, start=dt.date(2026, 3, 2))
    assert sub["created"] == paid["created"] == paid["data"]["object"]["status_transitions"]["paid_at"] == 1772483416
    morning = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)  # 09:00 in Toronto: noon is still to come
    with time_machine.travel(morning, tick=False):
        assert event_time(dt.date(2026, 3, 2)) == morning


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("500@2026-03-10", RefundSpec(500, dt.date(2026, 3, 10))),
        (" 1 @ 2026-12-31 ", RefundSpec(1, dt.date(2026, 12, 31))),
    ],
)
def test_refund_specs(value: str, parsed: RefundSpec) -> None:
    assert RefundSpec.parse(value) == parsed


@pytest.mark.parametrize("value", ["500", "@2026-03-10", "-5@2026-03-10", "0@2026-03-10", "5@2026-02-30", "5@soon"])
def test_bad_refund_specs(value: str) -> None:
    with pytest.raises(ValueError, match=r"refund|day is out of range|cents"):
        RefundSpec.parse(value)


def test_history_is_the_stream_stripe_would_send() -> None:
    stream = history(
        email="Buyer@Example.com",
        plan="Business",
        price_cents=9_999,
        months=3,
        start=dt.date(2026, 1, 31),
        refunds=[RefundSpec(1_000, dt.date(2026, 3, 1)), RefundSpec(500, dt.date(2026, 3, 2))],
        user_public_id="usr_1",
    )
    assert [e["type"] for e in stream] == [
        "customer.subscription.created",
        "invoice.paid",
        "invoice.paid",
        "charge.refunded",
        "charge.refunded",
        "invoice.paid",
    ]
    sub = stream[0]["data"]["object"]
    assert sub["items"]["data"][0]["price"]["lookup_key"] == "business"
    assert sub["metadata"] == {"apertur_user_id": "usr_1"} and sub["customer"] == customer_id_for("buyer@example.com")
    invoices = [e["data"]["object"] for e in stream if e["type"] == "invoice.paid"]
    assert [i["amount_paid"] for i in invoices] == [9_999] * 3
    paid_days = [dt.datetime.fromtimestamp(i["status_transitions"]["paid_at"], tz=dt.UTC).date() for i in invoices]
    assert paid_days == [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 3, 31)]
    # Both refunds hit the February invoice; Stripe lists the charge's refunds so far in each event.
    first, second = (e["data"]["object"] for e in stream if e["type"] == "charge.refunded")
    assert first["invoice"] == second["invoice"] == invoices[1]["id"]
    assert [r["amount"] for r in first["refunds"]["data"]] == [1_000]
    assert [r["amount"] for r in second["refunds"]["data"]] == [1_000, 500]
    assert second["amount_refunded"] == 1_500
    assert len({e["id"] for e in stream}) == len(stream)


def test_history_ids_are_deterministic_with_a_prefix_and_unique_without() -> None:
    def make(prefix: str | None) -> list[str]:
        return [
            e["id"]
            for e in history(
                email="a@example.com",
                plan="Pro",
                price_cents=2_499,
                months=2,
                start=dt.date(2026, 1, 1),
                id_prefix=prefix,
            )
        ]

    assert make("demo") == make("demo")
    assert set(make(None)).isdisjoint(make(None))


def test_refunds_must_fit_a_payment() -> None:
    common = {"email": "a@example.com", "plan": "Pro", "price_cents": 2_499, "months": 1, "start": dt.date(2026, 3, 1)}
    with pytest.raises(ValueError, match="No simulated payment"):
        history(**common, refunds=[RefundSpec(100, dt.date(2026, 2, 28))])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exceeds what is left"):
        history(**common, refunds=[RefundSpec(2_000, dt.date(2026, 3, 2)), RefundSpec(500, dt.date(2026, 3, 3))])  # type: ignore[arg-type]
