"""The PayPal client against the emulator over loopback: tokens, the wire format, each failure mode, item
statuses and webhook verification."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from apertur.integrations.paypal.client import (
    TRANSACTION_STATUSES,
    PayoutItem,
    PayPalClient,
    cents_to_value,
    client_from_settings,
    value_to_cents,
)
from apertur.integrations.paypal.emulator import DEFAULT_WEBHOOK_ID, ITEM_EVENTS, Running
from apertur.integrations.paypal.errors import DuplicateBatch, PayPalError, Retryable

from .conftest import Receiver, control

ITEM = PayoutItem(receiver="partner@example.com", amount_cents=7000, sender_item_id="partner-42-2026-06", note="June")


def _pay(client: PayPalClient, sender_batch_id: str = "apertur-42-2026-06", *items: PayoutItem):  # type: ignore[no-untyped-def]
    return client.create_payout(
        sender_batch_id=sender_batch_id, items=list(items) or [ITEM], email_subject="Your Apertur commissions"
    )


# --- money ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "value"), [(7000, "70.00"), (1, "0.01"), (5, "0.05"), (2500, "25.00"), (123456789, "1234567.89")]
)
def test_cents_to_value_is_exact(cents: int, value: str) -> None:
    assert cents_to_value(cents) == value
    assert value_to_cents(value) == cents


@pytest.mark.parametrize("bad", [0, -1, 70.0, True])
def test_cents_to_value_refuses_non_positive_or_non_integers(bad: object) -> None:
    with pytest.raises(ValueError):
        cents_to_value(bad)  # type: ignore[arg-type]


def test_value_to_cents_accepts_paypal_forms_and_refuses_fractions_of_a_cent() -> None:
    assert value_to_cents("1.0") == 100
    assert value_to_cents("70") == 7000
    with pytest.raises(ValueError):
        value_to_cents("0.001")
    with pytest.raises(ValueError):
        value_to_cents("abc")


# --- OAuth ------------------------------------------------------------------------------------------


def test_token_is_cached(emu: Running, client: PayPalClient) -> None:
    first = client.access_token()
    assert first == client.access_token()
    _pay(client)
    client.get_batch(_pay(client, "another").payout_batch_id)
    assert control(emu, "state")["counters"]["tokens_issued"] == 1


def test_token_is_refreshed_shortly_before_expiry(emu: Running) -> None:
    now = [1000.0]
    control(emu, "config", {"token_ttl_seconds": 100})
    with PayPalClient(emu.base_url, emu.client_id, emu.client_secret, timeout=1.0, clock=lambda: now[0]) as client:
        first = client.access_token()
        now[0] += 89  # the margin is a tenth of the lifetime
        assert client.access_token() == first
        now[0] += 2
        assert client.access_token() != first
    assert control(emu, "state")["counters"]["tokens_issued"] == 2


def test_wrong_credentials_are_terminal(emu: Running) -> None:
    with (
        PayPalClient(emu.base_url, emu.client_id, "wrong", timeout=1.0) as client,
        pytest.raises(PayPalError) as caught,
    ):
        client.access_token()
    assert not isinstance(caught.value, Retryable)
    assert (caught.value.status, caught.value.name) == (401, "invalid_client")
    assert caught.value.message == "Client Authentication failed"


def test_an_expired_token_is_replaced_and_the_call_made_once_more(emu: Running) -> None:
    control(emu, "config", {"token_ttl_seconds": 1})
    now = [0.0]  # the client believes the token is fresh; the emulator has expired it
    with PayPalClient(emu.base_url, emu.client_id, emu.client_secret, timeout=1.0, clock=lambda: now[0]) as client:
        client.access_token()
        time.sleep(1.1)
        with pytest.raises(PayPalError) as missing:
            client.get_batch("NOPE")  # 401 with the old token, then a fresh token: the batch is simply unknown
        assert missing.value.status == 404
    assert control(emu, "state")["counters"]["tokens_issued"] == 2


def test_a_token_paypal_keeps_refusing_is_retryable_later(emu: Running) -> None:
    class Refusing(httpx.BaseTransport):
        def __init__(self) -> None:
            self.calls: list[str] = []

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.calls.append(request.url.path)
            if request.url.path == "/v1/oauth2/token":
                return httpx.Response(200, json={"access_token": f"A{len(self.calls)}", "expires_in": 3600})
            return httpx.Response(401, json={"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed"})

    transport = Refusing()
    with (
        PayPalClient("https://paypal.test", "id", "secret", transport=transport) as client,
        pytest.raises(Retryable) as caught,
    ):
        client.get_batch("B1")
    assert (caught.value.status, caught.value.name) == (401, "AUTHENTICATION_FAILURE")
    assert transport.calls == [
        "/v1/oauth2/token",
        "/v1/payments/payouts/B1",
        "/v1/oauth2/token",
        "/v1/payments/payouts/B1",
    ]


def test_clients_from_settings_share_one_token(emu: Running, settings: Any) -> None:
    settings.PAYPAL_API_BASE, settings.PAYPAL_CLIENT_ID = emu.base_url, emu.client_id
    settings.PAYPAL_CLIENT_SECRET = emu.client_secret
    for _ in range(3):
        with client_from_settings(timeout=1.0) as client:
            client.get_batch(_pay(client, f"shared-{_}").payout_batch_id)
    assert control(emu, "state")["counters"]["tokens_issued"] == 1
    with PayPalClient(emu.base_url, emu.client_id, emu.client_secret, timeout=1.0) as own:
        own.access_token()  # a client with its own cache fetches its own
    assert control(emu, "state")["counters"]["tokens_issued"] == 2


# --- create ------------------------------------------------------------------------------------------


def test_create_payout_sends_paypal_wire_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json={"access_token": "tok", "token_type": "Bearer", "expires_in": 32400})
        return httpx.Response(
            201,
            json={
                "batch_header": {
                    "payout_batch_id": "5UXD2E8A7EBQJ",
                    "batch_status": "PENDING",
                    "sender_batch_header": {"sender_batch_id": "apertur-42-2026-06"},
                },
                "links": [],
            },
        )

    with PayPalClient("https://api-m.sandbox.paypal.com", "id", "secret", transport=httpx.MockTransport(handler)) as c:
        created = _pay(c)
    token_request, create_request = seen
    assert token_request.method == "POST"
    assert token_request.headers["Authorization"] == "Basic aWQ6c2VjcmV0"
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert token_request.content == b"grant_type=client_credentials"
    assert create_request.url.path == "/v1/payments/payouts"
    assert create_request.headers["Authorization"] == "Bearer tok"
    assert create_request.headers["Content-Type"] == "application/json"
    assert json.loads(create_request.content) == {
        "sender_batch_header": {"sender_batch_id": "apertur-42-2026-06", "email_subject": "Your Apertur commissions"},
        "items": [
            {
                "recipient_type": "EMAIL",
                "amount": {"value": "70.00", "currency": "CAD"},
                "receiver": "partner@example.com",
                "sender_item_id": "partner-42-2026-06",
                "note": "June",
            }
        ],
    }
    assert (created.payout_batch_id, created.batch_status) == ("5UXD2E8A7EBQJ", "PENDING")


def test_create_payout_happy_path(emu: Running, client: PayPalClient) -> None:
    created = _pay(client)
    assert created.batch_status == "PENDING"
    assert created.sender_batch_id == "apertur-42-2026-06"
    assert created.raw["links"][0]["href"].endswith(f"/v1/payments/payouts/{created.payout_batch_id}")
    batch = client.get_batch(created.payout_batch_id)
    assert (batch.batch_status, batch.sender_batch_id) == ("PENDING", "apertur-42-2026-06")
    [item] = batch.items
    assert (item.transaction_status, item.receiver, item.amount_cents, item.currency) == (
        "PENDING",
        "partner@example.com",
        7000,
        "CAD",
    )
    assert item.sender_item_id == "partner-42-2026-06"
    raw_item = emu.emulator.state()["batches"][0]["items"][0]["payout_item"]
    assert raw_item["amount"] == {"value": "70.00", "currency": "CAD"}
    assert raw_item["recipient_type"] == "EMAIL"


def test_duplicate_sender_batch_id_is_duplicate_batch_with_the_original_id(emu: Running, client: PayPalClient) -> None:
    created = _pay(client)
    with pytest.raises(DuplicateBatch) as caught:
        _pay(client)
    exc = caught.value
    assert (exc.status, exc.name, exc.message) == (400, "USER_BUSINESS_ERROR", "User business error.")
    assert exc.details[0]["field"] == "SENDER_BATCH_ID"
    assert exc.details[0]["issue"] == "Batch with given sender_batch_id already exists"
    assert exc.payout_batch_id == created.payout_batch_id
    assert exc.sender_batch_id == "apertur-42-2026-06"
    assert exc.debug_id
    assert control(emu, "state")["counters"]["batches_created"] == 1


def test_validation_errors_are_terminal(client: PayPalClient) -> None:
    with pytest.raises(PayPalError) as caught:
        _pay(client, "bad", PayoutItem(receiver="not-an-email", amount_cents=100, sender_item_id="x"))
    assert not isinstance(caught.value, Retryable | DuplicateBatch)
    assert (caught.value.status, caught.value.name) == (400, "VALIDATION_ERROR")
    assert caught.value.details[0]["field"] == "items[0].receiver"
    assert caught.value.refused_items() == {0}


def test_a_refusal_names_the_items_it_is_about(emu: Running, client: PayPalClient) -> None:
    good = PayoutItem(receiver="a@example.com", amount_cents=5000, sender_item_id="a")
    bad = PayoutItem(receiver="not-an-email", amount_cents=5000, sender_item_id="b")
    with pytest.raises(PayPalError) as caught:
        _pay(client, "mixed", good, bad, good.__class__(receiver="c@example.com", amount_cents=1, sender_item_id="c"))
    assert caught.value.refused_items() == {1}
    assert control(emu, "state")["counters"]["batches_created"] == 0  # nothing of the batch was created


def test_more_items_than_paypal_takes_are_refused_before_any_call(client: PayPalClient) -> None:
    items = [PayoutItem(receiver="a@example.com", amount_cents=100, sender_item_id=str(i)) for i in range(15_001)]
    with pytest.raises(ValueError, match="15,000"):
        client.create_payout(sender_batch_id="big", items=items, email_subject="s")


@pytest.mark.parametrize(
    ("status", "name"), [(500, "INTERNAL_SERVER_ERROR"), (503, "SERVICE_UNAVAILABLE"), (429, "RATE_LIMIT_REACHED")]
)
def test_5xx_and_429_are_retryable_then_the_same_id_succeeds(
    emu: Running, client: PayPalClient, status: int, name: str
) -> None:
    control(emu, "config", {"fail_next_n_with_5xx": 2, "fail_status": status})
    for _ in range(2):
        with pytest.raises(Retryable) as caught:
            _pay(client)
        assert (caught.value.status, caught.value.name) == (status, name)
        assert caught.value.retryable
    created = _pay(client)
    assert created.batch_status == "PENDING"
    assert control(emu, "state")["counters"]["batches_created"] == 1


def test_timeout_before_paypal_acts_is_retryable_and_the_retry_creates(emu: Running, client: PayPalClient) -> None:
    control(emu, "config", {"timeout_next_n": 1, "timeout_seconds": 3, "timeout_after_commit": False})
    started = time.monotonic()
    with pytest.raises(Retryable) as caught:
        _pay(client)
    assert time.monotonic() - started < 2.5  # the client's 1 s timeout, not the emulator's 3 s
    assert caught.value.name == "TIMEOUT"
    assert caught.value.status is None
    assert _pay(client).batch_status == "PENDING"  # the retry, same sender_batch_id
    assert control(emu, "state")["counters"]["batches_created"] == 1


def test_timeout_after_paypal_acted_then_retry_is_duplicate_of_that_batch(emu: Running, client: PayPalClient) -> None:
    control(emu, "config", {"timeout_next_n": 1, "timeout_seconds": 3})
    with pytest.raises(Retryable):
        _pay(client)
    with pytest.raises(DuplicateBatch) as caught:
        _pay(client)
    [batch] = control(emu, "state")["batches"]
    assert caught.value.payout_batch_id == batch["batch_header"]["payout_batch_id"]
    assert control(emu, "state")["counters"]["batches_created"] == 1


def test_force_duplicate_next_links_to_a_readable_batch(emu: Running, client: PayPalClient) -> None:
    control(emu, "config", {"force_duplicate_next": True})
    with pytest.raises(DuplicateBatch) as caught:
        _pay(client, "never-seen-before")
    assert caught.value.payout_batch_id
    batch = client.get_batch(caught.value.payout_batch_id)
    assert batch.sender_batch_id == "never-seen-before"
    assert _pay(client, "next-one").batch_status == "PENDING"  # the switch fires once


def test_connection_refused_is_retryable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        PayPalClient(f"http://127.0.0.1:{port}", "id", "secret", timeout=1.0) as client,
        pytest.raises(Retryable) as caught,
    ):
        client.access_token()
    assert caught.value.name == "CONNECTION_ERROR"


def test_a_batch_of_more_items_than_one_page_is_read_in_full(emu: Running) -> None:
    """PayPal pages a batch's items (``page_size`` at most 1,000); an item on a later page is still found. Its own
    client: the fixture's 1-second timeout (there for the timeout tests) was once too short for 2,001 items on a
    machine running both suites side by side (CI: Retryable TIMEOUT), and this test is about pages, not time."""
    items = [
        PayoutItem(receiver=f"p{i}@example.com", amount_cents=5000 + i, sender_item_id=f"s-{i}") for i in range(2001)
    ]
    with PayPalClient(emu.base_url, emu.client_id, emu.client_secret, timeout=30.0) as client:
        created = _pay(client, "paged", *items)
        batch = client.get_batch(created.payout_batch_id)
    assert [item.sender_item_id for item in batch.items] == [f"s-{i}" for i in range(2001)]
    assert batch.items[-1].amount_cents == 7000
    assert len({item.payout_item_id for item in batch.items}) == 2001


def test_unknown_batch_and_item_are_404(client: PayPalClient) -> None:
    for call in (client.get_batch, client.get_item):
        with pytest.raises(PayPalError) as caught:
            call("NOSUCHID")
        assert caught.value.status == 404
        assert not caught.value.retryable


# --- item statuses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", TRANSACTION_STATUSES)
def test_each_item_status_after_advance(emu: Running, client: PayPalClient, status: str) -> None:
    control(emu, "config", {"item_status": {"Partner@Example.com": status}})
    created = _pay(client)
    control(emu, "advance", {})
    batch = client.get_batch(created.payout_batch_id)
    [item] = batch.items
    assert item.transaction_status == status
    assert batch.batch_status == ("PROCESSING" if status == "PENDING" else "SUCCESS")
    same = client.get_item(item.payout_item_id)
    assert (same.transaction_status, same.payout_batch_id, same.amount_cents) == (status, created.payout_batch_id, 7000)
    assert same.raw["sender_batch_id"] == "apertur-42-2026-06"
    if status == "UNCLAIMED":
        assert same.error_name == "RECEIVER_UNREGISTERED"
    if status == "SUCCESS":
        assert same.transaction_id and same.error_name is None


def test_default_and_per_receiver_statuses_in_one_batch(emu: Running, client: PayPalClient) -> None:
    control(emu, "config", {"default_item_status": "UNCLAIMED", "item_status": {"b@example.com": "FAILED"}})
    a = PayoutItem(receiver="a@example.com", amount_cents=5000, sender_item_id="a")
    b = PayoutItem(receiver="b@example.com", amount_cents=12345, sender_item_id="b")
    created = _pay(client, "two", a, b)
    advanced = control(emu, "advance", {"payout_batch_id": created.payout_batch_id})
    assert len(advanced["advanced"]) == 2
    items = {i.receiver: i for i in client.get_batch(created.payout_batch_id).items}
    assert items["a@example.com"].transaction_status == "UNCLAIMED"
    assert (items["b@example.com"].transaction_status, items["b@example.com"].amount_cents) == ("FAILED", 12345)
    assert items["b@example.com"].error_name == "RECEIVER_ACCOUNT_LOCKED"


def test_single_item_moves_later_to_returned(emu: Running, client: PayPalClient) -> None:
    created = _pay(client)
    control(emu, "advance", {})
    [item] = client.get_batch(created.payout_batch_id).items
    assert item.transaction_status == "SUCCESS"
    control(emu, "advance", {"payout_item_id": item.payout_item_id, "transaction_status": "RETURNED"})
    assert client.get_item(item.payout_item_id).transaction_status == "RETURNED"


def test_denied_batch(emu: Running, client: PayPalClient) -> None:
    control(emu, "config", {"deny_next_n": 1})
    created = _pay(client)
    control(emu, "advance", {})
    batch = client.get_batch(created.payout_batch_id)
    assert batch.batch_status == "DENIED"
    assert [(i.transaction_status, i.error_name) for i in batch.items] == [("FAILED", "INSUFFICIENT_FUNDS")]


def test_get_advances_after_a_delay(emu: Running, client: PayPalClient) -> None:
    control(emu, "config", {"advance_after_seconds": 0.3})
    created = _pay(client)
    assert client.get_batch(created.payout_batch_id).batch_status == "PENDING"
    deadline = time.monotonic() + 5
    while client.get_batch(created.payout_batch_id).batch_status != "SUCCESS":
        assert time.monotonic() < deadline
        time.sleep(0.1)


# --- webhooks ---------------------------------------------------------------------------------------


def test_webhook_delivery_and_signature_verification(emu: Running, client: PayPalClient, receiver: Receiver) -> None:
    control(emu, "config", {"webhook_url": receiver.url})
    created = _pay(client)
    advanced = control(emu, "advance", {})
    assert advanced["events"] == ["PAYMENT.PAYOUTS-ITEM.SUCCEEDED", "PAYMENT.PAYOUTSBATCH.SUCCESS"]
    assert [d["status"] for d in advanced["deliveries"]] == [200, 200]
    assert len(receiver.deliveries) == 2
    (headers, body), (batch_headers, batch_body) = receiver.deliveries
    event = json.loads(body)
    assert event["event_type"] == "PAYMENT.PAYOUTS-ITEM.SUCCEEDED"
    assert event["resource_type"] == "payouts_item"
    assert event["id"].startswith("WH-")
    resource = event["resource"]
    assert resource["transaction_status"] == "SUCCESS"
    assert resource["payout_batch_id"] == created.payout_batch_id
    assert resource["payout_item"]["amount"] == {"value": "70.00", "currency": "CAD"}
    assert resource["payout_item"]["sender_item_id"] == "partner-42-2026-06"
    lowered = {k.lower() for k in headers}
    assert {
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    } <= lowered
    batch_event = json.loads(batch_body)
    assert batch_event["event_type"] == "PAYMENT.PAYOUTSBATCH.SUCCESS"
    assert batch_event["resource"]["batch_header"]["payout_batch_id"] == created.payout_batch_id

    assert client.verify_webhook_signature(headers=headers, body=body, webhook_id=DEFAULT_WEBHOOK_ID)
    assert client.verify_webhook_signature(headers=batch_headers, body=batch_body, webhook_id=DEFAULT_WEBHOOK_ID)
    tampered = body.replace(b'"SUCCESS"', b'"RETURNED"')
    assert tampered != body
    assert not client.verify_webhook_signature(headers=headers, body=tampered, webhook_id=DEFAULT_WEBHOOK_ID)
    assert not client.verify_webhook_signature(headers=headers, body=body, webhook_id="SOMEONEELSE")
    assert not client.verify_webhook_signature(headers=batch_headers, body=body, webhook_id=DEFAULT_WEBHOOK_ID)
    forged = {**headers, "PAYPAL-TRANSMISSION-SIG": "Zm9yZ2Vk"}
    assert not client.verify_webhook_signature(headers=forged, body=body, webhook_id=DEFAULT_WEBHOOK_ID)
    missing = {k: v for k, v in headers.items() if k.lower() != "paypal-transmission-sig"}
    assert not client.verify_webhook_signature(headers=missing, body=body, webhook_id=DEFAULT_WEBHOOK_ID)
    assert not client.verify_webhook_signature(headers=headers, body=b"not json", webhook_id=DEFAULT_WEBHOOK_ID)
    assert not client.verify_webhook_signature(headers=headers, body=b"\xff{", webhook_id=DEFAULT_WEBHOOK_ID)


@pytest.mark.parametrize("status", [s for s in TRANSACTION_STATUSES if s != "PENDING"])
def test_each_status_has_its_webhook_event(emu: Running, client: PayPalClient, receiver: Receiver, status: str) -> None:
    control(emu, "config", {"webhook_url": receiver.url, "default_item_status": status})
    _pay(client)
    control(emu, "advance", {})
    event = json.loads(receiver.deliveries[0][1])
    assert event["event_type"] == ITEM_EVENTS[status]
    assert event["resource"]["transaction_status"] == status


def test_auto_advance_delivers_webhooks_in_the_background(
    emu: Running, client: PayPalClient, receiver: Receiver
) -> None:
    control(emu, "config", {"webhook_url": receiver.url, "advance_after_seconds": 0})
    created = _pay(client)
    assert client.get_batch(created.payout_batch_id).batch_status == "SUCCESS"
    assert receiver.arrived.wait(5)
    headers, body = receiver.deliveries[0]
    assert client.verify_webhook_signature(headers=headers, body=body, webhook_id=DEFAULT_WEBHOOK_ID)


def test_webhook_to_an_unreachable_url_is_recorded(emu: Running, client: PayPalClient) -> None:
    control(emu, "config", {"webhook_url": "http://127.0.0.1:9/nothing"})
    _pay(client)
    [delivery, _] = control(emu, "advance", {})["deliveries"]
    assert delivery["status"] is None
    assert control(emu, "state")["webhook_deliveries"][0]["event"]["event_type"] == "PAYMENT.PAYOUTS-ITEM.SUCCEEDED"


def test_client_from_settings_uses_emulator_defaults_on_loopback(emu: Running, settings) -> None:  # type: ignore[no-untyped-def]
    from apertur.integrations.paypal.client import client_from_settings

    settings.PAYPAL_API_BASE = emu.base_url
    settings.PAYPAL_CLIENT_ID = ""
    settings.PAYPAL_CLIENT_SECRET = ""
    with client_from_settings(timeout=2) as client:
        assert client.access_token()


def test_paypal_forgets_a_sender_batch_id_after_30_days_and_pays_it_again(emu: Running, client: PayPalClient) -> None:
    """PayPal Payouts v1: a sender_batch_id "used in the last 30 days" is refused; an older one is a new batch.
    The emulator models it (by its wall clock), so the app's tests can show it never re-sends one that old."""
    import datetime as dt

    import time_machine

    start = dt.datetime(2026, 4, 15, 13, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        first = _pay(client)
    with time_machine.travel(start + dt.timedelta(days=29, hours=23), tick=False), pytest.raises(DuplicateBatch):
        _pay(client)
    with time_machine.travel(start + dt.timedelta(days=30), tick=False):
        second = _pay(client)
    assert second.payout_batch_id != first.payout_batch_id
    assert emu.emulator.counters["batches_created"] == 2


def test_the_timeout_switch_outlasts_the_clients_default_timeout(settings: Any) -> None:
    """By default the emulator's slow answer takes longer than the app's client waits, so it really times out."""
    from apertur.integrations.paypal.client import client_from_settings
    from apertur.integrations.paypal.emulator import Config

    assert Config().timeout_seconds > client_from_settings().timeout
    settings.PAYPAL_TIMEOUT_SECONDS = 0.5
    with client_from_settings() as quick:
        assert quick.timeout == 0.5
