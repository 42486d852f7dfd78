"""Stripe-shaped events, signed as Stripe signs them (``Stripe-Signature: t=…,v1=…``): what
``apertur billing simulate`` sends to a running server and what the tests deliver, so both exercise the
production path."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from itertools import count
from typing import Any

_seq = count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_seq):06d}{int(dt.datetime.now().timestamp() * 1000) % 10**9:09d}"


def new_id(prefix: str) -> str:
    """A fresh Stripe-like id (``in_…``, ``ch_…``) for objects that later events refer to."""
    return _id(prefix)


def _ts(at: dt.datetime) -> int:
    return int(at.timestamp())


def sign(payload: bytes, secret: str, at: dt.datetime | None = None) -> str:
    t = _ts(at or dt.datetime.now(tz=dt.UTC))
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


#: The API version these events are shaped after, unless one says otherwise.
API_VERSION = "2024-06-20"
#: Since this version an invoice names neither its charge nor its PaymentIntent (``invoice_payment.paid`` events
#: do), and its subscription's details moved to ``parent.subscription_details``.
BASIL = "2025-03-31.basil"


def event(
    kind: str, obj: dict[str, Any], at: dt.datetime, *, event_id: str | None = None, api_version: str = API_VERSION
) -> dict[str, Any]:
    return {
        "id": event_id or _id("evt"),
        "object": "event",
        "type": kind,
        "created": _ts(at),
        "livemode": False,
        "api_version": api_version,
        "data": {"object": obj},
    }


def customer(
    *,
    customer_id: str,
    at: dt.datetime,
    email: str | None = None,
    metadata: dict[str, str] | None = None,
    kind: str = "customer.created",
    event_id: str | None = None,
) -> dict[str, Any]:
    obj = {
        "id": customer_id,
        "object": "customer",
        "email": email,
        "created": _ts(at),
        "metadata": metadata or {},
    }
    return event(kind, obj, at, event_id=event_id)


def _items(lookup_key: str) -> dict[str, Any]:
    return {"object": "list", "data": [{"price": {"lookup_key": lookup_key, "currency": "cad"}}]}


def subscription(
    *,
    customer: str,
    lookup_key: str,
    at: dt.datetime,
    sub_id: str | None = None,
    status: str = "active",
    metadata: dict[str, str] | None = None,
    kind: str = "customer.subscription.created",
    started: dt.datetime | None = None,
    previous_lookup_key: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A subscription event sent at ``at``. As Stripe sends it, every event carries the whole subscription,
    with its own ``created``/``start_date`` (``started``, default ``at``: give it for a later event); an
    ``updated`` event that changed the price lists the old items in ``data.previous_attributes``
    (``previous_lookup_key``)."""
    obj = {
        "id": sub_id or _id("sub"),
        "object": "subscription",
        "customer": customer,
        "status": status,
        "created": _ts(started or at),
        "start_date": _ts(started or at),
        "metadata": metadata or {},
        "items": _items(lookup_key),
    }
    evt = event(kind, obj, at, event_id=event_id)
    if previous_lookup_key is not None:
        evt["data"]["previous_attributes"] = {"items": _items(previous_lookup_key)}
    return evt


def invoice_paid(
    *,
    customer: str,
    email: str,
    amount: int,
    at: dt.datetime,
    currency: str = "cad",
    invoice_id: str | None = None,
    charge_id: str | None = None,
    exchange_rate: str | None = None,
    metadata: dict[str, str] | None = None,
    subscription_metadata: dict[str, str] | None = None,
    event_id: str | None = None,
    api_version: str = API_VERSION,
) -> dict[str, Any]:
    """An ``invoice.paid`` event. With ``api_version`` :data:`BASIL` or later it has the shape of those versions:
    no ``charge`` (an ``invoice_payment.paid`` event names the payment) and the subscription's details, with
    ``subscription_metadata``, under ``parent``."""
    obj: dict[str, Any] = {
        "id": invoice_id or _id("in"),
        "object": "invoice",
        "customer": customer,
        "customer_email": email,
        "amount_paid": amount,
        "currency": currency,
        "status": "paid",
        "status_transitions": {"paid_at": _ts(at)},
        "metadata": metadata or {},
    }
    details = {"metadata": subscription_metadata or {}}
    if api_version >= BASIL:
        obj["parent"] = {"type": "subscription_details", "subscription_details": details}
    else:
        charge: Any = charge_id or _id("ch")
        if exchange_rate is not None:
            charge = {"id": charge, "balance_transaction": {"exchange_rate": exchange_rate}}
        obj["charge"] = charge
        if subscription_metadata is not None:
            obj["subscription_details"] = details
    return event("invoice.paid", obj, at, event_id=event_id, api_version=api_version)


def invoice_payment_paid(
    *,
    invoice_id: str,
    amount: int,
    at: dt.datetime,
    payment_intent: str | None = None,
    charge_id: str | None = None,
    currency: str = "cad",
    event_id: str | None = None,
) -> dict[str, Any]:
    """``invoice_payment.paid`` (API versions since :data:`BASIL`): which payment paid the invoice, a
    PaymentIntent or, for a charge made without one, the charge."""
    payment: dict[str, Any] = (
        {"type": "payment_intent", "payment_intent": payment_intent}
        if payment_intent is not None
        else {"type": "charge", "charge": charge_id}
    )
    obj = {
        "id": _id("inpay"),
        "object": "invoice_payment",
        "invoice": invoice_id,
        "amount_paid": amount,
        "amount_requested": amount,
        "currency": currency,
        "is_default": True,
        "payment": payment,
        "status": "paid",
        "status_transitions": {"paid_at": _ts(at), "canceled_at": None},
    }
    return event("invoice_payment.paid", obj, at, event_id=event_id, api_version=BASIL)


def charge_refunded(
    *,
    charge_id: str,
    invoice_id: str,
    refunds: list[tuple[str, int, dt.datetime]],
    statuses: dict[str, str] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Stripe lists every refund of the charge so far in each ``charge.refunded`` event (cumulative); each has its
    ``status`` (``succeeded`` unless ``statuses`` names another by refund id)."""
    latest = max(r[2] for r in refunds)
    status = statuses or {}
    items: list[dict[str, Any]] = [
        {"id": rid, "object": "refund", "amount": amt, "created": _ts(at), "status": status.get(rid, "succeeded")}
        for rid, amt, at in refunds
    ]
    obj = {
        "id": charge_id,
        "object": "charge",
        "invoice": invoice_id,
        "amount_refunded": sum(item["amount"] for item in items if item["status"] not in {"failed", "canceled"}),
        "refunds": {"object": "list", "data": items},
    }
    return event("charge.refunded", obj, latest, event_id=event_id)


def refund_created(
    *,
    refund_id: str,
    charge_id: str,
    amount: int,
    at: dt.datetime,
    status: str = "succeeded",
    type: str = "refund.created",
    event_at: dt.datetime | None = None,
    event_id: str | None = None,
    payment_intent: str | None = None,
) -> dict[str, Any]:
    """A refund on its own (API versions since 2022-11-15 no longer list refunds in ``charge.refunded``):
    ``refund.created``, or with ``type`` a later change (``refund.updated``, ``refund.failed``) sent at
    ``event_at``."""
    obj = {
        "id": refund_id,
        "object": "refund",
        "charge": charge_id,
        "payment_intent": payment_intent,
        "amount": amount,
        "status": status,
        "created": _ts(at),
    }
    return event(type, obj, event_at or at, event_id=event_id)


def dispute(
    *,
    charge_id: str,
    amount: int,
    at: dt.datetime,
    status: str,
    dispute_id: str,
    closed: bool,
    type: str | None = None,
    opened_at: dt.datetime | None = None,
    event_id: str | None = None,
    payment_intent: str | None = None,
) -> dict[str, Any]:
    """``charge.dispute.created`` (or ``.closed``; or ``type``, e.g. ``charge.dispute.updated``) sent at ``at``, of
    a dispute created at ``opened_at`` (default ``at``). Inquiries have the ``warning_*`` statuses."""
    obj = {
        "id": dispute_id,
        "object": "dispute",
        "charge": charge_id,
        "payment_intent": payment_intent,
        "amount": amount,
        "status": status,
        "created": _ts(opened_at or at),
    }
    kind = type or ("charge.dispute.closed" if closed else "charge.dispute.created")
    return event(kind, obj, at, event_id=event_id)


def encode(evt: dict[str, Any]) -> bytes:
    return json.dumps(evt, separators=(",", ":")).encode()
