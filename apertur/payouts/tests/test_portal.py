"""The partner portal's payouts: history, one payout with its entries, the statement CSV, why the next run
may not pay, the emails on sent/paid/returned, privacy between partners, and a constant number of queries."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apertur.accounts.models import User
from apertur.commissions import services as commission_services
from apertur.commissions.models import CommissionEntry
from apertur.commissions.tests.paying import runs_made
from apertur.core import clock, spreadsheet
from apertur.core.errors import NotFound
from apertur.integrations.paypal.client import PayPalClient
from apertur.integrations.paypal.emulator import Running
from apertur.partners.models import Partner
from apertur.payouts import selectors, services
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus
from apertur.projects.models import Payment, Refund
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db

TORONTO = clock.BUSINESS_TZ
NOW = dt.datetime(2026, 6, 25, 12, 0, tzinfo=TORONTO)  # after the June run; the next one is 2026-07-15
PAYPAL = "partner-paypal@example.com"
_seq = count(1)


def toronto(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=TORONTO)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def verified(partner: Partner, email: str = PAYPAL) -> Partner:
    partner.paypal_email = email
    partner.paypal_verified_at = toronto("2026-01-02")
    partner.save(update_fields=["paypal_email", "paypal_verified_at"])
    return partner


def customer_of(partner: Partner, email: str, project: str = "Studio") -> User:
    user = make_user(email)
    create_project(owner=user, name=project)
    Attribution.objects.create(
        customer=user, partner=partner, source=AttributionSource.REFERRAL, at=toronto("2026-01-01")
    )
    return user


def pay(customer: User, cad_cents: int, paid_at: dt.datetime) -> CommissionEntry:
    payment = Payment.objects.create(
        project=customer.projects.get(),
        customer=customer,
        external_id=f"in_portal_{next(_seq)}",
        amount_cents=cad_cents,
        amount_cad_cents=cad_cents,
        paid_at=paid_at,
    )
    entry = commission_services.on_payment(payment=payment)
    assert entry is not None
    return entry


def refund(entry: CommissionEntry, cad_cents: int, created_at: dt.datetime) -> CommissionEntry:
    made = Refund.objects.create(
        payment=entry.payment,
        external_id=f"re_portal_{next(_seq)}",
        amount_cents=cad_cents,
        amount_cad_cents=cad_cents,
        created_at=created_at,
    )
    written = commission_services.on_refund(refund=made)
    assert written is not None
    return written


def payout_of(
    partner: Partner,
    period: str,
    entries: list[CommissionEntry],
    *,
    status: str = PayoutStatus.PAID,
    sent_at: dt.datetime | None = None,
    paid_at: dt.datetime | None = None,
    returned_at: dt.datetime | None = None,
) -> Payout:
    """A payout row as the run and reconciliation leave it (the run itself is exercised in test_run and in
    the email tests below)."""
    payout = Payout.objects.create(
        partner=partner,
        period=period,
        amount_cents=sum(e.amount_cents for e in entries),
        status=status,
        sender_batch_id=services.sender_batch_id_for(partner, period),
        sent_at=sent_at or services.run_at(period),
        paid_at=paid_at,
        returned_at=returned_at,
        created_at=services.run_at(period),
    )
    PayoutEntry.objects.bulk_create([PayoutEntry(payout=payout, entry=e, released_at=returned_at) for e in entries])
    return payout


def browser_for(partner: Partner) -> Client:
    client = Client()
    client.force_login(partner.user)
    return client


def parse_csv(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.getvalue().decode())))


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    # The monthly runs up to June's were made (a run due and not made would be the next one, late).
    runs_made(*(f"2026-{month:02d}" for month in range(1, 7)))
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def world() -> dict[str, Any]:
    """A verified partner with two payouts, and another partner with one.

    - 2026-05 (paid): Anna's 24,999 payment at 03:00 UTC on 2026-03-01, which is 2026-02-28 in Toronto
      (2,500), Bob's 50,000 payment (5,000) and its 1,000 refund inside the hold (reversal −100): 7,400.
    - 2026-06 (returned): Bob's 60,000 payment (6,000), released back to the balance on 2026-06-20.
    """
    partner = verified(make_partner())
    anna = customer_of(partner, "anna@example.com", '=HYPERLINK("http://evil.example")')
    bob = customer_of(partner, "bob@example.org", "Bob builds")
    e_anna = pay(anna, 24_999, utc("2026-03-01T03:00:00"))
    e_bob = pay(bob, 50_000, toronto("2026-03-10"))
    reversal = refund(e_bob, 1_000, toronto("2026-03-20"))
    e_bob2 = pay(bob, 60_000, toronto("2026-04-02"))
    may = payout_of(
        partner,
        "2026-05",
        [e_anna, e_bob, reversal],
        paid_at=utc("2026-05-16T03:00:00"),  # late evening of the 15th in Toronto
    )
    june = payout_of(
        partner,
        "2026-06",
        [e_bob2],
        status=PayoutStatus.RETURNED,
        returned_at=toronto("2026-06-20"),
    )
    other = verified(make_partner(), "other@example.net")
    stranger = customer_of(other, "zed.secret@elsewhere.example", "Other partner's project")
    theirs = payout_of(other, "2026-05", [pay(stranger, 99_999, toronto("2026-03-05"))])
    return {"partner": partner, "may": may, "june": june, "other": other, "theirs": theirs, "reversal": reversal}


# --- history --------------------------------------------------------------------------------------------


def test_history_lists_only_the_partners_payouts_newest_first(world: dict[str, Any]) -> None:
    partner, may, june, theirs = world["partner"], world["may"], world["june"], world["theirs"]
    page = selectors.payout_list(partner=partner)
    assert [row.id for row in page.rows] == [june.pk, may.pk]
    assert [(row.entry_count, row.amount_cents, row.status_label) for row in page.rows] == [
        (1, 6_000, "Returned, back in your balance"),
        (3, 7_400, "Paid"),
    ]
    assert page.count == 2

    html = browser_for(partner).get("/partners/payouts/").content.decode()
    assert html.index(june.sender_batch_id) < html.index(may.sender_batch_id)
    assert f'href="/partners/payouts/{may.pk}/"' in html
    assert "$74.00 CAD" in html and "$60.00 CAD" in html
    assert ">Paid</span>" in html and ">Returned, back in your balance</span>" in html
    assert "May 2026" in html and "June 2026" in html
    assert "2026-05-15" in html  # paid late on the 15th, Toronto time (the 16th in UTC)
    assert "Came back 2026-06-20" in html
    assert theirs.sender_batch_id not in html and "$999" not in html
    assert 'href="/partners/payouts/statement.csv"' in html
    # The PayPal email form keeps its fixed accessible names.
    assert '<label for="paypal_email">PayPal email</label>' in html
    assert ">Send confirmation link</button>" in html


def test_empty_history_says_so() -> None:
    partner = verified(make_partner())
    html = browser_for(partner).get("/partners/payouts/").content.decode()
    assert "No payouts yet." in html
    assert "statement.csv" not in html
    assert selectors.payout_list(partner=partner).rows == []


def test_history_pages_by_25(world: dict[str, Any]) -> None:
    partner = world["partner"]
    for year in range(2020, 2022):
        for month in range(1, 13):
            Payout.objects.create(
                partner=partner,
                period=f"{year}-{month:02d}",
                amount_cents=5_000,
                status=PayoutStatus.PAID,
                sender_batch_id=services.sender_batch_id_for(partner, f"{year}-{month:02d}"),
            )
    first = selectors.payout_list(partner=partner)
    second = selectors.payout_list(partner=partner, page="2")
    assert (len(first.rows), len(second.rows), first.num_pages, first.count) == (25, 1, 2, 26)
    assert second.rows[0].period == "2020-01"
    html = browser_for(partner).get("/partners/payouts/?page=2").content.decode()
    assert "Page 2 of 2" in html and 'href="?page=1"' in html
    assert selectors.payout_list(partner=partner, page="nonsense").number == 1


# --- one payout -------------------------------------------------------------------------------------------


def test_detail_shows_the_entries_and_totals(world: dict[str, Any]) -> None:
    partner, may = world["partner"], world["may"]
    lines = selectors.payout_entries(payout=selectors.payout_detail(partner=partner, payout_id=may.pk))
    assert [(line.date.isoformat(), line.customer, line.kind, line.amount_cents, line.released) for line in lines] == [
        ("2026-02-28", "an***@example.com", "earned", 2_500, False),
        ("2026-03-10", "b***@example.org", "earned", 5_000, False),
        ("2026-03-10", "b***@example.org", "reversal", -100, False),
    ]
    totals = selectors.payout_totals(payout=may)
    assert (totals.earned_cents, totals.deducted_cents, totals.net_cents, totals.released_cents) == (
        7_500,
        -100,
        7_400,
        0,
    )

    response = browser_for(partner).get(f"/partners/payouts/{may.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert may.sender_batch_id in html
    assert "an***@example.com" in html and "anna@example.com" not in html
    assert "Reversal" in html and "-$1.00 CAD" in html
    assert '<dd data-testid="total-net">$74.00 CAD</dd>' in html
    assert '<dd data-testid="total-deducted">-$1.00 CAD</dd>' in html
    assert f'href="/partners/payouts/{may.pk}/statement.csv"' in html


def test_detail_times_are_toronto_and_name_the_zone(world: dict[str, Any]) -> None:
    partner, may, june = world["partner"], world["may"], world["june"]
    html = browser_for(partner).get(f"/partners/payouts/{may.pk}/").content.decode()
    assert "<dt>Sent</dt><dd>2026-05-15 09:00 EDT</dd>" in html
    assert "<dt>Paid</dt><dd>2026-05-15 23:00 EDT</dd>" in html  # 03:00 UTC on the 16th
    html = browser_for(partner).get(f"/partners/payouts/{june.pk}/").content.decode()
    assert "<dt>Back in your balance</dt><dd>2026-06-20 12:00 EDT</dd>" in html


def test_released_entries_are_shown_as_such(world: dict[str, Any]) -> None:
    partner, june = world["partner"], world["june"]
    html = browser_for(partner).get(f"/partners/payouts/{june.pk}/").content.decode()
    assert "Released 2026-06-20" in html
    assert '<dd data-testid="total-released">$60.00 CAD</dd>' in html
    assert '<dd data-testid="total-net">$0.00 CAD</dd>' in html
    assert "back in your Apertur balance" in html


def test_a_large_payout_is_shown_a_page_at_a_time_with_totals_over_all_of_it(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    partner, may = world["partner"], world["may"]
    monkeypatch.setattr(selectors, "ENTRY_PAGE_SIZE", 2)  # three entries: two pages
    client = browser_for(partner)
    first = client.get(f"/partners/payouts/{may.pk}/").content.decode()
    second = client.get(f"/partners/payouts/{may.pk}/?page=2").content.decode()
    assert "Page 1 of 2 (3 commissions; the CSV has them all)" in first and 'href="?page=2"' in first
    assert "Page 2 of 2" in second and 'rel="prev"' in second
    assert "2026-02-28" in first and "2026-02-28" not in second  # oldest payment first, each line once
    assert first.count("<tr") + second.count("<tr") == 3 + 2  # the lines, plus one header row per page
    for html in (first, second):  # the totals cover the whole payout on every page
        assert '<dd data-testid="total-net">$74.00 CAD</dd>' in html
        assert '<dd data-testid="total-deducted">-$1.00 CAD</dd>' in html
    lines = selectors.payout_entries(payout=may)
    pages = [selectors.payout_entry_page(payout=may, page=n).rows for n in (1, 2)]
    assert pages[0] + pages[1] == lines


def test_a_payout_row_pages_its_entries_without_counting_them(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    partner, may = world["partner"], world["may"]
    monkeypatch.setattr(selectors, "ENTRY_PAGE_SIZE", 2)
    row = selectors.payout_detail(partner=partner, payout_id=may.pk)
    for n in (1, 2, 99):
        with CaptureQueriesContext(connection) as by_model:
            counted = selectors.payout_entry_page(payout=may, page=n)
        with CaptureQueriesContext(connection) as by_row:
            known = selectors.payout_entry_page(payout=row, page=n)
        assert known == counted and (known.count, known.num_pages) == (3, 2)
        assert len(by_row) == len(by_model) - 1  # the row's entry_count numbers the pages
        assert not any("COUNT(" in q["sql"] for q in by_row.captured_queries)


def test_another_partners_payout_is_not_found(world: dict[str, Any]) -> None:
    partner, theirs = world["partner"], world["theirs"]
    client = browser_for(partner)
    missing = Payout.objects.order_by("-pk").first().pk + 1000  # type: ignore[union-attr]
    for pk in (theirs.pk, missing):
        for path in (f"/partners/payouts/{pk}/", f"/partners/payouts/{pk}/statement.csv"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert theirs.sender_batch_id.encode() not in response.content
    with pytest.raises(NotFound):
        selectors.payout_detail(partner=partner, payout_id=theirs.pk)
    # and their owner does see it
    assert browser_for(world["other"]).get(f"/partners/payouts/{theirs.pk}/").status_code == 200


def test_pages_need_an_approved_partner(world: dict[str, Any]) -> None:
    pending = make_partner(approved=False)
    client = browser_for(pending)
    for path in (
        "/partners/payouts/statement.csv",
        f"/partners/payouts/{world['may'].pk}/",
        f"/partners/payouts/{world['may'].pk}/statement.csv",
    ):
        assert client.get(path).status_code == 403, path
    assert Client().get("/partners/payouts/statement.csv").status_code == 302  # to the login page


# --- the statement CSV --------------------------------------------------------------------------------------


def test_statement_csv_lists_every_payout_and_entry(world: dict[str, Any]) -> None:
    partner, may, june = world["partner"], world["may"], world["june"]
    response = browser_for(partner).get("/partners/payouts/statement.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="apertur-payouts-2026-06-25.csv"'
    m, j = may.sender_batch_id, june.sender_batch_id
    assert parse_csv(response) == [
        [
            "payout_reference",
            "period",
            "payout_status",
            "payout_amount_cad",
            "sent_date",
            "paid_date",
            "returned_date",
            "payment_date",
            "customer",
            "project",
            "kind",
            "amount_cad",
            "entry_status",
        ],
        [j, "2026-06", "returned", "60.00", "2026-06-15", "", "2026-06-20", "2026-04-02", "b***@example.org",
         "Bob builds", "earned", "60.00", "released"],
        [m, "2026-05", "paid", "74.00", "2026-05-15", "2026-05-15", "", "2026-02-28", "an***@example.com",
         "'=HYPERLINK(\"http://evil.example\")", "earned", "25.00", "included"],
        [m, "2026-05", "paid", "74.00", "2026-05-15", "2026-05-15", "", "2026-03-10", "b***@example.org",
         "Bob builds", "earned", "50.00", "included"],
        [m, "2026-05", "paid", "74.00", "2026-05-15", "2026-05-15", "", "2026-03-10", "b***@example.org",
         "Bob builds", "reversal", "-1.00", "included"],
    ]  # fmt: skip


def test_one_payouts_statement(world: dict[str, Any]) -> None:
    partner, may = world["partner"], world["may"]
    response = browser_for(partner).get(f"/partners/payouts/{may.pk}/statement.csv")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="apertur-payout-{may.sender_batch_id}.csv"'
    rows = parse_csv(response)
    assert len(rows) == 4 and {row[0] for row in rows[1:]} == {may.sender_batch_id}
    assert [row[-3:] for row in rows[1:]] == [
        ["earned", "25.00", "included"],
        ["earned", "50.00", "included"],
        ["reversal", "-1.00", "included"],
    ]


def test_statement_of_a_partner_without_payouts_is_the_header_only() -> None:
    partner = verified(make_partner())
    rows = parse_csv(browser_for(partner).get("/partners/payouts/statement.csv"))
    assert len(rows) == 1 and rows[0][0] == "payout_reference"


# --- why the next payout may not happen -----------------------------------------------------------------------


def outlook_html(partner: Partner) -> str:
    html = browser_for(partner).get("/partners/payouts/").content.decode()
    start = html.index('data-testid="payout-outlook"')
    return html[start : html.index("</section>", start)]


def eligible(partner: Partner, cad_cents: int) -> None:
    """A payment whose commission (10 %) is past its hold by the next run and paid by it."""
    pay(customer_of(partner, f"c{next(_seq)}@example.com"), cad_cents, toronto("2026-05-01"))


def test_status_staff_hold_shows_the_reason() -> None:
    partner = verified(make_partner())
    eligible(partner, 90_000)
    with time_machine.travel(toronto("2026-06-21", 10), tick=False):
        services.hold_partner(partner=partner, actor=None, reason="We are checking your tax details.")
    partner.refresh_from_db()
    outlook = selectors.payout_status(partner=partner)
    assert (outlook.code, outlook.hold_reason, outlook.estimate_cents) == (
        "payouts_held",
        "We are checking your tax details.",
        9_000,
    )
    assert not outlook.will_pay
    html = outlook_html(partner)
    assert "Payouts are on hold" in html and ">On hold</span>" in html
    assert "We are checking your tax details." in html
    assert "on 21 June 2026" in html


def test_status_unverified_email_says_so() -> None:
    partner = make_partner()
    partner.paypal_pending_email = "new@pay.example"
    partner.save(update_fields=["paypal_pending_email"])
    eligible(partner, 90_000)
    outlook = selectors.payout_status(partner=partner)
    assert (outlook.code, outlook.pending_email, outlook.estimate_cents) == (
        "no_verified_paypal_email",
        "new@pay.example",
        9_000,
    )
    html = outlook_html(partner)
    assert "Payouts wait for a verified PayPal email" in html
    assert "Open the confirmation link we sent to <strong>new@pay.example</strong>" in html
    assert "$90.00 CAD will be eligible" in html


def test_status_unverified_email_with_nothing_eligible_yet_does_not_announce_zero_dollars() -> None:
    html = outlook_html(make_partner())
    assert "Payouts wait for a verified PayPal email" in html
    assert "$0.00 CAD will be eligible" not in html and "nothing is lost: what you earn waits for you." in html


def test_status_under_the_minimum_is_carried() -> None:
    partner = verified(make_partner())
    pay(customer_of(partner, "small@example.com"), 20_000, toronto("2026-04-01"))  # 2,000, left by the June run
    outlook = selectors.payout_status(partner=partner)
    assert (outlook.code, outlook.estimate_cents, outlook.carried_cents) == ("under_minimum", 2_000, 2_000)
    html = outlook_html(partner)
    assert "Under the minimum: carried to a later run" in html
    assert "under the $50.00 CAD minimum" in html
    assert "Carried from earlier runs: $20.00 CAD" in html


def test_status_explains_a_negative_balance_from_a_clawback_since_the_last_run() -> None:
    """Paid in June, refunded in full after the June run: the clawback is due at once, so the balance is
    negative before any run has carried it: the page says why."""
    partner = verified(make_partner())
    earned = pay(customer_of(partner, "refunded@example.com"), 30_000, toronto("2026-04-01"))
    payout_of(partner, "2026-06", [earned], paid_at=toronto("2026-06-15", 10))
    clawback = refund(earned, 30_000, toronto("2026-06-20"))
    assert clawback.kind == "clawback" and clawback.amount_cents == -3_000
    outlook = selectors.payout_status(partner=partner)
    assert (outlook.estimate_cents, outlook.carried_cents) == (-3_000, 0)
    html = outlook_html(partner)
    assert "Your balance is -$30.00 CAD: a commission was clawed back after it was paid" in html


def test_status_will_pay_with_date_and_estimate() -> None:
    partner = verified(make_partner())
    eligible(partner, 60_000)
    outlook = selectors.payout_status(partner=partner)
    assert outlook.code == "will_pay" and outlook.will_pay
    assert outlook.run_at == dt.datetime(2026, 7, 15, 9, tzinfo=TORONTO)
    assert outlook.estimate_cents == 6_000
    html = outlook_html(partner)
    assert "Wednesday 15 July 2026, 09:00" in html
    assert '<strong data-testid="payout-estimate">$60.00 CAD</strong>' in html
    assert PAYPAL in html


def test_status_order_follows_the_run_hold_before_email() -> None:
    partner = make_partner()  # no verified email and on hold: the hold is what staff must lift first
    services.hold_partner(partner=partner, actor=None, reason="Fraud review")
    partner.refresh_from_db()
    assert selectors.payout_status(partner=partner).code == "payouts_held"


# --- emails, sent by the services through the PayPal emulator --------------------------------------------------


def run_period(emu: Running, period: str, on_commit: Any) -> list[services.Decision]:
    with (
        time_machine.travel(services.run_at(period), tick=False),
        PayPalClient(emu.base_url, emu.client_id, emu.client_secret, timeout=1.0) as client,
        on_commit(execute=True),
    ):
        return services.run(period=period, dry_run=False, client=client)


def paid_partner(emu: Running, on_commit: Any) -> tuple[Partner, Payout]:
    partner = verified(make_partner())
    pay(customer_of(partner, "emailed@example.com"), 60_000, toronto("2026-03-01"))
    mail.outbox.clear()
    (decision,) = run_period(emu, "2026-04", on_commit)
    assert decision.reason == "paid"
    return partner, Payout.objects.get(partner=partner)


def test_sent_and_paid_emails(emu: Running, django_capture_on_commit_callbacks: Any) -> None:
    partner, payout = paid_partner(emu, django_capture_on_commit_callbacks)
    (sent,) = mail.outbox
    assert sent.to == [partner.user.email]
    assert sent.subject == "Your Apertur payout of $60.00 CAD is on its way"
    assert "Amount: $60.00 CAD" in sent.body
    assert f"To: {PAYPAL}" in sent.body
    assert f"Reference: {payout.sender_batch_id}" in sent.body
    assert f"http://localhost:8000/partners/payouts/{payout.pk}/" in sent.body

    with django_capture_on_commit_callbacks(execute=True):
        services.apply_item_status(payout_id=payout.pk, transaction_status="SUCCESS")
    paid = mail.outbox[-1]
    assert len(mail.outbox) == 2
    assert paid.subject == "Your Apertur payout of $60.00 CAD was paid"
    assert "PayPal confirmed your Apertur partner payout." in paid.body
    assert f"Reference: {payout.sender_batch_id}" in paid.body
    assert f"http://localhost:8000/partners/payouts/{payout.pk}/" in paid.body
    with django_capture_on_commit_callbacks(execute=True):  # a second notification of the same status
        services.apply_item_status(payout_id=payout.pk, transaction_status="SUCCESS")
    assert len(mail.outbox) == 2

    row = selectors.payout_list(partner=partner).rows[0]
    assert (row.status, row.status_label, row.entry_count) == (PayoutStatus.PAID, "Paid", 1)
    assert row.sent_at == services.run_at("2026-04")


def test_returned_email_and_the_portal_after_it(emu: Running, django_capture_on_commit_callbacks: Any) -> None:
    partner, payout = paid_partner(emu, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_item_status(payout_id=payout.pk, transaction_status="RETURNED")
    returned = mail.outbox[-1]
    assert len(mail.outbox) == 2
    assert returned.subject == "Your Apertur payout of $60.00 CAD came back"
    assert f"({payout.sender_batch_id}) did not reach you" in returned.body
    assert "returned (RETURNED)" in returned.body
    assert "The money is back in your Apertur balance" in returned.body
    assert f"PayPal address {PAYPAL}" in returned.body
    assert f"http://localhost:8000/partners/payouts/{payout.pk}/" in returned.body

    html = browser_for(partner).get(f"/partners/payouts/{payout.pk}/").content.decode()
    assert ">Returned, back in your balance</span>" in html
    assert "Released 2026-06-25" in html  # released now (the clock of the test)
    # The money is back: the next run's estimate includes it again.
    assert selectors.payout_status(partner=partner).estimate_cents == 6_000


def test_failed_item_email_says_failed(emu: Running, django_capture_on_commit_callbacks: Any) -> None:
    _, payout = paid_partner(emu, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_item_status(payout_id=payout.pk, transaction_status="FAILED")
    body = mail.outbox[-1].body
    assert "failed (FAILED)" in body
    assert "If it happens again, check the PayPal address" in body


# --- a constant number of queries ------------------------------------------------------------------------------


def grow(partner: Partner, payouts: int, entries_each: int) -> None:
    customer = customer_of(partner, f"many{next(_seq)}@example.com")
    for n in range(payouts):
        period = f"{2030 + n // 12}-{n % 12 + 1:02d}"  # any distinct periods: only the rows' number matters
        made = [pay(customer, 10_000, toronto("2026-02-01")) for _ in range(entries_each)]
        payout_of(partner, period, made)


def queries(client: Client, path: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path)
        response.getvalue()  # a CSV reads its rows while it is sent
    assert response.status_code == 200, path
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "path",
    ["/partners/payouts/", "/partners/payouts/statement.csv", "{payout}", "{payout}statement.csv"],
)
def test_query_count_does_not_grow_with_payouts_or_entries(path: str) -> None:
    small, large = verified(make_partner()), verified(make_partner())
    grow(small, 1, 1)
    grow(large, 30, 4)
    counts = []
    for partner in (small, large):
        payout = Payout.objects.filter(partner=partner).order_by("-period").first()
        assert payout is not None
        counts.append(queries(browser_for(partner), path.format(payout=f"/partners/payouts/{payout.pk}/")))
    assert counts[0] == counts[1], counts
    assert PayoutEntry.objects.filter(payout__partner=large).count() == 120


def test_the_statement_is_sent_while_its_entries_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large partner's statement has a row per commission entry of every payout: it is streamed in chunks,
    never held whole in memory."""
    partner = verified(make_partner())
    grow(partner, 2, 3)
    monkeypatch.setattr(spreadsheet, "CHUNK_CHARS", 1)  # a chunk per row
    response = browser_for(partner).get("/partners/payouts/statement.csv")
    assert response.status_code == 200 and response.streaming
    # The entries come from the database 500 at a time (selectors.statement): the text, a chunk at a time.
    assert len(list(response.streaming_content)) == 1 + 2 * 3  # the header, then each entry of each payout


def test_sent_and_paid_emails_name_the_run_as_the_payouts_page_does(
    emu: Running, django_capture_on_commit_callbacks: Any
) -> None:
    """The page a payout email links to calls it "Payout, April 2026", run on "Wednesday 15 April 2026": the
    emails say the same, not the internal period key "2026-04"."""
    partner, payout = paid_partner(emu, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.apply_item_status(payout_id=payout.pk, transaction_status="SUCCESS")
    browser = Client()
    browser.force_login(partner.user)
    page = browser.get(f"/partners/payouts/{payout.pk}/").content.decode()
    assert "Payout, April 2026" in page and "Wednesday 15 April 2026, 09:00 Toronto time" in page
    sent, paid = mail.outbox
    for message in (sent, paid):
        assert "For: the April 2026 monthly run (Wednesday 15 April 2026, 09:00 Toronto time)" in message.body
        assert "2026-04 " not in message.body
