"""Hostile input at the two inbound payment webhooks, ``POST /webhooks/stripe`` and ``POST /webhooks/paypal``, which
:mod:`tests.test_hostile_input` leaves out: its values and its "row count of every table" check, reused.

(a) Unsigned or badly signed deliveries of every hostile shape (no JSON, not UTF-8, nested 10,000 deep, over the size
limit, wrong content type, a garbled or oversized signature header): a 4xx that says why, and no row but the refused
delivery kept for inspection (Stripe's ``RejectedDelivery``, docs/commissions.md). (b) Correctly signed events carrying
hostile values where the handlers read them (ids, types, amounts, currencies, timestamps, a missing ``data.object``):
never a 5xx; a 4xx that says why, or the documented 2xx with the event stored ``failed``/``ignored``/``waiting``
(Stripe) or stored and ignored (PayPal), and then no money, ledger or payout row changed.

Each case is its own test (pytest-django rolls its transaction back), so a failure names the endpoint and the value.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client

from apertur.core import ratelimit
from apertur.integrations.paypal.emulator import Running
from apertur.integrations.stripe import events
from apertur.integrations.stripe.models import StripeEvent
from apertur.integrations.stripe.views import MAX_BODY_BYTES as STRIPE_MAX_BODY_BYTES
from apertur.payouts.webhooks import MAX_BODY_BYTES as PAYPAL_MAX_BODY_BYTES
from apertur.projects.models import ExchangeRate
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user, paypal_emulator
from tests.test_hostile_input import HOSTILE, changed, fingerprint

pytestmark = pytest.mark.django_db

SECRET = "whsec_hostile_secret"
WEBHOOK_ID = "APERTURHOSTILEWEBHOOK"
NOW = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)

# Rows a delivery may add on purpose whatever its fate: a refused Stripe delivery kept for inspection; an accepted
# event stored once by its id (also when it is stored ``failed`` or ``ignored``), and what telling staff about a
# failed one records.
REFUSAL_RECORDS = {"stripe_billing_rejecteddelivery"}
EVENT_RECORDS = {"stripe_billing_stripeevent", "payouts_paypalevent", "core_staffalert"}


# --- hostile bodies -----------------------------------------------------------------------------------------------

BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not-json", b"not json"),
    ("array", b"[1, 2]"),
    ("number", b"12345"),
    ("string", b'"evt_1"'),
    ("null", b"null"),
    ("invalid-utf8", b'{"id": "\xed\xa0\x80\xff"}'),
    ("surrogate", b'{"id": "evt_\\ud800", "type": "invoice.paid"}'),
    ("100kB-string", json.dumps({"id": "x" * 100_000}).encode()),
    ("deep-10000", b"[" * 10_000 + b"]" * 10_000),
    ("deep-100000-unclosed", b"[" * 100_000),
    ("duplicate-keys", b'{"id": "evt_1", "id": "evt_2", "type": "invoice.paid", "type": "x"}'),
    ("object-nul", b'{"id": "evt_\\u0000", "type": "\\u0000"}'),
    *((f"hostile-{name}", json.dumps({"id": value, "type": value}).encode()) for name, value in HOSTILE),
]
CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]


def said_why(response: Any) -> str:
    """ "" when a 4xx answers ``{"error": {"code", "message"}}``; what is wrong otherwise."""
    if not 400 <= response.status_code < 500:
        return f"answered {response.status_code}: {response.content[:300]!r}"
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} without an error object: {response.content[:200]!r}"
    if not (isinstance(error, dict) and error.get("code") and error.get("message")):
        return f"{response.status_code} error without code and message: {error!r}"
    return ""


def unexpected_rows(before: Any, allowed: set[str]) -> dict[str, tuple[int, int]]:
    return {table: counts for table, counts in changed(before, fingerprint()).items() if table not in allowed}


@pytest.fixture(autouse=True)
def _fresh_limits(settings: Any) -> Iterator[None]:
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.PAYPAL_WEBHOOK_ID = WEBHOOK_ID
    cache.clear()
    ratelimit.clear_process_counters()
    yield
    cache.clear()
    ratelimit.clear_process_counters()


# --- Stripe: the edge ---------------------------------------------------------------------------------------------


def stripe_signature(body: bytes, *, t: int | None = None, secret: str = SECRET) -> str:
    """``t=…,v1=…`` over ``body`` as Stripe signs: the body is decoded as the view decodes it."""
    t = int(NOW.timestamp()) if t is None else t
    payload = f"{t}.".encode() + body.decode("utf-8", errors="replace").encode()
    return f"t={t},v1={hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()}"


def post_stripe(body: bytes, signature: str | None, content_type: str = "application/json") -> Any:
    headers = {} if signature is None else {"HTTP_STRIPE_SIGNATURE": signature}
    with time_machine.travel(NOW, tick=False):
        return Client().post("/webhooks/stripe", body, content_type=content_type, **headers)


@pytest.mark.parametrize(("name", "body"), BODIES, ids=[name for name, _ in BODIES])
@pytest.mark.parametrize("signed", ["unsigned", "garbled", "signed"])
def test_stripe_hostile_body(name: str, body: bytes, signed: str) -> None:
    signature = {"unsigned": None, "garbled": "t=1,v1=00", "signed": stripe_signature(body)}[signed]
    before = fingerprint()
    response = post_stripe(body, signature)
    assert not said_why(response), said_why(response)
    assert response.json()["error"]["code"] == ("malformed_event" if signed == "signed" else "invalid_signature")
    assert not unexpected_rows(before, REFUSAL_RECORDS)


@pytest.mark.parametrize("size", ["over-ours", "over-django"])
def test_stripe_body_over_the_limit_is_a_413_in_our_json_and_not_kept(settings: Any, size: str) -> None:
    """Past Django's DATA_UPLOAD_MAX_MEMORY_SIZE it was Django's plain 400 page; now past Stripe's own limit, as
    PayPal's: 413 ``body_too_large``, not read, not kept as a refused delivery."""
    pad = STRIPE_MAX_BODY_BYTES if size == "over-ours" else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"id": "evt_big", "pad": "x" * pad}).encode()
    before = fingerprint()
    response = post_stripe(body, stripe_signature(body))
    assert response.status_code == 413, response.status_code
    assert response.json()["error"]["code"] == "body_too_large"
    assert not changed(before, fingerprint())


def _valid_event() -> dict[str, Any]:
    return events.event("customer.created", {"id": "cus_1", "object": "customer"}, NOW)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_stripe_wrong_content_type_unsigned(content_type: str) -> None:
    before = fingerprint()
    response = post_stripe(events.encode(_valid_event()), None, content_type)
    assert not said_why(response), said_why(response)
    assert not unexpected_rows(before, REFUSAL_RECORDS)


GARBLED_HEADERS: list[tuple[str, Callable[[bytes], str]]] = [
    ("empty", lambda body: ""),
    ("no-equals", lambda body: "garbage"),
    ("t-not-numeric", lambda body: stripe_signature(body).replace(f"t={int(NOW.timestamp())}", "t=abc")),
    ("t-float", lambda body: f"t={NOW.timestamp()},v1=00"),
    ("t-missing", lambda body: stripe_signature(body).split(",", 1)[1]),
    ("v1-missing", lambda body: f"t={int(NOW.timestamp())}"),
    ("far-past", lambda body: stripe_signature(body, t=0)),
    ("far-past-negative", lambda body: stripe_signature(body, t=-(10**12))),
    ("far-future-unsigned", lambda body: f"t={10**12},v1=00"),
    ("huge-t", lambda body: f"t={'9' * 5000},v1=00"),
    ("multiple-v1-all-wrong", lambda body: f"t={int(NOW.timestamp())},v1=00,v1=11,v0=22"),
    ("wrong-secret", lambda body: stripe_signature(body, secret="whsec_other")),
    ("100kB", lambda body: f"t={int(NOW.timestamp())},v1=" + "a" * 100_000),
    ("100kB-many-v1", lambda body: f"t={int(NOW.timestamp())}" + ",v1=00" * 20_000),
    ("100kB-t", lambda body: "t=" + "1" * 100_000 + ",v1=00"),
    ("nul", lambda body: "t=1\x00,v1=00"),
    ("non-ascii", lambda body: "t=１２３,v1=é"),
]


@pytest.mark.parametrize(("name", "header"), GARBLED_HEADERS, ids=[name for name, _ in GARBLED_HEADERS])
def test_stripe_garbled_signature_header(name: str, header: Callable[[bytes], str]) -> None:
    body = events.encode(_valid_event())
    before = fingerprint()
    response = post_stripe(body, header(body))
    assert not said_why(response), said_why(response)
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not unexpected_rows(before, REFUSAL_RECORDS)


def test_stripe_one_good_v1_among_several_is_accepted() -> None:
    """Stripe sends a v1 per active secret while one is rolled: a good one among others verifies."""
    body = events.encode(_valid_event())
    good = stripe_signature(body)
    response = post_stripe(body, f"{good},v1={'0' * 64},v0=ff")
    assert response.status_code == 200, response.content


# --- Stripe: signed events carrying hostile values -------------------------------------------------------------------


@pytest.fixture
def customer() -> Any:
    """An Apertur customer with a project, referred by a partner, with one payment (for refunds and disputes)."""
    partner = make_partner()
    user = make_user("customer@example.com")
    create_project(owner=user, name="Weddings")
    Attribution.objects.create(
        customer=user, partner=partner, source=AttributionSource.REFERRAL, at=NOW - dt.timedelta(days=30)
    )
    ExchangeRate.objects.create(currency="USD", date=NOW.date() - dt.timedelta(days=5), rate="1.35")
    paid = events.invoice_paid(
        customer="cus_1",
        email=user.email,
        amount=10_000,
        at=NOW - dt.timedelta(days=2),
        invoice_id="in_base",
        charge_id="ch_base",
    )
    body = events.encode(paid)
    response = post_stripe(body, stripe_signature(body))
    assert response.json()["status"] == "processed", response.content
    return user


def invoice(user: Any) -> dict[str, Any]:
    return events.invoice_paid(
        customer="cus_1", email=user.email, amount=5_000, at=NOW - dt.timedelta(hours=1), invoice_id="in_new"
    )


def refund(user: Any) -> dict[str, Any]:
    return events.refund_created(refund_id="re_1", charge_id="ch_base", amount=1_000, at=NOW - dt.timedelta(hours=1))


def dispute(user: Any) -> dict[str, Any]:
    return events.dispute(
        charge_id="ch_base",
        amount=10_000,
        at=NOW - dt.timedelta(hours=1),
        status="needs_response",
        dispute_id="dp_1",
        closed=False,
    )


MISSING = object()


def mutated(evt: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    evt = copy.deepcopy(evt)
    *parents, last = path.split(".")
    target = evt
    for key in parents:
        target = target[key]
    if value is MISSING:
        target.pop(last, None)
    else:
        target[last] = value
    return evt


# Values that carry money or time: an event holding one is never applied (4xx, or stored failed: docs/commissions.md).
BAD_AMOUNTS: list[tuple[str, Any]] = [
    ("string", "5000"),
    ("not-a-number", "abc"),
    ("negative", -5_000),
    ("huge", 10**30),
    ("bigint-edge", 2**63),
    ("float", 50.5),
    ("float-whole", 5000.0),
    ("bool", True),
    ("null", None),
    ("object", {}),
]
BAD_CURRENCIES: list[tuple[str, Any]] = [
    ("empty", ""),
    ("four-letters", "usdx"),
    ("two-letters", "us"),
    ("digits", "123"),
    ("nul", "ca\x00"),
    ("number", 124),
    ("100kB", "c" * 100_000),
    ("non-ascii", "çad"),
]
BAD_TIMES: list[tuple[str, Any]] = [
    ("string", "1773144000"),
    ("not-a-number", "yesterday"),
    ("float", 1773144000.5),
    ("far-future", 10**20),
    ("far-past", -(10**20)),
    ("bool", True),
]
MONEY_CASES: list[tuple[str, Callable[[Any], dict[str, Any]], str, Any]] = [
    *((f"invoice-amount-{n}", invoice, "data.object.amount_paid", v) for n, v in BAD_AMOUNTS),
    *((f"invoice-currency-{n}", invoice, "data.object.currency", v) for n, v in BAD_CURRENCIES),
    *((f"invoice-paid_at-{n}", invoice, "data.object.status_transitions.paid_at", v) for n, v in BAD_TIMES),
    *((f"refund-amount-{n}", refund, "data.object.amount", v) for n, v in BAD_AMOUNTS),
    *((f"refund-created-{n}", refund, "data.object.created", v) for n, v in BAD_TIMES),
    *((f"dispute-amount-{n}", dispute, "data.object.amount", v) for n, v in BAD_AMOUNTS if n != "null"),
    *((f"dispute-created-{n}", dispute, "data.object.created", v) for n, v in BAD_TIMES),
    *((f"event-created-{n}", invoice, "created", v) for n, v in BAD_TIMES),
    ("event-no-data-object", invoice, "data.object", MISSING),
    ("event-data-object-list", invoice, "data.object", []),
]


def post_signed_stripe(evt: dict[str, Any]) -> Any:
    # ensure_ascii (json.dumps' default): a lone surrogate travels as the escape "\ud800", as a client sends it
    body = json.dumps(evt).encode()
    return post_stripe(body, stripe_signature(body))


def stored_not_applied(response: Any) -> str:
    """ "" when the delivery was refused with its reason, or accepted and stored without being applied."""
    if response.status_code >= 500:
        return f"answered {response.status_code}: {response.content[:300]!r}"
    if response.status_code >= 400:
        return said_why(response)
    status = response.json().get("status")
    return "" if status in {"failed", "ignored", "waiting"} else f"applied ({status}): {response.json()!r}"


@pytest.mark.parametrize(("name", "build", "path", "value"), MONEY_CASES, ids=[c[0] for c in MONEY_CASES])
def test_stripe_signed_hostile_money(customer: Any, name: str, build: Any, path: str, value: Any) -> None:
    before = fingerprint()
    response = post_signed_stripe(mutated(build(customer), path, value))
    assert not stored_not_applied(response), stored_not_applied(response)
    assert not unexpected_rows(before, REFUSAL_RECORDS | EVENT_RECORDS)


ID_VALUES: list[tuple[str, Any]] = [*HOSTILE, ("surrogate", "\ud800"), ("number", 12345), ("array", [])]
ID_PATHS: list[tuple[str, Callable[[Any], dict[str, Any]], str]] = [
    ("event-id", invoice, "id"),
    ("event-type", invoice, "type"),
    ("invoice-id", invoice, "data.object.id"),
    ("invoice-customer", invoice, "data.object.customer"),
    ("invoice-customer_email", invoice, "data.object.customer_email"),
    ("invoice-charge", invoice, "data.object.charge"),
    ("invoice-description", invoice, "data.object.description"),
    ("refund-id", refund, "data.object.id"),
    ("refund-charge", refund, "data.object.charge"),
    ("refund-status", refund, "data.object.status"),
    ("dispute-id", dispute, "data.object.id"),
    ("dispute-status", dispute, "data.object.status"),
]
ID_CASES = [(f"{where}={n}", build, path, value) for where, build, path in ID_PATHS for n, value in ID_VALUES]


@pytest.mark.parametrize(("name", "build", "path", "value"), ID_CASES, ids=[c[0] for c in ID_CASES])
def test_stripe_signed_hostile_ids(customer: Any, name: str, build: Any, path: str, value: Any) -> None:
    """Ids and names are text Apertur stores or looks up: whatever they hold, never a 5xx; a refusal says why and
    keeps only the refused delivery."""
    before = fingerprint()
    response = post_signed_stripe(mutated(build(customer), path, value))
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert not said_why(response), said_why(response)
        assert not unexpected_rows(before, REFUSAL_RECORDS)
    else:
        assert StripeEvent.objects.filter(event_id=response.json()["id"]).exists()


# --- PayPal: the edge ---------------------------------------------------------------------------------------------


@pytest.fixture
def emu(settings: Any) -> Iterator[Running]:
    """The PayPal emulator as our PayPal: it verifies what it signed (``signed_delivery``) and nothing else."""
    with paypal_emulator(settings) as emulator:
        yield emulator


def post_paypal(body: bytes, headers: dict[str, str] | None = None, content_type: str = "application/json") -> Any:
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items() if k.lower() != "content-type"}
    return Client().post("/webhooks/paypal", body, content_type=content_type, **meta)


def paypal_event(**resource: Any) -> dict[str, Any]:
    return {
        "id": "WH-HOSTILE-1",
        "event_version": "1.0",
        "create_time": "2026-03-10T12:00:00Z",
        "resource_type": "payouts_item",
        "event_type": "PAYMENT.PAYOUTS-ITEM.SUCCEEDED",
        "summary": "A payout item has succeeded",
        "resource": {
            "payout_item_id": "ITEM-1",
            "transaction_status": "SUCCESS",
            "payout_batch_id": "BATCH-1",
            "payout_item": {"sender_item_id": "item-1", "amount": {"value": "60.00", "currency": "CAD"}},
            **resource,
        },
    }


def paypal_headers(emu: Running, evt: dict[str, Any]) -> dict[str, str]:
    return emu.emulator.signed_delivery(evt, WEBHOOK_ID)[1]


PAYPAL_BODIES = [*BODIES, ("over-limit", json.dumps({"id": "WH-BIG", "pad": "x" * PAYPAL_MAX_BODY_BYTES}).encode())]


@pytest.mark.parametrize(("name", "body"), PAYPAL_BODIES, ids=[name for name, _ in PAYPAL_BODIES])
@pytest.mark.parametrize("signed", ["unsigned", "garbled"])
def test_paypal_hostile_body(emu: Running, name: str, body: bytes, signed: str) -> None:
    headers = None if signed == "unsigned" else paypal_headers(emu, paypal_event())
    before = fingerprint()
    response = post_paypal(body, headers)
    assert not said_why(response), said_why(response)
    assert not changed(before, fingerprint())


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_paypal_wrong_content_type(emu: Running, content_type: str) -> None:
    evt = paypal_event()
    body, headers = emu.emulator.signed_delivery(evt, WEBHOOK_ID)
    before = fingerprint()
    unsigned = post_paypal(body, None, content_type)
    assert not said_why(unsigned), said_why(unsigned)
    assert not changed(before, fingerprint())
    signed = post_paypal(body, headers, content_type)  # PayPal verifies the bytes, whatever they are labelled
    assert signed.status_code == 200, signed.content


PAYPAL_GARBLED: list[tuple[str, Callable[[dict[str, str]], dict[str, str]]]] = [
    ("sig-garbled", lambda h: {**h, "PAYPAL-TRANSMISSION-SIG": "garbage"}),
    ("sig-100kB", lambda h: {**h, "PAYPAL-TRANSMISSION-SIG": "A" * 100_000}),
    ("time-not-a-time", lambda h: {**h, "PAYPAL-TRANSMISSION-TIME": "abc"}),
    ("time-far-future", lambda h: {**h, "PAYPAL-TRANSMISSION-TIME": "9999-12-31T23:59:59Z"}),
    ("time-far-past", lambda h: {**h, "PAYPAL-TRANSMISSION-TIME": "0001-01-01T00:00:00Z"}),
    ("id-missing", lambda h: {k: v for k, v in h.items() if k != "PAYPAL-TRANSMISSION-ID"}),
    ("id-100kB", lambda h: {**h, "PAYPAL-TRANSMISSION-ID": "x" * 100_000}),
    ("header-crlf-ish", lambda h: {**h, "PAYPAL-TRANSMISSION-ID": "a\tb c"}),
]


@pytest.mark.parametrize(("name", "garble"), PAYPAL_GARBLED, ids=[name for name, _ in PAYPAL_GARBLED])
def test_paypal_garbled_headers(emu: Running, name: str, garble: Callable[[dict[str, str]], dict[str, str]]) -> None:
    body, headers = emu.emulator.signed_delivery(paypal_event(), WEBHOOK_ID)
    before = fingerprint()
    response = post_paypal(body, garble(headers))
    assert not said_why(response), said_why(response)
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not changed(before, fingerprint())


# --- PayPal: verified events carrying hostile values ------------------------------------------------------------------

PAYPAL_PATHS: list[tuple[str, str]] = [
    ("event-id", "id"),
    ("event-type", "event_type"),
    ("item-id", "resource.payout_item_id"),
    ("batch-id", "resource.payout_batch_id"),
    ("sender-item-id", "resource.payout_item.sender_item_id"),
    ("resource", "resource"),
]
PAYPAL_CASES = [
    (f"{where}={n}", path, value)
    for where, path in PAYPAL_PATHS
    for n, value in [*ID_VALUES, ("missing", MISSING), ("null", None), ("huge", 10**30), ("float", 1.5)]
]


@pytest.mark.parametrize(("name", "path", "value"), PAYPAL_CASES, ids=[c[0] for c in PAYPAL_CASES])
def test_paypal_verified_hostile_values(emu: Running, name: str, path: str, value: Any) -> None:
    """What PayPal verified is stored once and applied, or refused with its reason: never a 5xx, and no payout
    row for an event about no payout of ours."""
    body, headers = emu.emulator.signed_delivery(mutated(paypal_event(), path, value), WEBHOOK_ID)
    before = fingerprint()
    response = post_paypal(body, headers)
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        assert not said_why(response), said_why(response)
        assert not changed(before, fingerprint())
    else:
        assert response.json()["status"] in {"ignored", "received"}, response.content
        assert not unexpected_rows(before, EVENT_RECORDS)
