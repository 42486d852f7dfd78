"""The staff side of payouts: the read-only admin, its retry action (through the PayPal emulator over
loopback, after a confirmation page), the finance CSV, and the partner payout hold on the review page."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apertur.accounts.models import User
from apertur.commissions import services as commission_services
from apertur.commissions.models import CommissionEntry
from apertur.core.models import AuditEvent
from apertur.core.money import decimal_string
from apertur.core.spreadsheet import cell
from apertur.integrations.paypal.client import PayPalClient
from apertur.integrations.paypal.emulator import Running
from apertur.integrations.stripe import events
from apertur.partners.models import Partner
from apertur.payouts import finance, reconcile, services
from apertur.payouts.admin import PayoutEntryInline
from apertur.payouts.models import Payout, PayoutEntry, PayoutRun, PayoutStatus
from apertur.projects.models import Payment
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_staff, make_user, paypal_emulator

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_secret"
UTC = dt.UTC
CHANGELIST = "/admin/payouts/payout/"


@pytest.fixture(autouse=True)
def _secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = SECRET


@pytest.fixture
def emu(settings: Any) -> Iterator[Running]:
    """The emulator, and the settings the admin's retry builds its PayPal client from."""
    with paypal_emulator(settings) as emulator:
        yield emulator


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(make_staff())
    return client


def at(y: int, m: int, d: int, h: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=UTC)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def world(n: int = 1, *, amount: int = 60_000) -> Partner:
    """An approved partner (PayPal ``paypal-n@example.com`` verified) whose referred customer paid ``amount``
    on 2026-03-01: a commission of amount/10 that the 2026-04 run pays."""
    partner = make_partner()
    partner.paypal_email = f"paypal-{n}@example.com"
    partner.paypal_verified_at = at(2026, 2, 1)
    partner.save()
    customer = make_user(f"customer-{n}@example.com")
    create_project(owner=customer, name="Weddings")
    Attribution.objects.create(
        customer=customer, partner=partner, source=AttributionSource.REFERRAL, at=at(2026, 2, 20)
    )
    when = at(2026, 3, 1)
    with time_machine.travel(when, tick=False):
        body = events.encode(
            events.invoice_paid(
                customer=f"cus_{n}",
                email=customer.email,
                amount=amount,
                at=when,
                invoice_id=f"in_{n}",
                charge_id=f"ch_{n}",
            )
        )
        response = Client().post(
            "/webhooks/stripe",
            body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=events.sign(body, SECRET),
        )
    assert response.status_code == 200, response.content
    return partner


def paypal(emu: Running) -> PayPalClient:
    return PayPalClient(emu.base_url, emu.client_id, emu.client_secret, timeout=2.0)


def do_run(emu: Running, period: str) -> list[services.Decision]:
    with time_machine.travel(services.run_at(period), tick=False), paypal(emu) as client:
        return services.run(period=period, dry_run=False, client=client)


def settle(emu: Running) -> None:
    """PayPal finishes every pending item (to its configured status) and we reconcile every payout."""
    assert emu.emulator.advance({})[0] == 200
    with paypal(emu) as client:
        for payout in Payout.objects.exclude(paypal_batch_id=""):
            reconcile.reconcile_payout(payout=payout, client=client)


def batches(emu: Running) -> list[str]:
    return [b["batch_header"]["sender_batch_header"]["sender_batch_id"] for b in emu.emulator.state()["batches"]]


def messages_of(response: HttpResponse) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]  # type: ignore[attr-defined]


def retry(client: Client, *payouts: Payout, confirmed: bool = True) -> HttpResponse:
    data: dict[str, Any] = {"action": "retry_payouts", "_selected_action": [p.pk for p in payouts]}
    if confirmed:
        data["post"] = "yes"  # the confirmation page's "Yes" button
    else:
        data["index"] = 0  # the changelist's action bar
    response: HttpResponse = client.post(CHANGELIST, data)
    return response


def failed_payout(emu: Running, n: int = 1) -> Payout:
    """A partner's 2026-04 payout whose PayPal item FAILED: the money is back in the balance."""
    partner = world(n)
    assert emu.emulator.configure({"item_status": {partner.paypal_email: "FAILED"}})[0] == 200
    assert do_run(emu, "2026-04")[-1].reason == "paid"
    settle(emu)
    payout = Payout.objects.get(partner=partner)
    assert (payout.status, payout.sender_batch_id) == (PayoutStatus.FAILED, f"aptr-{partner.pk}-2026-04-1")
    assert emu.emulator.configure({"item_status": {partner.paypal_email: None}})[0] == 200  # the next one succeeds
    return payout


# --- access ------------------------------------------------------------------------------------------


def test_non_staff_cannot_see_or_retry_payouts(emu: Running) -> None:
    payout = failed_payout(emu)
    anonymous = Client().get(CHANGELIST)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    customer = client_for(make_user())
    assert customer.get(CHANGELIST).status_code == 302
    response = retry(customer, payout)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert customer.get(f"/admin/payouts/payout/{payout.pk}/change/").status_code == 302

    # Staff without the payout permissions are staff, not finance: refused outright.
    assert client_for(make_user(is_staff=True)).get(CHANGELIST).status_code == 403

    payout.refresh_from_db()
    assert payout.sender_batch_id.endswith("-1") and payout.status == PayoutStatus.FAILED
    assert batches(emu) == [payout.sender_batch_id]


def test_money_records_are_read_only_in_the_admin(emu: Running, staff: Client) -> None:
    payout = failed_payout(emu)
    assert staff.get("/admin/payouts/payout/add/").status_code == 403
    assert staff.get(f"/admin/payouts/payout/{payout.pk}/delete/").status_code == 403
    page = staff.get(f"/admin/payouts/payout/{payout.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html and "$60.00 CAD" in html
    assert "Earned" in html  # the inline lists the commission entry the payout carried
    before = Payout.objects.values().get(pk=payout.pk)
    response = staff.post(f"/admin/payouts/payout/{payout.pk}/change/", {"status": "paid", "amount_cents": "1"})
    assert response.status_code == 403
    assert Payout.objects.values().get(pk=payout.pk) == before
    assert 'value="delete_selected"' not in staff.get(CHANGELIST).content.decode()


# --- the list ----------------------------------------------------------------------------------------


def test_list_shows_amounts_and_filters(emu: Running, staff: Client) -> None:
    failed = failed_payout(emu, 1)
    world(2, amount=80_000)
    do_run(emu, "2026-04")
    settle(emu)
    paid = Payout.objects.get(status=PayoutStatus.PAID)
    Partner.objects.filter(pk=paid.partner_id).update(company_name="Pixelhaus")

    everything = staff.get(CHANGELIST).content.decode()
    assert failed.sender_batch_id in everything and paid.sender_batch_id in everything
    assert "$60.00 CAD" in everything and "$80.00 CAD" in everything

    only_failed = staff.get(CHANGELIST, {"status__exact": "failed"}).content.decode()
    assert failed.sender_batch_id in only_failed and paid.sender_batch_id not in only_failed

    by_company = staff.get(CHANGELIST, {"q": "pixelhaus"}).content.decode()
    assert paid.sender_batch_id in by_company and failed.sender_batch_id not in by_company

    by_batch = staff.get(CHANGELIST, {"q": failed.sender_batch_id}).content.decode()
    assert failed.sender_batch_id in by_batch and paid.sender_batch_id not in by_batch

    paid.refresh_from_db()
    assert paid.paypal_item_id
    for q in (paid.sender_item_id, paid.paypal_item_id):  # the ids PayPal's dashboard and a partner quote
        by_item = staff.get(CHANGELIST, {"q": q}).content.decode()  # the search box echoes q: look at the rows
        assert f"{CHANGELIST}{paid.pk}/change/" in by_item and f"{CHANGELIST}{failed.pk}/change/" not in by_item

    assert failed.sender_batch_id not in staff.get(CHANGELIST, {"period": "2026-05"}).content.decode()
    assert failed.sender_batch_id in staff.get(CHANGELIST, {"period": "2026-04"}).content.decode()
    assert staff.get(CHANGELIST, {"currency": "CAD"}).status_code == 200


def test_runs_and_events_are_listed_with_their_filters(emu: Running, staff: Client) -> None:
    PayoutRun.objects.create(period="2026-04", finished_at=at(2026, 4, 15, 14))
    PayoutRun.objects.create(period="2026-05")
    finished = staff.get("/admin/payouts/payoutrun/", {"finished": "yes"}).content.decode()
    open_ = staff.get("/admin/payouts/payoutrun/", {"finished": "no"}).content.decode()
    assert "2026-04" in finished and "2026-05" not in finished
    assert "2026-05" in open_ and "2026-04" not in open_
    assert staff.get("/admin/payouts/paypalevent/", {"status__exact": "received"}).status_code == 200
    assert staff.get("/admin/payouts/payoutrun/add/").status_code == 403


# --- retry ---------------------------------------------------------------------------------------------


def test_retry_asks_first_then_sends_a_new_batch(emu: Running, staff: Client) -> None:
    payout = failed_payout(emu)
    partner = payout.partner

    confirm = retry(staff, payout, confirmed=False)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Yes, send the money again" in html and payout.sender_batch_id in html and "Will be sent again" in html
    assert batches(emu) == [payout.sender_batch_id]  # nothing sent by asking
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.FAILED

    response = retry(staff, payout)
    assert response.status_code == 302 and response["Location"] == CHANGELIST
    payout.refresh_from_db()
    new_id = f"aptr-{partner.pk}-2026-04-2"
    assert (payout.sender_batch_id, payout.batch_number, payout.status) == (new_id, 2, PayoutStatus.SENT)
    assert batches(emu) == [f"aptr-{partner.pk}-2026-04-1", new_id]
    sent = emu.emulator.state()["batches"][1]["items"][0]["payout_item"]
    assert sent["amount"] == {"value": "60.00", "currency": "CAD"} and sent["receiver"] == partner.paypal_email
    assert messages_of(response) == [f"aptr-{partner.pk}-2026-04-1: retried as {new_id}, $60.00 CAD sent."]
    audit = AuditEvent.objects.get(action="payout.retried")
    assert audit.actor is not None and audit.actor.is_staff and audit.data["sender_batch_id"] == new_id

    settle(emu)
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.PAID


def test_retry_refuses_a_paid_payout_and_a_held_partner_with_a_message_each(emu: Running, staff: Client) -> None:
    failed = failed_payout(emu, 1)
    world(2)
    do_run(emu, "2026-04")
    settle(emu)
    paid = Payout.objects.get(status=PayoutStatus.PAID)
    services.hold_partner(partner=failed.partner, actor=None, reason="Chargeback under review")

    confirm = retry(staff, failed, paid, confirmed=False).content.decode()
    assert "Will be refused: not failed or returned" in confirm
    assert "Will be refused: the partner's payouts are held" in confirm
    assert "0 of 2 selected payouts will be sent" in confirm

    response = retry(staff, failed, paid)
    said = messages_of(response)
    assert len(said) == 2
    assert said[0].startswith(f"{failed.sender_batch_id}: not retried (partner_not_payable)")
    assert "payouts held" in said[0]
    assert said[1].startswith(f"{paid.sender_batch_id}: not retried (payout_not_retryable)")
    assert "this one is paid" in said[1]
    assert len(batches(emu)) == 2  # the two first attempts, nothing more
    assert Payout.objects.get(pk=paid.pk).sender_batch_id.endswith("-1")
    assert Payout.objects.get(pk=failed.pk).status == PayoutStatus.FAILED


def test_a_retry_paypal_refuses_again_says_so(emu: Running, staff: Client) -> None:
    payout = failed_payout(emu)
    assert emu.emulator.configure({"fail_next_n_with_5xx": 10})[0] == 200
    response = retry(staff, payout)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.CREATED and payout.sender_batch_id.endswith("-2")
    [said] = messages_of(response)
    assert "PayPal did not answer" in said and "apertur payouts run --period 2026-04" in said


# --- CSV -----------------------------------------------------------------------------------------------


def test_csv_for_finance(emu: Running, staff: Client) -> None:
    failed = failed_payout(emu, 1)
    world(2, amount=80_005)  # a commission of 8,000.5 rounds half up to 8,001 cents
    do_run(emu, "2026-04")
    settle(emu)
    paid = Payout.objects.get(status=PayoutStatus.PAID)
    Partner.objects.filter(pk=failed.partner_id).update(company_name='=HYPERLINK("https://evil.example","x")')

    response = staff.post(CHANGELIST, {"action": "export_csv", "_selected_action": [failed.pk, paid.pk], "index": 0})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="apertur-payouts-')
    # "Select all" may take every payout of every month: sent while the payouts are read, not built whole first.
    assert response.streaming
    rows = list(csv.DictReader(io.StringIO(response.getvalue().decode())))
    assert (
        list(rows[0])
        == finance.CSV_HEADER
        == [
            "partner_id",
            "partner_email",
            "company",
            "paypal_email",
            "period",
            "amount",
            "currency",
            "status",
            "paypal_item_status",
            "sender_batch_id",
            "paypal_batch_id",
            "created_at",
            "sent_at",
            "paid_at",
            "returned_at",
            "sender_item_id",
            "paypal_item_id",
        ]
    )
    assert len(rows) == 2
    by_batch = {row["sender_batch_id"]: row for row in rows}
    bad, good = by_batch[failed.sender_batch_id], by_batch[paid.sender_batch_id]
    assert bad["company"] == '\'=HYPERLINK("https://evil.example","x")'
    assert (bad["amount"], bad["currency"], bad["status"], bad["paypal_item_status"]) == (
        "60.00",
        "CAD",
        "failed",
        "FAILED",
    )
    assert (bad["paypal_email"], bad["period"], bad["partner_id"]) == (
        "paypal-1@example.com",
        "2026-04",
        str(failed.partner_id),
    )
    assert bad["sent_at"] == "2026-04-15T09:00:00-04:00" and bad["paid_at"] == ""
    assert bad["returned_at"].endswith(("-04:00", "-05:00")) and bad["paypal_batch_id"] == failed.paypal_batch_id
    failed.refresh_from_db()
    paid.refresh_from_db()
    assert (bad["sender_item_id"], bad["paypal_item_id"]) == (failed.sender_item_id, failed.paypal_item_id)
    assert (good["sender_item_id"], good["paypal_item_id"]) == (paid.sender_item_id, paid.paypal_item_id)
    assert good["paypal_item_id"]  # PayPal's id of the item, once reconciled
    assert (good["amount"], good["status"], good["company"]) == ("80.01", "paid", "Snapflow Inc.")
    assert good["paid_at"] and good["returned_at"] == ""
    # The row says where the money went, not where the partner's payouts go today.
    sent_to = good["paypal_email"]
    Partner.objects.filter(pk=paid.partner_id).update(paypal_email="moved@example.com")
    again = staff.post(CHANGELIST, {"action": "export_csv", "_selected_action": [paid.pk], "index": 0})
    [row] = list(csv.DictReader(io.StringIO(again.getvalue().decode())))
    assert row["paypal_email"] == sent_to != "moved@example.com"


@pytest.mark.parametrize(
    ("text", "safe"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("Acme", "Acme")],
)
def test_csv_cells_never_start_a_formula(text: str, safe: str) -> None:
    assert cell(text) == safe


def test_decimal_amounts() -> None:
    assert [decimal_string(c) for c in (7_000, 5, 0, -250, 123_456_789)] == [
        "70.00",
        "0.05",
        "0.00",
        "-2.50",
        "1234567.89",
    ]


# --- partner payout hold ------------------------------------------------------------------------------


def test_hold_needs_a_reason_is_audited_blocks_the_run_and_release_restores_it(emu: Running, staff: Client) -> None:
    partner = world()
    detail = f"/partners/staff/{partner.pk}/"
    page = staff.get(detail).content.decode()
    assert "Not held" in page and "Hold payouts" in page and "Why hold payouts" in page

    missing = staff.post(f"{detail}hold", {"reason": "   "})
    assert missing.status_code == 400
    assert "Give a reason for the hold" in missing.content.decode()
    partner.refresh_from_db()
    assert partner.payouts_held_at is None
    assert not AuditEvent.objects.filter(action="partner.payouts_held").exists()

    # The first click only asks: the hold is made once confirmed (tests for every confirmed action: partners).
    asked = staff.post(f"{detail}hold", {"reason": "Identity check pending"})
    assert asked.status_code == 200 and "Hold payouts to Snapflow Inc.?" in asked.content.decode()
    partner.refresh_from_db()
    assert partner.payouts_held_at is None
    held = staff.post(f"{detail}hold", {"reason": "Identity check pending", "confirmed": "yes"})
    assert held.status_code == 302 and held["Location"] == detail
    partner.refresh_from_db()
    assert partner.payouts_held_at is not None and partner.payouts_hold_reason == "Identity check pending"
    audit = AuditEvent.objects.get(action="partner.payouts_held")
    assert (audit.object_id, audit.data) == (str(partner.pk), {"reason": "Identity check pending"})
    assert audit.actor is not None and audit.actor.is_staff
    page = staff.get(detail).content.decode()
    assert "Held" in page and "Identity check pending" in page and "Release payouts" in page

    [decision] = do_run(emu, "2026-04")
    assert (decision.reason, decision.carried_cents) == ("payouts_held", 6_000)
    assert Payout.objects.count() == 0 and batches(emu) == []

    released = staff.post(f"{detail}release")
    assert released.status_code == 302
    partner.refresh_from_db()
    assert partner.payouts_held_at is None and partner.payouts_hold_reason == ""
    assert AuditEvent.objects.get(action="partner.payouts_released").actor is not None

    [decision] = do_run(emu, "2026-05")
    assert (decision.reason, decision.amount_cents) == ("paid", 6_000)
    assert batches(emu) == [f"aptr-{partner.pk}-2026-05-1"]


def test_only_staff_hold_payouts() -> None:
    partner = make_partner()
    owner = client_for(partner.user)
    response = owner.post(f"/partners/staff/{partner.pk}/hold", {"reason": "I hold myself"})
    assert response.status_code == 403  # the site's 403 page (partners/tests/test_staff_access.py)
    signed_out = Client().post(f"/partners/staff/{partner.pk}/release")
    assert signed_out.status_code == 302 and signed_out["Location"].startswith("/login?next=")
    staff = client_for(make_staff())
    assert staff.get(f"/partners/staff/{partner.pk}/hold").status_code == 405  # POST only
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(make_staff())
    assert (
        csrf.post(f"/partners/staff/{partner.pk}/hold", {"reason": "no token", "confirmed": "yes"}).status_code == 403
    )
    partner.refresh_from_db()
    assert partner.payouts_held_at is None
    assert not AuditEvent.objects.filter(action__startswith="partner.payouts_").exists()


def test_the_admin_names_payouts_records_in_plain_english(emu: Running, staff: Client) -> None:
    """Django's automatic names read "Payout entrys" and "pay pal event"."""
    payout = failed_payout(emu)
    html = staff.get(f"/admin/payouts/payout/{payout.pk}/change/").content.decode()
    assert "Commission entries" in html and "entrys" not in html.lower()
    events = staff.get("/admin/payouts/paypalevent/").content.decode()
    assert "Select PayPal event to view" in events and "pay pal" not in events.lower()


def test_a_staff_retry_is_audited_with_the_staff_members_ip(emu: Running, staff: Client) -> None:
    """Sending money again is money-relevant: audited with actor and IP (ARCHITECTURE.md §4), as every staff change."""
    payout = failed_payout(emu)
    assert retry(staff, payout).status_code == 302
    event = AuditEvent.objects.get(action="payout.retried")
    assert (event.actor is not None and event.actor.is_staff, event.ip) == (True, "127.0.0.1")


# --- a large payout ----------------------------------------------------------------------------------


def test_a_payouts_page_lists_its_first_entries_and_says_how_many_there_are(
    staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large partner's payout holds thousands of entries: the page lists the first ``shown`` (a page of the
    partner's own view) instead of building a form for every one, and counts the rest, in a constant number of
    queries."""
    partner = world(1)
    customer = Attribution.objects.get(partner=partner).customer
    payment = Payment.objects.get(customer=customer)
    for n in range(4):
        extra = Payment.objects.create(
            project=payment.project,
            customer=customer,
            external_id=f"in_extra_{n}",
            amount_cents=60_000,
            amount_cad_cents=60_000,
            paid_at=at(2026, 3, 2 + n),
        )
        commission_services.on_payment(payment=extra)
    entries = list(CommissionEntry.objects.filter(partner=partner).order_by("available_at", "id"))
    assert len(entries) == 5
    payout = Payout.objects.create(
        partner=partner,
        period="2026-04",
        amount_cents=sum(e.amount_cents for e in entries),
        status=PayoutStatus.PAID,
        sender_batch_id=services.sender_batch_id_for(partner, "2026-04"),
    )
    url = f"/admin/payouts/payout/{payout.pk}/change/"

    def page(linked: int) -> tuple[str, int]:
        PayoutEntry.objects.filter(payout=payout).delete()
        PayoutEntry.objects.bulk_create([PayoutEntry(payout=payout, entry=e) for e in entries[:linked]])
        staff.get(url)
        with CaptureQueriesContext(connection) as ctx:
            response = staff.get(url)
        assert response.status_code == 200
        return response.content.decode(), len(ctx.captured_queries)

    monkeypatch.setattr(PayoutEntryInline, "shown", 3)
    html, few = page(2)
    assert html.count('<td class="field-kind">') == 2
    assert "2, all listed below" in html
    html, many = page(5)
    assert html.count('<td class="field-kind">') == 3
    assert "5; the first 3 by date available are listed below" in html
    assert f"{entries[2].pk} in {payout.pk}" in html and f"{entries[3].pk} in {payout.pk}" not in html
    assert many == few
