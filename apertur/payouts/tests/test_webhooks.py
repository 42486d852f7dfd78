"""``POST /webhooks/paypal`` end to end: the PayPal emulator (over loopback) POSTs signed deliveries to the
live server, the view has the emulator verify them, and reconciliation reads the batch back from it.

The live server answers on its own thread with the test database, hence ``transaction=True``. Both it and the
emulator run in real time, so no time-machine here except inside ``pay``/``do_run`` (the test thread only);
the run's period is next month, so the payout's ``sent_at`` is ahead of the real clock and an UNCLAIMED item
is never old enough to be cancelled by reconciliation.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.test import Client

from apertur.commissions.models import CommissionEntry
from apertur.commissions.selectors import balance
from apertur.core.models import AuditEvent
from apertur.integrations.paypal.emulator import ITEM_EVENTS, Running
from apertur.payouts import reconcile, services
from apertur.payouts.models import Payout, PayoutEntry, PayoutStatus, PayPalEvent, PayPalEventStatus
from apertur.payouts.tests.helpers import SECRET, do_run, make_world, only, pay
from apertur.testing import paypal_emulator

WEBHOOK_ID = "APERTURTESTWEBHOOK1"
COMMISSION = 6_000  # 10 % of the 60,000-cent payment below
ITEM = "PAYMENT.PAYOUTS-ITEM.SUCCEEDED"
BATCH = "PAYMENT.PAYOUTSBATCH.SUCCESS"
live = pytest.mark.django_db(transaction=True)


def _next_period() -> str:
    today = dt.datetime.now(dt.UTC)
    year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    return f"{year:04d}-{month:02d}"


PERIOD = _next_period()
# The balance once the run is done: the run is dated next month, and a payout counts as paid from when it was sent.
AFTER_RUN = services.run_at(PERIOD) + dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.PAYPAL_WEBHOOK_ID = WEBHOOK_ID


@pytest.fixture
def emu(live_server: Any, settings: Any) -> Iterator[Running]:
    """The emulator, configured as our PayPal (settings) and delivering its webhooks to the live server."""
    with paypal_emulator(settings) as emulator:
        configure(emulator, webhook_url=f"{live_server.url}/webhooks/paypal", webhook_id=settings.PAYPAL_WEBHOOK_ID)
        yield emulator


@pytest.fixture
def endpoint(live_server: Any) -> str:
    return f"{live_server.url}/webhooks/paypal"


def configure(emu: Running, **switches: Any) -> None:
    response = httpx.post(f"{emu.base_url}/emulator/config", json=switches, timeout=10)
    assert response.status_code == 200, response.text


def advance(emu: Running, **body: Any) -> dict[str, Any]:
    """``POST /emulator/advance``: the emulator delivers the resulting webhooks before it answers."""
    response = httpx.post(f"{emu.base_url}/emulator/advance", json=body, timeout=60)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def delivered(result: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(d["event_type"], d["status"]) for d in result["deliveries"]]


def paid_out(emu: Running) -> Payout:
    """A partner with 6,000 cents eligible, paid by next month's run: one payout, ``sent``, its item PENDING."""
    _, customer = make_world()
    paid_at = (dt.datetime.now(dt.UTC) - dt.timedelta(days=45)).replace(hour=12, minute=0, second=0, microsecond=0)
    pay(customer, 1, 60_000, paid_at)
    decision = only(do_run(emu, PERIOD))
    assert (decision.reason, decision.amount_cents, decision.status) == ("paid", COMMISSION, PayoutStatus.SENT)
    return Payout.objects.get()


def subjects(outbox: list[Any], fragment: str) -> list[str]:
    return [m.subject for m in outbox if fragment in m.subject]


def batch_state(emu: Running) -> dict[str, Any]:
    batches = emu.emulator.state()["batches"]
    assert len(batches) == 1
    batch: dict[str, Any] = batches[0]
    return batch


def item_event(emu: Running, event_id: str = "WH-ITEM-0001", event_type: str = ITEM) -> dict[str, Any]:
    """An item event as PayPal (and the emulator) shape it, carrying the item's current state."""
    return {
        "id": event_id,
        "event_version": "1.0",
        "create_time": "2026-01-01T00:00:00Z",
        "resource_type": "payouts_item",
        "resource_version": "1.0",
        "event_type": event_type,
        "summary": "A payout item has succeeded",
        "resource": batch_state(emu)["items"][0],
    }


def batch_event(emu: Running, event_id: str = "WH-BATCH-0001") -> dict[str, Any]:
    return {
        "id": event_id,
        "event_version": "1.0",
        "create_time": "2026-01-01T00:00:00Z",
        "resource_type": "payouts",
        "resource_version": "1.0",
        "event_type": BATCH,
        "summary": "A payout batch is success",
        "resource": {"batch_header": batch_state(emu)["batch_header"], "links": []},
    }


def post(endpoint: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(endpoint, content=body, headers=headers, timeout=30)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- each item status, delivered by the emulator ----------------------------------------------------------


@live
@pytest.mark.parametrize(
    ("item_status", "expected"),
    [
        ("SUCCESS", PayoutStatus.PAID),
        ("UNCLAIMED", PayoutStatus.UNCLAIMED),
        ("ONHOLD", PayoutStatus.HELD),
        ("BLOCKED", PayoutStatus.HELD),
        ("FAILED", PayoutStatus.FAILED),
    ],
)
def test_an_item_status_delivered_by_webhook_moves_the_payout(
    emu: Running, mailoutbox: list[Any], item_status: str, expected: str
) -> None:
    payout = paid_out(emu)
    configure(emu, default_item_status=item_status)

    result = advance(emu)

    assert delivered(result) == [(ITEM_EVENTS[item_status], 200), (BATCH, 200)]
    payout.refresh_from_db()
    assert (payout.status, payout.item_status) == (expected, item_status)
    assert payout.paypal_item_id == batch_state(emu)["items"][0]["payout_item_id"]
    stored = PayPalEvent.objects.order_by("id")
    assert [(e.event_type, e.status, e.payout_id) for e in stored] == [
        (ITEM_EVENTS[item_status], PayPalEventStatus.PROCESSED, payout.pk),
        (BATCH, PayPalEventStatus.PROCESSED, payout.pk),
    ]
    assert {e.event_id for e in stored} == {d["event_id"] for d in result["deliveries"]}
    assert len(subjects(mailoutbox, "was paid")) == (1 if expected == PayoutStatus.PAID else 0)
    b = balance(partner=payout.partner, at=AFTER_RUN)
    if expected == PayoutStatus.FAILED:  # the money never left: back in the balance, the partner told once
        assert not PayoutEntry.objects.filter(payout=payout, released_at__isnull=True).exists()
        assert (b.paid_cents, b.eligible_cents) == (0, COMMISSION)
        assert len(subjects(mailoutbox, "came back")) == 1
    else:
        assert (b.paid_cents, b.eligible_cents) == (COMMISSION, 0)
        assert subjects(mailoutbox, "came back") == []


@live
@pytest.mark.parametrize("comes_back", ["RETURNED", "REFUNDED", "REVERSED"])
def test_money_that_comes_back_after_success_returns_to_the_balance(
    emu: Running, endpoint: str, mailoutbox: list[Any], comes_back: str
) -> None:
    payout = paid_out(emu)
    assert delivered(advance(emu)) == [(ITEM, 200), (BATCH, 200)]
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert (
        balance(partner=payout.partner, at=AFTER_RUN).paid_cents,
        balance(partner=payout.partner, at=AFTER_RUN).eligible_cents,
    ) == (
        COMMISSION,
        0,
    )

    result = advance(emu, payout_item_id=payout.paypal_item_id, transaction_status=comes_back)

    assert delivered(result) == [(ITEM_EVENTS[comes_back], 200)]
    payout.refresh_from_db()
    assert (payout.status, payout.item_status) == (PayoutStatus.RETURNED, comes_back)
    assert payout.returned_at is not None
    links = PayoutEntry.objects.filter(payout=payout)
    assert links.exists() and not links.filter(released_at__isnull=True).exists()
    assert not CommissionEntry.objects.filter(partner=payout.partner).paid().exists()
    b = balance(partner=payout.partner, at=AFTER_RUN)
    assert (b.paid_cents, b.eligible_cents, b.lifetime_cents) == (0, COMMISSION, COMMISSION)
    came_back = [m for m in mailoutbox if "came back" in m.subject]
    assert len(came_back) == 1 and came_back[0].to == [payout.partner.user.email]
    assert comes_back in came_back[0].body

    # PayPal resends the event: nothing is released or told twice.
    event = next(d["event"] for d in emu.emulator.deliveries if d["event"]["event_type"] == ITEM_EVENTS[comes_back])
    response = post(endpoint, *emu.emulator.signed_delivery(event, WEBHOOK_ID))
    assert response.json() == {"received": True, "status": "processed"}
    assert len(subjects(mailoutbox, "came back")) == 1
    assert balance(partner=payout.partner, at=AFTER_RUN).eligible_cents == COMMISSION


# --- dedupe, verification ---------------------------------------------------------------------------------


@live
def test_the_same_delivery_twice_is_stored_once_and_applied_once(
    emu: Running, endpoint: str, mailoutbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    payout = paid_out(emu)
    configure(emu, webhook_url=None)  # PayPal settles the item; we post its delivery ourselves
    assert delivered(advance(emu)) == []
    applied: list[int] = []
    real = reconcile.reconcile_payout

    def counting(**kwargs: Any) -> Payout:
        applied.append(kwargs["payout"].pk)
        return real(**kwargs)

    monkeypatch.setattr(reconcile, "reconcile_payout", counting)  # the live server runs in this process
    body, headers = emu.emulator.signed_delivery(item_event(emu), WEBHOOK_ID)

    first = post(endpoint, body, headers)
    assert (first.status_code, first.json()) == (200, {"received": True, "status": "processed"})
    stored = PayPalEvent.objects.get()
    second = post(endpoint, body, headers)
    assert (second.status_code, second.json()) == (200, {"received": True, "status": "processed"})

    assert applied == [payout.pk]
    assert PayPalEvent.objects.count() == 1
    again = PayPalEvent.objects.get()
    assert (again.pk, again.processed_at, again.payout_id) == (stored.pk, stored.processed_at, payout.pk)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert len(subjects(mailoutbox, "was paid")) == 1
    assert AuditEvent.objects.filter(action="payout.status").count() == 1


def _changed_amount(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    event = json.loads(body)
    event["resource"]["payout_item"]["amount"]["value"] = "7000.00"
    return json.dumps(event).encode(), headers


def _changed_id(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"WH-ITEM-0001", b"WH-ITEM-0002"), headers


def _changed_status(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body.replace(b'"transaction_status": "SUCCESS"', b'"transaction_status": "RETURNED"'), headers


def _no_signature(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, {k: v for k, v in headers.items() if k != "PAYPAL-TRANSMISSION-SIG"}


def _no_cert_url(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, {k: v for k, v in headers.items() if k != "PAYPAL-CERT-URL"}


def _other_transmission(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, {**headers, "PAYPAL-TRANSMISSION-ID": "0" * 32}


def _made_up_signature(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return body, {**headers, "PAYPAL-TRANSMISSION-SIG": "bm90IGEgc2lnbmF0dXJl"}


@live
@pytest.mark.parametrize(
    "forge",
    [
        _changed_amount,
        _changed_id,
        _changed_status,
        _no_signature,
        _no_cert_url,
        _other_transmission,
        _made_up_signature,
    ],
)
def test_a_forged_or_modified_delivery_is_refused_and_nothing_stored(
    emu: Running, endpoint: str, forge: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]
) -> None:
    payout = paid_out(emu)
    configure(emu, webhook_url=None)
    advance(emu)
    body, headers = emu.emulator.signed_delivery(item_event(emu), WEBHOOK_ID)

    forged = forge(body, headers)
    assert forged != (body, headers)

    response = post(endpoint, *forged)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not PayPalEvent.objects.exists()
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SENT
    # The genuine delivery it was made from is accepted: what failed was the forgery.
    assert post(endpoint, body, headers).json() == {"received": True, "status": "processed"}
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID


@live
def test_a_delivery_signed_for_another_webhook_id_is_refused(emu: Running, endpoint: str) -> None:
    payout = paid_out(emu)
    configure(emu, webhook_id="SOMEONEELSESWEBHOOK")  # the emulator signs for a webhook that is not ours

    result = advance(emu)

    assert delivered(result) == [(ITEM, 400), (BATCH, 400)]
    assert not PayPalEvent.objects.exists()
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SENT
    event = result["deliveries"][0]["event_id"]
    genuine = next(d["event"] for d in emu.emulator.deliveries if d["event_id"] == event)
    assert post(endpoint, *emu.emulator.signed_delivery(genuine, WEBHOOK_ID)).status_code == 200


@live
def test_without_a_webhook_id_every_delivery_is_refused(
    emu: Running, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    payout = paid_out(emu)
    settings.PAYPAL_WEBHOOK_ID = ""

    result = advance(emu)

    assert delivered(result) == [(ITEM, 503), (BATCH, 503)]
    assert not PayPalEvent.objects.exists()
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SENT
    assert "PAYPAL_WEBHOOK_ID is not set" in caplog.text


@live
def test_paypal_unreachable_while_verifying_answers_503_and_the_redelivery_is_applied(
    emu: Running, endpoint: str, settings: Any
) -> None:
    payout = paid_out(emu)
    configure(emu, webhook_url=None)
    advance(emu)
    body, headers = emu.emulator.signed_delivery(item_event(emu), WEBHOOK_ID)
    settings.PAYPAL_API_BASE = f"http://127.0.0.1:{closed_port()}"

    response = post(endpoint, body, headers)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "verification_unavailable"
    assert not PayPalEvent.objects.exists()
    settings.PAYPAL_API_BASE = emu.base_url
    assert post(endpoint, body, headers).json() == {"received": True, "status": "processed"}
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID


# --- what a verified event does ---------------------------------------------------------------------------


@live
def test_an_event_for_a_batch_we_do_not_know_is_stored_as_ignored(emu: Running, endpoint: str) -> None:
    payout = paid_out(emu)
    configure(emu, webhook_url=None)
    advance(emu)
    event = item_event(emu)
    event["resource"] = {
        **event["resource"],
        "payout_batch_id": "NOTOURBATCH01",
        "sender_batch_id": "someone-else-7",
        "payout_item": {**event["resource"]["payout_item"], "sender_item_id": "someone-else-7-1"},
    }

    response = post(endpoint, *emu.emulator.signed_delivery(event, WEBHOOK_ID))

    assert (response.status_code, response.json()) == (200, {"received": True, "status": "ignored"})
    stored = PayPalEvent.objects.get()
    assert (stored.event_id, stored.status, stored.payout_id) == ("WH-ITEM-0001", PayPalEventStatus.IGNORED, None)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SENT  # PayPal settled our item, but nobody asked about it


@live
def test_an_event_of_another_kind_is_stored_as_ignored(emu: Running, endpoint: str) -> None:
    paid_out(emu)
    event = {"id": "WH-OTHER-0001", "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {"id": "5O190127TN364715T"}}

    response = post(endpoint, *emu.emulator.signed_delivery(event, WEBHOOK_ID))

    assert response.json() == {"received": True, "status": "ignored"}
    assert PayPalEvent.objects.get().status == PayPalEventStatus.IGNORED


@live
def test_a_batch_event_reconciles_the_payout(emu: Running, endpoint: str, mailoutbox: list[Any]) -> None:
    payout = paid_out(emu)
    configure(emu, webhook_url=None)
    advance(emu)

    response = post(endpoint, *emu.emulator.signed_delivery(batch_event(emu), WEBHOOK_ID))

    assert response.json() == {"received": True, "status": "processed"}
    payout.refresh_from_db()
    assert (payout.status, payout.item_status) == (PayoutStatus.PAID, "SUCCESS")
    stored = PayPalEvent.objects.get()
    assert (stored.event_type, stored.status, stored.payout_id) == (BATCH, PayPalEventStatus.PROCESSED, payout.pk)
    assert len(subjects(mailoutbox, "was paid")) == 1


@live
def test_paypal_unreachable_while_applying_stores_the_event_for_later(emu: Running, mailoutbox: list[Any]) -> None:
    payout = paid_out(emu)
    configure(emu, fail_next_n_with_5xx=2)  # both deliveries verify, both batch reads fail

    result = advance(emu)

    assert delivered(result) == [(ITEM, 200), (BATCH, 200)]
    stored = list(PayPalEvent.objects.order_by("id"))
    assert [(e.status, e.payout_id) for e in stored] == [(PayPalEventStatus.RECEIVED, payout.pk)] * 2
    assert all(e.detail.startswith("not applied yet") for e in stored)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.SENT

    assert reconcile.process_pending_events() == 2

    assert set(PayPalEvent.objects.values_list("status", flat=True)) == {PayPalEventStatus.PROCESSED}
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PAID
    assert len(subjects(mailoutbox, "was paid")) == 1
    assert reconcile.process_pending_events() == 0


# --- the request itself (no PayPal call is made: PAYPAL_API_BASE leads nowhere) ------------------------------


@pytest.fixture
def nowhere(settings: Any) -> None:
    settings.PAYPAL_API_BASE = f"http://127.0.0.1:{closed_port()}"


@pytest.mark.django_db
@pytest.mark.usefixtures("nowhere")
def test_only_post_is_allowed() -> None:
    assert Client().get("/webhooks/paypal").status_code == 405
    assert Client().put("/webhooks/paypal", b"{}", content_type="application/json").status_code == 405


@pytest.mark.django_db
@pytest.mark.usefixtures("nowhere")
def test_an_oversized_body_is_refused() -> None:
    body = json.dumps({"id": "WH-BIG", "event_type": ITEM, "padding": "x" * 1_000_001}).encode()
    response = Client().post("/webhooks/paypal", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert not PayPalEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("nowhere")
@pytest.mark.parametrize(
    "body",
    # The last: nested deeper than the JSON parser recurses (a RecursionError, which was a 500).
    [b"not json", b"[1, 2]", b'"WH-1"', b"{}", b'{"id": 7}', b"\xff\xfe", b"[" * 100_000],
    ids=["not-json", "array", "string", "no-id", "id-not-string", "not-utf8", "deep"],
)
def test_a_body_that_is_not_an_event_is_refused(body: bytes) -> None:
    response = Client().post("/webhooks/paypal", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"
    assert not PayPalEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("nowhere")
def test_unsigned_deliveries_are_refused_without_asking_paypal() -> None:
    body = json.dumps({"id": "WH-1", "event_type": ITEM, "resource": {}}).encode()
    response = Client().post("/webhooks/paypal", body, content_type="application/json")
    assert response.status_code == 400  # headers missing: not even a PayPal call (which would be a 503 here)
    assert not PayPalEvent.objects.exists()


@pytest.mark.django_db
def test_csrf_is_not_required(settings: Any) -> None:
    settings.PAYPAL_API_BASE = f"http://127.0.0.1:{closed_port()}"
    response = Client(enforce_csrf_checks=True).post("/webhooks/paypal", b"{}", content_type="application/json")
    assert response.status_code == 400  # refused for its body, not with a CSRF 403


@live
def test_each_item_of_a_multi_item_batch_is_reconciled_by_its_own_webhook(emu: Running, mailoutbox: list[Any]) -> None:
    """Three partners paid in one batch; PayPal fails one receiver's item. Each item's event moves its own payout
    only; the batch event changes nothing more."""
    paid_at = (dt.datetime.now(dt.UTC) - dt.timedelta(days=45)).replace(hour=12, minute=0, second=0, microsecond=0)
    for i in range(3):
        _, customer = make_world(customer_email=f"c{i}@example.com", paypal_email=f"p{i}@example.com")
        pay(customer, 10 + i, 60_000, paid_at, stripe_customer=f"cus_{i}")
    decisions = do_run(emu, PERIOD)
    assert [d.reason for d in decisions] == ["paid"] * 3 and len({d.sender_batch_id for d in decisions}) == 1
    configure(emu, item_status={"p1@example.com": "FAILED"})

    result = advance(emu)

    events = [ITEM_EVENTS["SUCCESS"], ITEM_EVENTS["FAILED"], ITEM_EVENTS["SUCCESS"], BATCH]
    assert delivered(result) == [(event, 200) for event in events]
    payouts = list(Payout.objects.order_by("partner_id"))
    assert [(p.status, p.item_status) for p in payouts] == [
        (PayoutStatus.PAID, "SUCCESS"),
        (PayoutStatus.FAILED, "FAILED"),
        (PayoutStatus.PAID, "SUCCESS"),
    ]
    items = {i["payout_item"]["sender_item_id"]: i["payout_item_id"] for i in batch_state(emu)["items"]}
    assert [p.paypal_item_id for p in payouts] == [items[p.sender_item_id] for p in payouts]
    stored = list(PayPalEvent.objects.order_by("id"))
    assert [(e.event_type, e.status, e.payout_id) for e in stored[:3]] == [
        (event, PayPalEventStatus.PROCESSED, p.pk) for event, p in zip(events, payouts, strict=False)
    ]
    assert (stored[3].event_type, stored[3].status) == (BATCH, PayPalEventStatus.PROCESSED)
    assert not PayoutEntry.objects.filter(payout=payouts[1], released_at__isnull=True).exists()
    assert PayoutEntry.objects.filter(payout__in=[payouts[0], payouts[2]], released_at__isnull=True).count() == 2
    assert [balance(partner=p.partner, at=AFTER_RUN).paid_cents for p in payouts] == [COMMISSION, 0, COMMISSION]
    assert len(subjects(mailoutbox, "was paid")) == 2 and len(subjects(mailoutbox, "came back")) == 1


def test_a_verified_delivery_holding_a_nul_is_stored_and_applied(emu: Running, endpoint: str) -> None:
    # PostgreSQL's jsonb refuses "\u0000": the delivery was a 500 at every redelivery, so it was never stored.
    payout = paid_out(emu)
    configure(emu, webhook_url=None)
    assert delivered(advance(emu)) == []
    event = item_event(emu)
    event["summary"] = "Payout item \u0000 succeeded"
    body, headers = emu.emulator.signed_delivery(event, WEBHOOK_ID)
    response = post(endpoint, body, headers)
    assert (response.status_code, response.json()) == (200, {"received": True, "status": "processed"})
    stored = PayPalEvent.objects.get()
    assert stored.payload["summary"] == "Payout item \ufffd succeeded" and stored.payout_id == payout.pk
