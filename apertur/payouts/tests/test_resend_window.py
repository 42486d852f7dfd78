"""PayPal deduplicates a ``sender_batch_id`` for 30 days only: a batch whose first attempt is older than
``services.RESEND_WINDOW`` is never sent again; its payouts go to a person (``needs_review``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.template.loader import render_to_string

from apertur.accounts.models import User
from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import balance
from apertur.core.models import AuditEvent
from apertur.integrations.paypal.client import PayoutItem
from apertur.integrations.paypal.emulator import Running
from apertur.partners.models import Partner
from apertur.payouts import schedule, selectors, services
from apertur.payouts.errors import PayoutNotInReview, ReviewBatchNotFound
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus
from apertur.payouts.tests.helpers import at, batches_created, client_for, make_world, pay
from apertur.testing import make_staff

pytestmark = pytest.mark.django_db
T0 = services.run_at("2026-04")


def tick(emu: Running, when: dt.datetime) -> schedule.TickResult:
    with time_machine.travel(when, tick=False), client_for(emu, timeout=0.3) as client:
        return schedule.tick(client=client)


def timed_out_then_held(emu: Running) -> tuple[Partner, Payout]:
    """The April run's create times out after PayPal committed the batch; staff then hold the partner."""
    partner, customer = make_world()
    pay(customer, 1, 99_999, at(2026, 3, 1))
    assert emu.emulator.configure({"timeout_next_n": 1, "timeout_seconds": 0.6, "timeout_after_commit": True})[0] == 200
    tick(emu, T0)
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.CREATED and payout.first_sent_at == T0
    assert batches_created(emu) == 1  # PayPal has it; we do not know
    with time_machine.travel(T0, tick=False):
        services.hold_partner(partner=partner, actor=None, reason="fraud review")
    return partner, payout


def test_a_batch_first_sent_over_25_days_ago_is_never_sent_again_and_staff_review_it(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    partner, payout = timed_out_then_held(emu)
    for days in (1, 10, 25):  # held: the batch waits, still within PayPal's memory
        tick(emu, T0 + dt.timedelta(days=days))
        assert Payout.objects.get().status == PayoutStatus.CREATED
    with time_machine.travel(T0 + dt.timedelta(days=35), tick=False):
        services.release_partner(partner=Partner.objects.get(pk=partner.pk), actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        result = tick(emu, T0 + dt.timedelta(days=35))
    # PayPal forgot the id after 30 days: a re-send would have been a second batch, paid twice.
    assert batches_created(emu) == 1
    assert emu.emulator.counters["create_requests"] == 1
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.NEEDS_REVIEW
    assert payout.detail.startswith(f"needs_review: {payout.sender_batch_id} first sent 2026-04-15")
    assert "PayPal may have paid it" in payout.detail
    assert result.runs["2026-04"]["reasons"] == {"needs_review": 1}
    assert AuditEvent.objects.filter(action="payout.needs_review").count() == 1
    (alert,) = [m for m in mailoutbox if m.to == [settings.STAFF_NOTIFY_EMAIL]]
    assert payout.sender_item_id in alert.body and "needs review" in alert.subject
    # The money stays out of later runs until staff resolve it, and the period is finished.
    assert PayoutEntry.objects.filter(payout=payout, released_at__isnull=True).count() == 1
    assert "2026-04" not in schedule.due_periods(T0 + dt.timedelta(days=36))
    tick(emu, services.run_at("2026-05"))
    assert Payout.objects.count() == 1 and batches_created(emu) == 1
    assert not CommissionEntry.objects.paid().exists()
    outlook = selectors.payout_status(partner=Partner.objects.get(pk=partner.pk), at=T0 + dt.timedelta(days=36))
    assert outlook.code == "delayed_on_our_side"


def test_an_unsent_created_payout_is_sent_however_old(emu: Running) -> None:
    """No attempt yet (a crash before the first call): PayPal never saw the id, sending it is safe."""
    partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    with time_machine.travel(T0, tick=False):
        services.hold_partner(partner=partner, actor=None, reason="check")
    tick(emu, T0)
    assert Payout.objects.count() == 0  # held before anything was saved
    with time_machine.travel(T0 + dt.timedelta(days=40), tick=False):
        services.release_partner(partner=Partner.objects.get(pk=partner.pk), actor=None)
    tick(emu, T0 + dt.timedelta(days=40))
    assert Payout.objects.get().sent_at is not None and batches_created(emu) == 1


def released_into_review(emu: Running) -> tuple[Payout, dt.datetime]:
    """:func:`timed_out_then_held`, released 31 days after the run: the next pass finds the batch past the resend
    window. The payout as it is then, and that moment."""
    partner, payout = timed_out_then_held(emu)
    later = T0 + dt.timedelta(days=31)
    with time_machine.travel(later, tick=False):
        services.release_partner(partner=Partner.objects.get(pk=partner.pk), actor=None)
    tick(emu, later)
    payout.refresh_from_db()
    return payout, later


def test_staff_resolve_a_review_found_at_paypal(emu: Running) -> None:
    payout, later = released_into_review(emu)
    assert payout.status == PayoutStatus.NEEDS_REVIEW
    staff = make_staff()
    found = emu.emulator.state()["batches"][0]["batch_header"]["payout_batch_id"]
    with pytest.raises(PayoutNotInReview):
        services.resolve_review(payout=payout, actor=staff, paid=True)  # the PayPal batch id is required
    with time_machine.travel(later, tick=False):
        (done,) = services.resolve_review(
            payout=payout, actor=staff, paid=True, paypal_batch_id=found, client=client_for(emu)
        )
    assert (done.status, done.paypal_batch_id) == (PayoutStatus.SENT, found)
    emu.emulator.advance({})
    tick(emu, later + dt.timedelta(hours=1))  # reconciliation reads the item as for any batch
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID and batches_created(emu) == 1
    assert AuditEvent.objects.filter(action="payout.review_resolved", actor=staff).exists()


def test_a_batch_id_that_does_not_hold_the_payout_is_refused_and_answers_act_once(emu: Running) -> None:
    """A mistyped or wrong PayPal batch id would mark money paid that PayPal never sent: it is checked first. And
    a second, stale answer (another staff member at the same time) changes nothing."""
    payout, later = released_into_review(emu)
    stale = Payout.objects.get(pk=payout.pk)
    assert payout.status == PayoutStatus.NEEDS_REVIEW
    staff, client = make_staff(), client_for(emu)
    with pytest.raises(ReviewBatchNotFound), time_machine.travel(later, tick=False):
        services.resolve_review(payout=payout, actor=staff, paid=True, paypal_batch_id="NOSUCHBATCH01", client=client)
    # Another partner's batch at PayPal exists but does not hold this payout.
    other = emu.emulator.state()["batches"][0]["batch_header"]
    theirs = client.create_payout(
        sender_batch_id="aptr-someone-else-1",
        email_subject="x",
        items=[PayoutItem(receiver="else@example.com", amount_cents=100, sender_item_id="aptr-someone-else-1-1")],
    )
    with pytest.raises(ReviewBatchNotFound), time_machine.travel(later, tick=False):
        services.resolve_review(
            payout=payout, actor=staff, paid=True, paypal_batch_id=theirs.payout_batch_id, client=client
        )
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.NEEDS_REVIEW and payout.sent_at is None
    with time_machine.travel(later, tick=False):
        services.resolve_review(
            payout=payout, actor=staff, paid=True, paypal_batch_id=other["payout_batch_id"], client=client
        )
        with pytest.raises(PayoutNotInReview):
            services.resolve_review(payout=stale, actor=staff, paid=False)  # read before the first answer
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SENT
    assert not PayoutEntry.objects.filter(payout=payout, released_at__isnull=False).exists()


def test_staff_resolve_a_review_not_at_paypal_gives_the_money_back(emu: Running) -> None:
    _partner, customer = make_world()
    pay(customer, 1, 60_000, at(2026, 3, 1))
    # PayPal answers 503 for a month: the id was tried, but nothing was created.
    assert emu.emulator.configure({"fail_next_n_with_5xx": 1000, "fail_status": 503})[0] == 200
    tick(emu, T0)
    tick(emu, T0 + dt.timedelta(days=26))
    payout = Payout.objects.get()
    assert payout.status == PayoutStatus.NEEDS_REVIEW and batches_created(emu) == 0
    with pytest.raises(PayoutNotInReview):
        services.resolve_review(payout=Payout(status=PayoutStatus.SENT, sender_item_id="x"), actor=None, paid=False)
    (done,) = services.resolve_review(payout=payout, actor=make_staff(), paid=False)
    assert done.status == PayoutStatus.FAILED and done.money_back
    assert not PayoutEntry.objects.filter(payout=payout, released_at__isnull=True).exists()
    # Back in the balance: the next run pays it, with a new id.
    assert emu.emulator.configure({"fail_next_n_with_5xx": 0})[0] == 200
    tick(emu, services.run_at("2026-05"))
    may = Payout.objects.get(period="2026-05")
    assert may.sent_at is not None and may.amount_cents == payout.amount_cents


def test_the_outlook_leaves_money_in_review_out_of_the_estimate_as_the_run_does(emu: Running) -> None:
    """The ledger counts a payout in review as unpaid, but no run pays its entries again: the estimate the
    partner sees must be what the next run pays, with the money in review shown apart."""
    payout, _later = released_into_review(emu)
    partner = payout.partner
    assert payout.status == PayoutStatus.NEEDS_REVIEW and payout.amount_cents == 10_000
    pay(User.objects.get(email="customer@example.com"), 2, 70_000, at(2026, 4, 1))  # make_world's customer
    before_run = services.run_at("2026-06") - dt.timedelta(hours=1)  # released into review after the May run
    outlook = selectors.payout_status(partner=Partner.objects.get(pk=partner.pk), at=before_run)
    assert (outlook.code, outlook.in_review_cents, outlook.estimate_cents) == ("delayed_on_our_side", 10_000, 7_000)
    assert outlook.carried_cents == 7_000  # the April payout's 10,000 is in review, not carried
    # … and `apertur partner balance` / the API's balance say the same as the Payouts card.
    assert balance(partner=partner, at=before_run).carried_cents == 7_000
    page = render_to_string("payouts/_status.html", {"outlook": outlook, "partner": partner})
    assert "In review: $100.00" in page and "$70.00" in page
    tick(emu, services.run_at("2026-06"))
    june = Payout.objects.get(period="2026-06")
    assert june.amount_cents == outlook.estimate_cents  # the estimate was the run's amount
    assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.NEEDS_REVIEW


def test_staff_resolve_a_review_in_the_admin(emu: Running, settings: Any) -> None:
    """For staff who only have the web: the payout's admin page links to its review, which checks the batch id
    with PayPal as the CLI does; a wrong id changes nothing, and staff who may only view get no such page."""
    from django.contrib.auth.models import Permission
    from django.test import Client

    settings.PAYPAL_API_BASE = emu.base_url
    settings.PAYPAL_CLIENT_ID, settings.PAYPAL_CLIENT_SECRET = emu.client_id, emu.client_secret
    payout, later = released_into_review(emu)
    found = emu.emulator.state()["batches"][0]["batch_header"]["payout_batch_id"]
    url = f"/admin/payouts/payout/{payout.pk}/resolve-review/"
    viewer = make_staff()
    viewer.is_superuser = False
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_payout"))
    browser = Client()
    browser.force_login(viewer)
    assert browser.get(url).status_code == 404
    looking = browser.get(f"/admin/payouts/payout/{payout.pk}/change/")
    # Not offered a page it cannot open; the partner's hold page link stays.
    assert looking.status_code == 200 and url.encode() not in looking.content
    assert b"Hold or release payouts" in looking.content
    staff = make_staff()
    browser.force_login(staff)
    assert url.encode() in browser.get(f"/admin/payouts/payout/{payout.pk}/change/").content
    page = browser.get(url)
    assert page.status_code == 200 and payout.sender_item_id.encode() in page.content
    with time_machine.travel(later, tick=False):
        wrong = browser.post(url, {"answer": "paid", "paypal_batch_id": "NOSUCHBATCH01"})
        assert wrong.status_code == 400 and b"nothing changed" in wrong.content
        assert Payout.objects.get(pk=payout.pk).status == PayoutStatus.NEEDS_REVIEW
        assert browser.post(url, {"answer": ""}).status_code == 400
        done = browser.post(url, {"answer": "paid", "paypal_batch_id": found})
    assert done.status_code == 302
    payout.refresh_from_db()
    assert (payout.status, payout.paypal_batch_id) == (PayoutStatus.SENT, found)
    assert AuditEvent.objects.filter(action="payout.review_resolved", actor=staff).exists()
    again = browser.post(url, {"answer": "not_paid"})  # a stale second answer: refused, nothing released
    assert again.status_code == 400 and b"not in review" in again.content
    assert not PayoutEntry.objects.filter(payout=payout, released_at__isnull=False).exists()


def test_the_commissions_dashboard_estimate_leaves_money_in_review_out_as_the_run_does(emu: Running) -> None:
    """The commissions dashboard's "next payout" estimate is the same figure as the payouts page's: what the next
    run pays. The run never takes the entries of a payout in review again, so neither does the estimate."""
    from django.test import Client

    from apertur.commissions import selectors as commission_selectors

    payout, _later = released_into_review(emu)
    partner = Partner.objects.get(pk=payout.partner_id)
    pay(User.objects.get(email="customer@example.com"), 2, 70_000, at(2026, 4, 1))
    before_run = services.run_at("2026-06") - dt.timedelta(hours=1)
    estimate = commission_selectors.next_payout(partner=partner, at=before_run)
    assert estimate.eligible_cents == selectors.payout_status(partner=partner, at=before_run).estimate_cents == 7_000
    browser = Client()
    browser.force_login(partner.user)
    with time_machine.travel(before_run, tick=False):
        page = browser.get("/partners/commissions/").content.decode()
    assert "Estimated amount: <strong>$70.00 CAD</strong>" in page
    tick(emu, services.run_at("2026-06"))
    assert Payout.objects.get(period="2026-06").amount_cents == estimate.eligible_cents


def test_the_estimate_leaves_out_a_payout_saved_but_not_yet_sent(emu: Running) -> None:
    """PayPal unreachable at the April run: the payout stays ``created`` and is sent again with its own id; the May
    run will not pay its entries, so the May estimate (dashboard and payouts page alike) leaves them out."""
    from apertur.commissions import selectors as commission_selectors

    partner, customer = make_world()
    pay(customer, 1, 99_999, at(2026, 3, 1))
    pay(customer, 2, 70_000, at(2026, 4, 1))
    assert emu.emulator.configure({"fail_next_n_with_5xx": 10})[0] == 200
    tick(emu, T0)
    assert Payout.objects.get().status == PayoutStatus.CREATED
    later = T0 + dt.timedelta(days=10)
    partner = Partner.objects.get(pk=partner.pk)
    assert commission_selectors.next_payout(partner=partner, at=later).eligible_cents == 7_000
    outlook = selectors.payout_status(partner=partner, at=later)
    # The April payout's 10,000 is being sent, not carried: "carried (included above)" is part of the estimate.
    assert (outlook.estimate_cents, outlook.carried_cents) == (7_000, 0)
