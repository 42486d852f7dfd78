"""Multi-item batches: the run pays a chunk of partners with one PayPal batch (one item per payout), and every
guarantee still holds per payout: one batch id saved before the call and reused on retry, a duplicate answer
adopted for every item, an item refused at creation failing alone, an item failing after acceptance (webhook or
polling) giving back that partner's money only, and a staff retry sending a batch of one."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import time_machine
from django.test import override_settings

from apertur.commissions.models import CommissionEntry
from apertur.integrations.paypal.client import PayPalClient
from apertur.integrations.paypal.emulator import ITEM_EVENTS, Running
from apertur.partners.models import Partner
from apertur.payouts import reconcile, services
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus, PayPalEvent, PayPalEventStatus
from apertur.payouts.tests.helpers import at, batches_created, client_for, do_run, due, item_id, make_world, pay
from apertur.testing import make_staff

pytestmark = pytest.mark.django_db
PERIOD = "2026-04"
#: Three partners owed 6,000, 7,000 and 8,000 cents (10 % of the payments below).
OWED = [6_000, 7_000, 8_000]


def partners(emails: list[str] | None = None) -> list[Partner]:
    made = []
    for i, owed in enumerate(OWED):
        paypal = emails[i] if emails else f"p{i}@example.com"
        partner, customer = make_world(customer_email=f"customer{i}@example.com", paypal_email=paypal)
        pay(customer, 100 + i, owed * 10, at(2026, 3, 1), stripe_customer=f"cus_{i}")
        made.append(partner)
    return made


class Crash(BaseException):
    """The process dies (SIGKILL, OOM, deploy): nothing after this line of ours runs."""


def configure(emu: Running, **switches: Any) -> None:
    code, body = emu.emulator.configure(switches)
    assert code == 200, body


def payouts() -> list[Payout]:
    return list(Payout.objects.order_by("partner_id"))


def paypal_items(emu: Running) -> Counter[str]:
    """How many times PayPal holds each of our items, over every batch."""
    return Counter(i["payout_item"]["sender_item_id"] for b in emu.emulator.state()["batches"] for i in b["items"])


def test_a_chunk_of_partners_is_one_batch_with_one_item_each(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    made = partners()
    with django_capture_on_commit_callbacks(execute=True):
        decisions = do_run(emu, PERIOD)
    first = f"aptr-{made[0].pk}-{PERIOD}-1"
    assert [(d.partner_id, d.reason, d.amount_cents, d.sender_batch_id) for d in decisions] == [
        (p.pk, "paid", owed, first) for p, owed in zip(made, OWED, strict=True)
    ]
    rows = payouts()
    assert [(p.sender_item_id, p.sender_batch_id, p.status, p.amount_cents, p.attempts) for p in rows] == [
        (f"aptr-{p.pk}-{PERIOD}-1", first, PayoutStatus.SENT, owed, 1) for p, owed in zip(made, OWED, strict=True)
    ]
    (batch,) = emu.emulator.state()["batches"]
    assert batch["batch_header"]["sender_batch_header"]["sender_batch_id"] == first
    assert {p.paypal_batch_id for p in rows} == {batch["batch_header"]["payout_batch_id"]}
    assert [(i["payout_item"]["sender_item_id"], i["payout_item"]["amount"]["value"]) for i in batch["items"]] == [
        (p.sender_item_id, f"{p.amount_cents // 100}.00") for p in rows
    ]
    assert [i["payout_item"]["receiver"] for i in batch["items"]] == [
        "p0@example.com",
        "p1@example.com",
        "p2@example.com",
    ]
    assert not CommissionEntry.objects.unpaid().exists()
    for payout in rows:  # each payout links exactly its partner's entries, and its amount is their sum
        links = PayoutEntry.objects.filter(payout=payout, released_at__isnull=True).select_related("entry")
        assert {link.entry.partner_id for link in links} == {payout.partner_id}
        assert sum(link.entry.amount_cents for link in links) == payout.amount_cents
    assert sorted((m.to[0], m.subject) for m in mailoutbox) == sorted(
        (p.user.email, f"Your Apertur payout of ${owed // 100}.00 CAD is on its way")
        for p, owed in zip(made, OWED, strict=True)
    )
    assert [d.reason for d in do_run(emu, PERIOD)] == ["already_paid"] * 3 and batches_created(emu) == 1


def test_the_batch_size_cuts_the_partners_into_batches(emu: Running) -> None:
    made = partners()
    with override_settings(PAYOUT_BATCH_SIZE=2):
        preview = do_run(emu, PERIOD, dry_run=True)
        decisions = do_run(emu, PERIOD)
    # The dry run names the batches the real run uses (each chunk's, named after its first item).
    assert [d.sender_batch_id for d in preview] == [d.sender_batch_id for d in decisions]
    assert [d.reason for d in decisions] == ["paid"] * 3
    ids = [f"aptr-{made[0].pk}-{PERIOD}-1", f"aptr-{made[2].pk}-{PERIOD}-1"]
    assert [d.sender_batch_id for d in decisions] == [ids[0], ids[0], ids[1]]
    batches = emu.emulator.state()["batches"]
    assert [(b["batch_header"]["sender_batch_header"]["sender_batch_id"], len(b["items"])) for b in batches] == [
        (ids[0], 2),
        (ids[1], 1),
    ]
    assert paypal_items(emu) == Counter({p.sender_item_id: 1 for p in payouts()})


def test_a_dry_run_of_several_partners_writes_and_sends_nothing(emu: Running) -> None:
    partners()
    decisions = do_run(emu, PERIOD, dry_run=True)
    assert [(d.reason, d.amount_cents) for d in decisions] == [("would_pay", owed) for owed in OWED]
    assert Payout.objects.count() == 0 and PayoutEntry.objects.count() == 0
    assert emu.emulator.counters["create_requests"] == 0


def test_a_retryable_error_leaves_the_chunk_created_and_the_rerun_sends_the_same_batch(emu: Running) -> None:
    made = partners()
    first = f"aptr-{made[0].pk}-{PERIOD}-1"
    configure(emu, fail_next_n_with_5xx=1, fail_status=503)
    decisions = do_run(emu, PERIOD)
    assert [(d.reason, d.status, d.sender_batch_id) for d in decisions] == [("retry_pending", "created", first)] * 3
    assert [(p.status, p.attempts, p.sender_batch_id) for p in payouts()] == [("created", 1, first)] * 3
    assert all("HTTP 503" in p.detail for p in payouts())
    assert batches_created(emu) == 0 and not CommissionEntry.objects.paid().exists()
    assert PayoutEntry.objects.filter(released_at__isnull=True).count() == 3  # still reserved for them

    with override_settings(PAYOUT_BATCH_SIZE=1):  # a smaller chunk size now changes nothing saved
        decisions = do_run(emu, PERIOD)
    assert [(d.reason, d.sender_batch_id) for d in decisions] == [("paid", first)] * 3
    assert [(p.status, p.attempts, p.sender_batch_id) for p in payouts()] == [("sent", 2, first)] * 3
    (batch,) = emu.emulator.state()["batches"]
    assert batch["batch_header"]["sender_batch_header"]["sender_batch_id"] == first and len(batch["items"]) == 3
    assert emu.emulator.counters["create_requests"] == 1  # the 503 was answered before create


def test_a_duplicate_answer_for_a_chunk_records_every_item_as_sent(emu: Running) -> None:
    partners()
    configure(emu, timeout_next_n=1, timeout_seconds=0.6, timeout_after_commit=True)
    assert [d.reason for d in do_run(emu, PERIOD, timeout=0.2)] == ["retry_pending"] * 3
    assert batches_created(emu) == 1  # PayPal has the batch; we do not know yet
    decisions = do_run(emu, PERIOD)
    assert [(d.reason, d.status) for d in decisions] == [("paid", "sent")] * 3
    (batch,) = emu.emulator.state()["batches"]
    rows = payouts()
    assert {p.paypal_batch_id for p in rows} == {batch["batch_header"]["payout_batch_id"]}
    assert all(p.detail.startswith("duplicate batch") for p in rows)
    assert paypal_items(emu) == Counter({p.sender_item_id: 1 for p in rows})
    assert not CommissionEntry.objects.unpaid().exists()


def test_a_crash_after_paypal_created_the_chunk_is_adopted_by_the_rerun(
    emu: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    partners()
    real = PayPalClient.create_payout
    calls: list[int] = []

    def dying(self: PayPalClient, **kwargs: Any) -> Any:
        calls.append(len(kwargs["items"]))
        created = real(self, **kwargs)
        if len(calls) == 1:
            raise Crash("killed")  # the process dies once PayPal has the batch
        return created

    monkeypatch.setattr(PayPalClient, "create_payout", dying)
    with pytest.raises(Crash):
        do_run(emu, PERIOD)
    assert [p.status for p in payouts()] == ["created"] * 3 and batches_created(emu) == 1
    assert [d.reason for d in do_run(emu, PERIOD)] == ["paid"] * 3
    assert calls == [3, 3] and batches_created(emu) == 1
    assert all(p.detail.startswith("duplicate batch") for p in payouts())


def test_an_item_refused_at_creation_fails_alone_and_the_others_go_in_a_new_batch(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    made = partners(["p0@example.com", "not-an-email", "p2@example.com"])
    first = f"aptr-{made[0].pk}-{PERIOD}-1"
    with django_capture_on_commit_callbacks(execute=True):
        decisions = do_run(emu, PERIOD)
    renamed = f"{first}-r1"
    assert [(d.reason, d.status, d.sender_batch_id) for d in decisions] == [
        ("paid", "sent", renamed),
        ("failed", "failed", first),
        ("paid", "sent", renamed),
    ]
    refused = Payout.objects.get(partner=made[1])
    assert "VALIDATION_ERROR" in refused.detail and refused.sent_at is None
    assert not PayoutEntry.objects.filter(payout=refused, released_at__isnull=True).exists()
    assert not CommissionEntry.objects.filter(partner=made[1]).paid().exists()
    (batch,) = emu.emulator.state()["batches"]  # the refused request created nothing
    assert batch["batch_header"]["sender_batch_header"]["sender_batch_id"] == renamed
    assert [i["payout_item"]["sender_item_id"] for i in batch["items"]] == [
        f"aptr-{made[0].pk}-{PERIOD}-1",
        f"aptr-{made[2].pk}-{PERIOD}-1",
    ]
    assert emu.emulator.counters["create_requests"] == 1  # the refusal came before the emulator counted
    # The two sent are told it is on its way; the refused partner is told PayPal refused their address.
    assert sorted(m.to[0] for m in mailoutbox) == sorted([made[0].user.email, made[1].user.email, made[2].user.email])
    (told,) = [m for m in mailoutbox if m.to[0] == made[1].user.email]
    assert told.subject.startswith("PayPal refused your payout address") and "not-an-email" in told.body
    assert Payout.objects.get(partner=made[1]).failure == "address_refused"

    made[1].paypal_email = "fixed@example.com"
    made[1].save()
    d = do_run(emu, "2026-05")
    assert [(x.partner_id, x.reason, x.amount_cents) for x in due(d)] == [(made[1].pk, "paid", OWED[1])]


def test_one_item_failing_in_an_accepted_batch_gives_back_only_that_partners_money(
    emu: Running, django_capture_on_commit_callbacks: Any, mailoutbox: list[Any]
) -> None:
    """PayPal accepted the batch; one receiver's item then FAILS. Its webhook event (as PayPal sends it) moves
    that payout only, the polling of the batch moves the others, and staff retry the failed one alone."""
    made = partners()
    configure(emu, item_status={"p1@example.com": "FAILED"})
    assert [d.reason for d in do_run(emu, PERIOD)] == ["paid"] * 3
    code, _ = emu.emulator.advance({})
    assert code == 200
    failing = Payout.objects.get(partner=made[1])
    (batch,) = emu.emulator.state()["batches"]
    resource = next(i for i in batch["items"] if i["payout_item"]["sender_item_id"] == failing.sender_item_id)
    event = {
        "id": "WH-ONE-ITEM",
        "event_type": ITEM_EVENTS["FAILED"],
        "resource_type": "payouts_item",
        "resource": resource,
    }
    with (
        time_machine.travel(at(2026, 4, 16), tick=False),
        client_for(emu) as client,
        django_capture_on_commit_callbacks(execute=True),
    ):
        stored = reconcile.receive_event(event=event, client=client)
    assert (stored.status, stored.payout_id) == (PayPalEventStatus.PROCESSED, failing.pk)
    rows = payouts()
    assert [(p.status, p.item_status) for p in rows] == [("sent", ""), ("failed", "FAILED"), ("sent", "")]
    assert rows[1].paypal_item_id == resource["payout_item_id"]
    assert not PayoutEntry.objects.filter(payout=rows[1], released_at__isnull=True).exists()
    assert CommissionEntry.objects.unpaid().values_list("partner_id", flat=True).distinct().get() == made[1].pk
    assert [m.subject for m in mailoutbox] == ["Your Apertur payout of $70.00 CAD came back"]

    gets: list[str] = []
    real = PayPalClient.get_batch

    def counting(self: PayPalClient, payout_batch_id: str) -> Any:
        gets.append(payout_batch_id)
        return real(self, payout_batch_id)

    with (
        time_machine.travel(at(2026, 4, 17), tick=False),
        client_for(emu) as client,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setattr(PayPalClient, "get_batch", counting)
        result = reconcile.poll_open(client=client)
    assert gets == [rows[0].paypal_batch_id]  # one read of the batch for both of its open items
    assert result.checked == 2 and [c["to"] for c in result.changed] == ["paid", "paid"]
    assert [p.status for p in payouts()] == ["paid", "failed", "paid"]

    with time_machine.travel(at(2026, 4, 18), tick=False), client_for(emu) as client:
        retried = services.retry(payout=rows[1], actor=make_staff(), client=client)
    again = f"aptr-{made[1].pk}-{PERIOD}-2"
    assert (retried.status, retried.sender_item_id, retried.sender_batch_id) == ("sent", again, again)
    last = emu.emulator.state()["batches"][-1]
    assert [i["payout_item"]["sender_item_id"] for i in last["items"]] == [again]
    assert paypal_items(emu) == Counter(
        {rows[0].sender_item_id: 1, rows[1].sender_item_id: 1, rows[2].sender_item_id: 1, again: 1}
    )


def test_a_batch_event_reconciles_every_payout_of_the_batch(emu: Running) -> None:
    partners()
    configure(emu, item_status={"p2@example.com": "UNCLAIMED"})
    do_run(emu, PERIOD)
    emu.emulator.advance({})
    (batch,) = emu.emulator.state()["batches"]
    event = {
        "id": "WH-BATCH",
        "event_type": "PAYMENT.PAYOUTSBATCH.SUCCESS",
        "resource_type": "payouts",
        "resource": {"batch_header": batch["batch_header"], "links": []},
    }
    with time_machine.travel(at(2026, 4, 16), tick=False), client_for(emu) as client:
        stored = reconcile.receive_event(event=event, client=client)
    assert stored.status == PayPalEventStatus.PROCESSED
    assert [p.status for p in payouts()] == ["paid", "paid", "unclaimed"]
    assert [p.paypal_item_id for p in payouts()] == [item_id(emu, p) for p in payouts()]
    assert PayPalEvent.objects.count() == 1


def test_a_partner_held_after_the_batch_was_saved_is_sent_with_it(emu: Running) -> None:
    """A saved batch may already be at PayPal: it is always sent with the same items. The hold stops the
    partner's next payouts."""
    made = partners()
    configure(emu, fail_next_n_with_5xx=1)
    assert [d.reason for d in do_run(emu, PERIOD)] == ["retry_pending"] * 3
    services.hold_partner(partner=made[1], actor=None, reason="Checking")
    assert [d.reason for d in do_run(emu, PERIOD)] == ["paid"] * 3
    assert paypal_items(emu) == Counter({p.sender_item_id: 1 for p in payouts()})


def test_a_saved_batch_whose_only_partner_is_held_waits(emu: Running) -> None:
    (partner, *_) = partners()
    configure(emu, fail_next_n_with_5xx=1)
    with override_settings(PAYOUT_BATCH_SIZE=1):  # three batches of one; the first meets the 5xx
        assert [d.reason for d in do_run(emu, PERIOD)] == ["retry_pending", "paid", "paid"]
    services.hold_partner(partner=partner, actor=None, reason="Checking")
    decisions = do_run(emu, PERIOD)
    assert [(d.reason, d.status) for d in decisions] == [
        ("payouts_held", "created"),
        ("already_paid", "sent"),
        ("already_paid", "sent"),
    ]
    assert Payout.objects.get(partner=partner).status == PayoutStatus.CREATED
    assert len(emu.emulator.state()["batches"]) == 2
    services.release_partner(partner=partner, actor=None)
    assert [d.reason for d in do_run(emu, PERIOD)] == ["paid", "already_paid", "already_paid"]
    assert paypal_items(emu) == Counter({p.sender_item_id: 1 for p in payouts()})
