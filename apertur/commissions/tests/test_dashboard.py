"""The partner's commissions dashboard and CSV: totals, statuses, filters, sorting, pages, the chart, the
funnel, privacy, and a constant number of queries."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
import time_machine
from django import forms
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apertur.accounts.models import User
from apertur.commissions import selectors, services
from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import EarningFilters, EarningStatus, mask_email
from apertur.commissions.tests.paying import pay_out, runs_made
from apertur.core import spreadsheet
from apertur.partners.models import Partner, PartnerStatus
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus
from apertur.payouts.services import sender_item_id_for
from apertur.projects.models import Dispute, DisputeStatus, Payment, Refund
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.referrals.services import ensure_default_link, record_click
from apertur.testing import make_app, make_partner, make_user

pytestmark = pytest.mark.django_db

TORONTO = selectors.clock.BUSINESS_TZ
NOW = dt.datetime(2026, 6, 10, 12, 0, tzinfo=TORONTO)  # a Wednesday, before the June payout run
ATTRIBUTED = dt.datetime(2026, 1, 1, tzinfo=TORONTO)
_seq = count(1)


def at(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=TORONTO)


def customer_of(partner: Partner, email: str, project: str = "Studio", source: str = "referral") -> User:
    user = make_user(email)
    create_project(owner=user, name=project)
    Attribution.objects.create(customer=user, partner=partner, source=source, at=ATTRIBUTED)
    return user


def pay(customer: User, cad_cents: int, paid_at: dt.datetime) -> CommissionEntry:
    payment = Payment.objects.create(
        project=customer.projects.get(),
        customer=customer,
        external_id=f"in_{next(_seq)}",
        amount_cents=cad_cents,
        amount_cad_cents=cad_cents,
        paid_at=paid_at,
    )
    entry = services.on_payment(payment=payment)
    assert entry is not None
    return entry


def refund(entry: CommissionEntry, cad_cents: int, created_at: dt.datetime) -> None:
    made = Refund.objects.create(
        payment=entry.payment,
        external_id=f"re_{next(_seq)}",
        amount_cents=cad_cents,
        amount_cad_cents=cad_cents,
        created_at=created_at,
    )
    services.on_refund(refund=made)


def browser_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def ledger() -> dict[str, Any]:
    """One partner, one earning in each status (see the comments), and another partner's customer.

    Totals at NOW: pending 1,000; eligible 2,500 + 2,000 + 0 = 4,500; paid 5,000; lifetime 10,500.
    """
    # Every monthly run so far was made (the June one too, for the tests after its date): none is late.
    runs_made(*(f"2026-{month:02d}" for month in range(1, 7)))
    partner = make_partner()
    anna = customer_of(partner, "anna@example.com", "Anna's studio")
    bob = customer_of(partner, "bob@example.org", "Bob builds")
    carla = customer_of(partner, "carla@example.com", "Carla clicks")
    dave = customer_of(partner, "dave@example.net", "Dave's darkroom")
    entries = {
        "eligible": pay(anna, 24_999, at("2026-03-01")),  # 2,500, available 2026-03-31
        "partly_refunded": pay(anna, 24_999, at("2026-04-01")),  # 2,500 − 500, available 2026-05-01
        "pending": pay(bob, 10_000, at("2026-06-01")),  # 1,000, available 2026-07-01
        "paid": pay(carla, 50_000, at("2026-02-05")),  # 5,000, paid out on 2026-03-15
        "reversed": pay(dave, 30_000, at("2026-05-02")),  # 3,000, refunded in full
    }
    refund(entries["partly_refunded"], 5_000, at("2026-04-10"))
    refund(entries["reversed"], 30_000, at("2026-05-05"))
    pay_out([entries["paid"]], at=at("2026-03-15", 9))
    other = make_partner()
    stranger = customer_of(other, "zed.secret@elsewhere.example", "Other partner's project")
    pay(stranger, 99_999, at("2026-05-20"))
    return {"partner": partner, "entries": entries, "anna": anna, "bob": bob, "stranger": stranger}


def rows(partner: Partner, **filters: Any) -> list[selectors.Earning]:
    return list(selectors.earning_rows(selectors.earning_list(partner=partner, filters=EarningFilters(**filters))))


def ids(partner: Partner, **filters: Any) -> list[int]:
    return [row.id for row in rows(partner, **filters)]


# --- selectors ------------------------------------------------------------------------------------------


def test_each_earning_has_the_status_the_partner_sees(ledger: dict[str, Any]) -> None:
    partner, entries = ledger["partner"], ledger["entries"]
    by_id = {row.id: row for row in rows(partner)}
    assert len(by_id) == 5  # one row per payment; refunds only change the net
    expected = {
        "eligible": (EarningStatus.ELIGIBLE, 2_500, 2_500),
        "partly_refunded": (EarningStatus.ELIGIBLE, 2_500, 2_000),
        "pending": (EarningStatus.PENDING, 1_000, 1_000),
        "paid": (EarningStatus.PAID, 5_000, 5_000),
        "reversed": (EarningStatus.REVERSED, 3_000, 0),
    }
    for name, (status, commission, net) in expected.items():
        row = by_id[entries[name].pk]
        assert (row.status, row.commission_cents, row.net_cents) == (status, commission, net), name
    assert by_id[entries["eligible"].pk].customer == "an***@example.com"
    assert by_id[entries["eligible"].pk].project == "Anna's studio"
    assert by_id[entries["eligible"].pk].payment_cad_cents == 24_999


def test_status_flips_at_the_end_of_the_30_day_hold(ledger: dict[str, Any]) -> None:
    partner, pending = ledger["partner"], ledger["entries"]["pending"]
    available = pending.available_at
    before = selectors.earning_list(partner=partner, at=available - dt.timedelta(seconds=1)).get(pk=pending.pk)
    on_time = selectors.earning_list(partner=partner, at=available).get(pk=pending.pk)
    assert (before.status, on_time.status) == ("pending", "eligible")


def test_a_clawback_after_payout_shows_as_reversed(ledger: dict[str, Any]) -> None:
    partner, paid = ledger["partner"], ledger["entries"]["paid"]
    refund(paid, 50_000, at("2026-06-01"))
    assert paid.payment.commission_entries.get(kind="clawback").amount_cents == -5_000
    row = next(r for r in rows(partner) if r.id == paid.pk)
    assert (row.status, row.net_cents) == (EarningStatus.REVERSED, 0)


def test_a_won_dispute_is_still_one_earning_with_its_net(ledger: dict[str, Any]) -> None:
    # A won dispute re-earns under a key of its own: the payment keeps one row (its own earning), whose net
    # counts the reversal and the re-earning, and which is not reversed.
    partner, entries = ledger["partner"], ledger["entries"]
    entry = entries["eligible"]
    dispute = Dispute.objects.create(
        payment=entry.payment, external_id="dp_dash", amount_cents=24_999, opened_at=at("2026-04-02")
    )
    services.on_dispute_opened(dispute=dispute)
    assert next(r for r in rows(partner) if r.id == entry.pk).status == EarningStatus.REVERSED
    Dispute.objects.filter(pk=dispute.pk).update(status=DisputeStatus.WON, closed_at=at("2026-04-20"))
    dispute.refresh_from_db()
    services.on_dispute_won(dispute=dispute)
    assert sorted(entry.payment.commission_entries.values_list("kind", flat=True)) == ["earned", "earned", "reversal"]
    page = selectors.earning_page(partner=partner)
    assert page.count == 5 and len(page.rows) == 5
    row = next(r for r in page.rows if r.id == entry.pk)
    assert (row.status, row.commission_cents, row.net_cents) == (EarningStatus.ELIGIBLE, 2_500, 2_500)
    assert ids(partner, status="reversed") == [entries["reversed"].pk]
    assert entry.pk in ids(partner, status="eligible")


def test_masking() -> None:
    assert mask_email("anna@example.com") == "an***@example.com"
    assert mask_email("bob@example.org") == "b***@example.org"
    assert mask_email("x@example.org") == "x***@example.org"


def test_filter_by_status(ledger: dict[str, Any]) -> None:
    partner, entries = ledger["partner"], ledger["entries"]
    assert set(ids(partner, status="eligible")) == {entries["eligible"].pk, entries["partly_refunded"].pk}
    for status in ("pending", "paid", "reversed"):
        assert ids(partner, status=status) == [entries[status].pk]


@pytest.mark.parametrize(
    "when",
    [
        "2026-02-20",  # everything pending; the paid earning is paid already (paid wins, as in the CASE)
        "2026-03-20",  # the paid earning out of its hold, the first one too
        "2026-05-10",  # the reversed payment reversed, the partly refunded one eligible
        "2026-07-02",  # NOW-ish: one of each
    ],
)
def test_each_status_filter_matches_exactly_the_rows_shown_with_that_status(ledger: dict[str, Any], when: str) -> None:
    # The filters say the status CASE as direct conditions (selectors._status_is); they must agree with it at any
    # time, also where a shortcut would not (an earning paid now but still in its hold at an earlier time).
    partner, moment = ledger["partner"], at(when)
    shown = {
        (row.id, row.status.value) for row in selectors.earning_rows(selectors.earning_list(partner=partner, at=moment))
    }
    for status in EarningStatus:
        listed = selectors.earning_list(partner=partner, filters=EarningFilters(status=status.value), at=moment)
        assert sorted(e.pk for e in listed) == sorted(pk for pk, value in shown if value == status.value), status
        page = selectors.earning_page(partner=partner, filters=EarningFilters(status=status.value), at=moment)
        assert {(row.id, row.status.value) for row in page.rows} == {(pk, v) for pk, v in shown if v == status.value}
    assert ids(partner, status="lost") == []
    if when == "2026-02-20":
        assert ("paid" in {v for _, v in shown}) and ("pending" in {v for _, v in shown})


def test_filter_by_date_range_uses_toronto_dates(ledger: dict[str, Any]) -> None:
    partner, entries = ledger["partner"], ledger["entries"]
    march_april = ids(partner, date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 4, 1))
    assert set(march_april) == {entries["eligible"].pk, entries["partly_refunded"].pk}
    assert ids(partner, date_from=dt.date(2026, 6, 1)) == [entries["pending"].pk]
    assert ids(partner, date_to=dt.date(2026, 2, 28)) == [entries["paid"].pk]
    # 23:30 in Toronto on Feb 28 is already March 1 in UTC: it belongs to Feb 28.
    late = pay(ledger["bob"], 1_000, dt.datetime(2026, 3, 1, 4, 30, tzinfo=dt.UTC))
    assert late.pk in ids(partner, date_from=dt.date(2026, 2, 28), date_to=dt.date(2026, 2, 28))
    assert late.pk not in ids(partner, date_from=dt.date(2026, 3, 1), date_to=dt.date(2026, 3, 1))


def test_filter_by_customer_public_id_or_masked_label(ledger: dict[str, Any]) -> None:
    partner, entries, anna = ledger["partner"], ledger["entries"], ledger["anna"]
    anna_ids = {entries["eligible"].pk, entries["partly_refunded"].pk}
    assert set(ids(partner, customer=anna.public_id)) == anna_ids
    assert set(ids(partner, customer="an***@example.com")) == anna_ids
    # Another customer with the same mask: the label matches both, the public id only one.
    anne = customer_of(partner, "anne@example.com", "Anne's album")
    annes = pay(anne, 1_000, at("2026-05-01"))
    assert set(ids(partner, customer="an***@example.com")) == {*anna_ids, annes.pk}
    assert ids(partner, customer=anne.public_id) == [annes.pk]
    labels = [label for _, label in selectors.customer_choices(partner=partner)]
    assert "an***@example.com" in labels and "an***@example.com (2)" in labels
    # Unknown values and other partners' customers match nothing.
    assert ids(partner, customer="somebody") == []
    assert ids(partner, customer=ledger["stranger"].public_id) == []
    assert ids(partner, customer=mask_email(ledger["stranger"].email)) == []


def test_sorting(ledger: dict[str, Any]) -> None:
    partner, e = ledger["partner"], ledger["entries"]
    newest = [e["pending"].pk, e["reversed"].pk, e["partly_refunded"].pk, e["eligible"].pk, e["paid"].pk]
    assert ids(partner) == newest
    assert ids(partner, sort="-date") == newest
    assert ids(partner, sort="date") == newest[::-1]
    # Commission 5,000 > 3,000 > 2,500 (two, newest first) > 1,000.
    largest = [e["paid"].pk, e["reversed"].pk, e["partly_refunded"].pk, e["eligible"].pk, e["pending"].pk]
    assert ids(partner, sort="-amount") == largest
    assert ids(partner, sort="amount") == largest[::-1]


def test_totals_and_next_payout(ledger: dict[str, Any]) -> None:
    partner = ledger["partner"]
    totals = selectors.balance(partner=partner)
    assert (totals.pending_cents, totals.eligible_cents, totals.paid_cents, totals.lifetime_cents) == (
        1_000,
        4_500,
        5_000,
        10_500,
    )
    payout = selectors.next_payout(partner=partner)
    assert payout.run_at == dt.datetime(2026, 6, 15, 9, tzinfo=TORONTO)
    assert (payout.eligible_cents, payout.will_pay) == (4_500, False)
    # After the June run: the July run also gets Bob's 1,000 (available July 1): over the minimum.
    july = selectors.next_payout(partner=partner, at=at("2026-06-20"))
    assert july.run_at == dt.datetime(2026, 7, 15, 9, tzinfo=TORONTO)
    assert (july.eligible_cents, july.will_pay) == (5_500, True)


@pytest.mark.parametrize(
    ("now", "run"),
    [
        (dt.datetime(2026, 6, 15, 8, 59, tzinfo=TORONTO), dt.datetime(2026, 6, 15, 9, tzinfo=TORONTO)),
        (dt.datetime(2026, 6, 15, 9, 0, tzinfo=TORONTO), dt.datetime(2026, 7, 15, 9, tzinfo=TORONTO)),
        (dt.datetime(2026, 12, 20, tzinfo=TORONTO), dt.datetime(2027, 1, 15, 9, tzinfo=TORONTO)),
        # 12:30 UTC is 08:30 in Toronto in summer (UTC−4) and 07:30 in winter (UTC−5): the run is ahead.
        (dt.datetime(2026, 6, 15, 12, 30, tzinfo=dt.UTC), dt.datetime(2026, 6, 15, 9, tzinfo=TORONTO)),
        (dt.datetime(2026, 1, 15, 13, 30, tzinfo=dt.UTC), dt.datetime(2026, 1, 15, 9, tzinfo=TORONTO)),
        (dt.datetime(2026, 1, 15, 14, 0, tzinfo=dt.UTC), dt.datetime(2026, 2, 15, 9, tzinfo=TORONTO)),
    ],
)
def test_next_payout_date_in_toronto(now: dt.datetime, run: dt.datetime) -> None:
    assert selectors.next_payout_at(now) == run


def test_monthly_series_is_net_by_toronto_month_of_payment(ledger: dict[str, Any]) -> None:
    partner = ledger["partner"]
    pay(ledger["bob"], 1_000, dt.datetime(2026, 3, 1, 4, 30, tzinfo=dt.UTC))  # Feb 28 in Toronto: +100
    series = selectors.monthly_earnings(partner=partner)
    assert series[0].month == dt.date(2025, 7, 1) and series[-1].month == dt.date(2026, 6, 1)
    assert len(series) == 12
    by_month = {m.month.strftime("%Y-%m"): m.net_cents for m in series}
    assert by_month == {
        **{f"2025-{m:02d}": 0 for m in range(7, 13)},
        "2026-01": 0,
        "2026-02": 5_100,
        "2026-03": 2_500,
        "2026-04": 2_000,
        "2026-05": 0,
        "2026-06": 1_000,
    }


def test_referral_funnel() -> None:
    partner = make_partner()
    link = ensure_default_link(partner=partner)
    for _ in range(7):
        record_click(link=link)
    paying = customer_of(partner, "paying@example.com")
    customer_of(partner, "browsing@example.com")
    pay(paying, 2_000, at("2026-05-01"))
    pay(paying, 2_000, at("2026-06-01"))  # two payments, still one paying customer
    connected = customer_of(partner, "connected@example.com", source=AttributionSource.OAUTH)
    pay(connected, 2_000, at("2026-05-01"))
    other = make_partner()
    record_click(link=ensure_default_link(partner=other))
    customer_of(other, "theirs@example.com")
    funnel = selectors.referral_funnel(partner=partner)
    assert (funnel.clicks, funnel.signups, funnel.paying_customers) == (7, 2, 1)
    assert (funnel.oauth_customers, funnel.oauth_paying_customers) == (1, 1)


# --- the page -------------------------------------------------------------------------------------------


def page_of(partner: Partner, query: str = "") -> str:
    response = browser_for(partner.user).get(f"/partners/commissions/{query}")
    assert response.status_code == 200, response.content.decode()[:500]
    return response.content.decode()


def table_projects(html: str) -> list[str]:
    """The project cell of each earnings row, in order."""
    body = html.split('<table class="earnings">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr>\s*<td>[^<]*</td>\s*<td>[^<]*</td>\s*<td class=\"project\">([^<]*)</td>", body)


def verify_paypal(partner: Any) -> None:
    Partner.objects.filter(pk=partner.pk).update(
        paypal_email="money@snapflow.example", paypal_verified_at=at("2026-02-01")
    )


def test_dashboard_shows_totals_payout_funnel_apps_and_earnings(ledger: dict[str, Any]) -> None:
    partner = ledger["partner"]
    verify_paypal(partner)
    make_app(partner, name="Snapflow")
    html = page_of(partner)
    for text in ("$10.00 CAD", "$45.00 CAD", "$50.00 CAD", "$105.00 CAD"):
        assert text in html
    assert "Monday 15 June 2026, 09:00" in html
    assert "under the $50.00 CAD minimum" in html
    assert "Referral funnel" in html and "Connected projects" in html and "Snapflow" in html
    assert "5 earnings" in html
    assert 'class="pill reversed">Reversed' in html and 'class="pill pending">Pending' in html
    assert "Not available yet" not in html
    assert 'href="/partners/commissions/earnings.csv' in html


def test_dashboard_estimates_a_payout_over_the_minimum(ledger: dict[str, Any]) -> None:
    verify_paypal(ledger["partner"])
    with time_machine.travel(at("2026-06-20"), tick=False):
        html = page_of(ledger["partner"])
    assert "Wednesday 15 July 2026, 09:00" in html
    assert "Estimated amount: <strong>$55.00 CAD</strong>" in html
    assert "Nothing will be paid on this run" not in html


def test_dashboard_does_not_promise_a_payout_the_run_will_not_make(ledger: dict[str, Any]) -> None:
    """docs/commissions.md: the card says "what the next run would pay". Without a verified PayPal email (or under
    a staff hold, or with an address PayPal refused) the run pays nothing, whatever the balance: the card said
    "Estimated amount: $55.00" all the same. The reason is the payouts app's own rule (payouts.services)."""
    partner = ledger["partner"]
    with time_machine.travel(at("2026-06-20"), tick=False):
        html = page_of(partner)
    assert "Estimated amount" not in html
    assert "Nothing will be paid on this run. Payouts wait for a verified PayPal email." in html
    assert "$55.00 CAD" in html and 'href="/partners/payouts/"' in html

    verify_paypal(partner)
    Partner.objects.filter(pk=partner.pk).update(payouts_held_at=at("2026-06-01"), payouts_hold_reason="Checking")
    with time_machine.travel(at("2026-06-20"), tick=False):
        held = page_of(partner)
    assert "Nothing will be paid on this run. Payouts are on hold." in held


def test_dashboard_says_what_a_payout_on_its_way_holds(ledger: dict[str, Any]) -> None:
    """The June run saved a payout of the 4,500 eligible but PayPal has not accepted it yet: the Eligible card still
    counts it (not paid), the next run's estimate leaves it out (that payout pays it). The card says why the two
    differ rather than telling the partner their balance is under the minimum and carried over."""
    partner, entries = ledger["partner"], ledger["entries"]
    verify_paypal(partner)
    taken = [entries["eligible"], *entries["partly_refunded"].payment.commission_entries.all()]
    payout = Payout.objects.create(
        partner=partner,
        period="2026-06",
        amount_cents=sum(e.amount_cents for e in taken),
        status=PayoutStatus.CREATED,
        sender_batch_id=sender_item_id_for(partner, "2026-06"),
        created_at=at("2026-06-15", 9),
    )
    PayoutEntry.objects.bulk_create([PayoutEntry(payout=payout, entry=e) for e in taken])
    with time_machine.travel(at("2026-06-15", 10), tick=False):
        html = page_of(partner)
    assert 'Eligible</p><p class="stat-value">$45.00 CAD' in html
    assert "Estimated eligible balance by then: <strong>$10.00 CAD</strong>" in html
    assert "$45.00 CAD of your eligible balance is already in a payout on its way" in html


def test_dashboard_never_shows_full_emails_or_other_partners_data(ledger: dict[str, Any]) -> None:
    html = page_of(ledger["partner"])
    for email in ("anna@example.com", "bob@example.org", "carla@example.com", "dave@example.net"):
        assert email not in html
    assert "an***@example.com" in html and "b***@example.org" in html
    # The other partner's customer, masked or not, by parts no CSRF token can hold ("zed" alone once matched a
    # random token on the page: a flaky failure, not a leak).
    assert "elsewhere.example" not in html and "zed.secret" not in html and "ze***@" not in html
    assert "Other partner" not in html and "$9,999" not in html and "$10,000" not in html
    csv_text = browser_for(ledger["partner"].user).get("/partners/commissions/earnings.csv").getvalue().decode()
    assert "@example.com" in csv_text and "anna@" not in csv_text and "elsewhere.example" not in csv_text


def test_dashboard_filters_and_sorting_through_the_query_string(ledger: dict[str, Any]) -> None:
    partner, anna = ledger["partner"], ledger["anna"]
    assert table_projects(page_of(partner, "?status=pending")) == ["Bob builds"]
    assert table_projects(page_of(partner, f"?customer={anna.public_id}&sort=date")) == ["Anna&#x27;s studio"] * 2
    assert table_projects(page_of(partner, "?from=2026-02-01&to=2026-02-28")) == ["Carla clicks"]
    assert table_projects(page_of(partner, "?sort=-amount"))[0] == "Carla clicks"
    assert table_projects(page_of(partner, "?sort=amount"))[0] == "Bob builds"
    assert table_projects(page_of(partner, "?customer=an%2A%2A%2A%40example.com"))[0] == "Anna&#x27;s studio"
    html = page_of(partner, f"?customer={anna.public_id}")
    assert f'<option value="{anna.public_id}" selected>an***@example.com</option>' in html


def test_bad_filters_are_explained(ledger: dict[str, Any]) -> None:
    client = browser_for(ledger["partner"].user)
    response = client.get("/partners/commissions/?from=2026-05-01&to=2026-04-01&status=lost")
    assert response.status_code == 400
    html = response.content.decode()
    assert "The end date is before the start date." in html and "Select a valid choice" in html
    assert client.get("/partners/commissions/earnings.csv?from=yesterday").status_code == 400


@pytest.mark.parametrize("query", ["?to=9999-12-31", "?from=0001-01-01", "?from=9999-12-31"])
def test_date_filters_at_the_calendars_ends_filter_instead_of_failing(ledger: dict[str, Any], query: str) -> None:
    """A date the From/To fields accept is a Toronto day: the day after 9999-12-31 does not exist, so To reaching
    the end of the calendar keeps every later payment (there is none) rather than overflowing."""
    client = browser_for(ledger["partner"].user)
    everything = len(table_projects(page_of(ledger["partner"])))
    expected = 0 if query == "?from=9999-12-31" else everything
    assert len(table_projects(page_of(ledger["partner"], query))) == expected
    assert client.get(f"/partners/commissions/earnings.csv{query}").status_code == 200


def make_earnings(partner: Partner, n: int) -> None:
    for i in range(n):
        user = customer_of(partner, f"customer{i:02d}-{next(_seq)}@example.com", f"Project {i:02d}")
        pay(user, 1_000 * (i + 1), at("2026-01-02") + dt.timedelta(days=i * 4))


@pytest.mark.parametrize("sort", ["-date", "date", "-amount", "amount"])
def test_late_join_pages_are_the_plain_pages(sort: str) -> None:
    # earning_page reads a page's ids first, then those rows with their joins: same rows, same order.
    from apertur.core.pages import page_of as plain_page_of

    partner = make_partner()
    make_earnings(partner, 30)
    pay(customer_of(partner, "tie@example.com", "Tie"), 1_000, at("2026-01-02"))  # ties on amount and date
    filters = EarningFilters(sort=sort)
    for number in (1, 2, 3):
        late = selectors.earning_page(partner=partner, filters=filters, page=number)
        plain = plain_page_of(
            selectors.earning_list(partner=partner, filters=filters),
            page=number,
            size=selectors.PAGE_SIZE,
            rows=selectors.earning_rows,
        )
        assert late == plain
        assert [r.id for r in late.rows] and late.number == min(number, 2)


def test_pagination_25_per_page() -> None:
    partner = make_partner()
    make_earnings(partner, 30)
    first = page_of(partner, "?sort=amount")
    assert len(table_projects(first)) == 25 and "Page 1 of 2" in first
    assert 'href="?sort=amount&amp;page=2"' in first
    second = page_of(partner, "?sort=amount&page=2")
    assert table_projects(second) == [f"Project {i:02d}" for i in range(25, 30)]
    assert "Page 2 of 2" in second and 'rel="prev"' in second
    assert table_projects(page_of(partner, "?sort=amount&page=99")) == table_projects(second)
    assert table_projects(page_of(partner, "?sort=amount&page=nope")) == table_projects(first)


def csv_rows(partner: Partner, query: str = "") -> list[dict[str, str]]:
    response = browser_for(partner.user).get(f"/partners/commissions/earnings.csv{query}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="apertur-earnings-2026-06-10.csv"'
    reader = csv.reader(io.StringIO(response.getvalue().decode()))
    header = next(reader)
    assert header == [
        "date",
        "customer",
        "project",
        "payment_cad_cents",
        "commission_cents",
        "net_cents",
        "status",
        "available_at",
    ]
    return [dict(zip(header, row, strict=True)) for row in reader]


@pytest.mark.parametrize(
    "query",
    ["", "?status=eligible&sort=amount", "?from=2026-03-01&to=2026-05-31", "?customer=an%2A%2A%2A%40example.com"],
)
def test_csv_is_exactly_the_filtered_rows(ledger: dict[str, Any], query: str) -> None:
    partner = ledger["partner"]
    client = browser_for(partner.user)
    form_filters = client.get(f"/partners/commissions/{query}").context["form"].filters()
    expected = [
        {
            "date": row.date.isoformat(),
            "customer": row.customer,
            "project": row.project,
            "payment_cad_cents": str(row.payment_cad_cents),
            "commission_cents": str(row.commission_cents),
            "net_cents": str(row.net_cents),
            "status": row.status.value,
            "available_at": row.available_at.astimezone(TORONTO).isoformat(timespec="seconds"),
        }
        for row in rows(partner, **{f: getattr(form_filters, f) for f in form_filters.__slots__})
    ]
    assert expected and csv_rows(partner, query) == expected


def test_csv_has_every_page_and_known_values(ledger: dict[str, Any]) -> None:
    partner = ledger["partner"]
    first = csv_rows(partner, "?status=eligible&sort=date")
    assert first == [
        {
            "date": "2026-03-01",
            "customer": "an***@example.com",
            "project": "Anna's studio",
            "payment_cad_cents": "24999",
            "commission_cents": "2500",
            "net_cents": "2500",
            "status": "eligible",
            # noon EST + 30 × 24 h: 13:00 once daylight time began on 2026-03-08 (docs/commissions.md, Hold)
            "available_at": "2026-03-31T13:00:00-04:00",
        },
        {
            "date": "2026-04-01",
            "customer": "an***@example.com",
            "project": "Anna's studio",
            "payment_cad_cents": "24999",
            "commission_cents": "2500",
            "net_cents": "2000",
            "status": "eligible",
            "available_at": "2026-05-01T12:00:00-04:00",
        },
    ]
    many = make_partner()
    make_earnings(many, 30)
    assert len(csv_rows(many)) == 30


def test_csv_neutralises_spreadsheet_formulas() -> None:
    partner = make_partner()
    pay(customer_of(partner, "formula@example.com", '=HYPERLINK("http://evil")'), 1_000, at("2026-05-01"))
    assert csv_rows(partner)[0]["project"] == '\'=HYPERLINK("http://evil")'


def test_chart_bars_and_table_fallback(ledger: dict[str, Any]) -> None:
    html = page_of(ledger["partner"])
    bars = re.findall(r'<g class="chart-bar[^"]*" role="img" aria-label="([^"]*)" data-cents="(-?\d+)">', html)
    assert len(bars) == 12
    assert bars[7] == ("February 2026: $50.00 CAD", "5000")
    assert bars[8] == ("March 2026: $25.00 CAD", "2500")
    assert bars[-1] == ("June 2026: $10.00 CAD", "1000")
    assert "<title>April 2026: $20.00 CAD</title>" in html
    heights = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', html)
    assert float(heights[7]) > float(heights[8]) > float(heights[9]) > float(heights[11]) > 0 == float(heights[10])
    fallback = html.split('<table class="compact monthly">', 1)[1].split("</table>", 1)[0]
    assert '<td>March 2026</td><td class="num">$25.00 CAD</td>' in fallback
    # The CSP forbids inline scripts and styles: base.html's own scripts are files (src=), the chart uses neither.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and 'style="' not in html


def test_an_empty_chart_says_so() -> None:
    """A partner without earnings in the last 12 months sees a line saying so, not only an empty frame."""
    partner = make_partner()
    empty = page_of(partner)
    assert "No commission in the last 12 months yet." in empty
    customer = customer_of(partner, "first@example.com")
    pay(customer, 1_999, at("2026-06-01"))
    assert "No commission in the last 12 months yet." not in page_of(partner)


def test_query_count_does_not_grow_with_rows() -> None:
    small, large = make_partner(), make_partner()
    make_earnings(small, 3)
    make_earnings(large, 30)
    for partner in (small, large):
        make_app(partner)
        link = ensure_default_link(partner=partner)
        record_click(link=link)

    def queries(partner: Partner, path: str) -> int:
        client = browser_for(partner.user)
        client.get(path)  # warm the session
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
            assert response.status_code == 200
            response.getvalue()  # a CSV reads its rows while it is sent
        return len(captured)

    for path in (
        "/partners/commissions/",
        "/partners/commissions/?status=eligible&sort=-amount&customer=cu%2A%2A%2A%40example.com",
        "/partners/commissions/earnings.csv",
        "/partners/",
    ):
        assert queries(small, path) == queries(large, path), path


@pytest.mark.parametrize("status", [None, PartnerStatus.PENDING, PartnerStatus.REJECTED, PartnerStatus.SUSPENDED])
def test_only_approved_partners(status: str | None) -> None:
    user = make_user()
    if status is not None:
        partner = make_partner(user=user, approved=status == PartnerStatus.SUSPENDED)
        Partner.objects.filter(pk=partner.pk).update(status=status)
    client = browser_for(user)
    for path in ("/partners/commissions/", "/partners/commissions/earnings.csv"):
        assert client.get(path).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in() -> None:
    for path in ("/partners/commissions/", "/partners/commissions/earnings.csv"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login?next=")


def test_overview_shows_the_balance(ledger: dict[str, Any]) -> None:
    html = browser_for(ledger["partner"].user).get("/partners/").content.decode()
    assert "Balance" in html
    for text in ("$10.00 CAD", "$45.00 CAD", "$50.00 CAD", "$105.00 CAD"):
        assert text in html


@pytest.mark.parametrize("value", ["", "usr_2", "an***@example.com", "missing", '"><script>x</script>'])
def test_many_options_select_renders_what_djangos_select_renders(value: str) -> None:
    from django.test.html import parse_html

    from apertur.commissions.forms import ManyOptionsSelect

    choices = [("", "All customers"), ("usr_1", "an***@example.com"), ("usr_2", 'b<"&>***@x.example')]
    choices.append(("an***@example.com", "an***@example.com"))
    choices.append(('"><script>x</script>', "hostile value"))
    attrs = {"id": "id_customer"}
    ours = ManyOptionsSelect(choices=choices).render("customer", value, attrs=attrs)
    django_s = forms.Select(choices=choices).render("customer", value, attrs=attrs)
    assert parse_html(ours) == parse_html(django_s)
    assert "&lt;&quot;&amp;&gt;" in ours  # labels are escaped
    assert "<script>" not in ours and 'value="&quot;&gt;&lt;script&gt;' in ours  # and values


def test_the_csv_is_sent_while_its_rows_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large partner's CSV has a row per commission entry: it is streamed in chunks as the entries are read,
    never held whole in memory."""
    partner = make_partner()
    make_earnings(partner, 5)
    monkeypatch.setattr(spreadsheet, "CHUNK_CHARS", 1)  # a chunk per row
    response = browser_for(partner.user).get("/partners/commissions/earnings.csv")
    assert response.status_code == 200 and response.streaming
    with CaptureQueriesContext(connection) as reading:
        chunks = list(response.streaming_content)
    assert len(chunks) == 1 + 5  # the header, then each entry
    assert any("commissions_commissionentry" in q["sql"] for q in reading.captured_queries)
