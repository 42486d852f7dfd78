"""A local PayPal Payouts emulator: the endpoints and JSON of PayPal's REST API that Apertur uses, served by
the standard library (no Django), with in-memory state and switches for every failure mode.

PayPal's endpoints::

    POST /v1/oauth2/token                          Basic auth + grant_type=client_credentials
    POST /v1/payments/payouts                      create a batch (deduplicated by sender_batch_id)
    GET  /v1/payments/payouts/{payout_batch_id}    batch header + items (page, page_size, total_required)
    GET  /v1/payments/payouts-item/{payout_item_id}
    POST /v1/payments/payouts-item/{payout_item_id}/cancel   an UNCLAIMED item → RETURNED
    POST /v1/notifications/verify-webhook-signature

Emulator controls (JSON in, JSON out; no auth, loopback only by default)::

    GET  /emulator/state     config, batches, webhook deliveries, counters
    POST /emulator/config    merge switches (see ``Config``), e.g. {"fail_next_n_with_5xx": 2}
    POST /emulator/advance   move PENDING items to their final status and deliver webhooks; or
                             {"payout_item_id": "...", "transaction_status": "RETURNED"} for one item
    POST /emulator/reset     forget every batch, token and switch

Items start ``PENDING``; ``/emulator/advance`` (or a GET once ``advance_after_seconds`` have passed) moves
them to ``item_status[receiver]`` or ``default_item_status``. When ``webhook_url`` is set, each change is
POSTed there as a PayPal-shaped event (``PAYMENT.PAYOUTS-ITEM.SUCCEEDED``…, then
``PAYMENT.PAYOUTSBATCH.SUCCESS``) with PayPal's ``PAYPAL-TRANSMISSION-*`` headers. The signature is an HMAC
with a key known only to this process, so verify-webhook-signature answers ``SUCCESS`` exactly for events
this emulator sent, unmodified, to the given ``webhook_id``.

Run it with ``apertur paypal-emulator [--host H] [--port P]`` or
``python -m apertur.integrations.paypal.emulator --port P``; in tests, ``with running() as emu: emu.base_url``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_CLIENT_ID = "emulator-client"
DEFAULT_CLIENT_SECRET = "emulator-secret"
DEFAULT_WEBHOOK_ID = "EMULATORWEBHOOK01"
DEFAULT_PORT = 8002

ITEM_STATUSES = ("SUCCESS", "FAILED", "PENDING", "UNCLAIMED", "RETURNED", "ONHOLD", "BLOCKED", "REFUNDED", "REVERSED")
#: transaction_status → webhook event type. PayPal's documented payouts events are SUCCEEDED, FAILED, HELD,
#: BLOCKED, REFUNDED, RETURNED, UNCLAIMED, CANCELED and DENIED; REVERSED is not in that table, but
#: integrations subscribe to PAYMENT.PAYOUTS-ITEM.REVERSED, so the emulator sends it.
ITEM_EVENTS = {
    "SUCCESS": "PAYMENT.PAYOUTS-ITEM.SUCCEEDED",
    "FAILED": "PAYMENT.PAYOUTS-ITEM.FAILED",
    "UNCLAIMED": "PAYMENT.PAYOUTS-ITEM.UNCLAIMED",
    "RETURNED": "PAYMENT.PAYOUTS-ITEM.RETURNED",
    "ONHOLD": "PAYMENT.PAYOUTS-ITEM.HELD",
    "BLOCKED": "PAYMENT.PAYOUTS-ITEM.BLOCKED",
    "REFUNDED": "PAYMENT.PAYOUTS-ITEM.REFUNDED",
    "REVERSED": "PAYMENT.PAYOUTS-ITEM.REVERSED",
}
# The item errors PayPal reports for these statuses (RECEIVER_UNREGISTERED seen on unclaimed sandbox items).
_ITEM_ERRORS = {
    "UNCLAIMED": ("RECEIVER_UNREGISTERED", "Receiver is unregistered"),
    "RETURNED": ("RECEIVER_UNREGISTERED", "Receiver is unregistered"),
    "FAILED": ("RECEIVER_ACCOUNT_LOCKED", "Receiver's account is locked or inactive"),
}
_DENIED_ERROR = ("INSUFFICIENT_FUNDS", "Sender does not have sufficient funds.")
_NO_TRANSACTION = {"PENDING", "FAILED", "BLOCKED"}
_INFO_LINK = "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors"
_AMOUNT = re.compile(r"^[0-9]{1,10}(\.[0-9]{1,2})?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_TIMEOUT_SECONDS = 30.0
_MAX_BODY = 5_000_000
#: PayPal deduplicates a sender_batch_id "used in the last 30 days" (Payouts v1, create batch payout): an older one
#: is forgotten and a create with it makes a new batch. Measured on the wall clock (time.time), which tests move.
SENDER_BATCH_ID_MEMORY = 30 * 24 * 3600.0


@dataclass
class Config:
    """The switches ``POST /emulator/config`` sets (keys merge; ``item_status`` merges per receiver)."""

    fail_next_n_with_5xx: int = 0  # the next N /v1/payments/* requests answer fail_status
    fail_status: int = 500  # 500, 502, 503, 504 or 429
    timeout_next_n: int = 0  # the next N /v1/payments/* requests sleep timeout_seconds before answering
    # Longer than the app's client timeout (PAYPAL_TIMEOUT_SECONDS, 10 s by default), so the switch really times it
    # out; tests set a shorter client timeout (or a shorter delay). Capped at 30.
    timeout_seconds: float = 15.0
    timeout_after_commit: bool = True  # a slow create still creates the batch (the dangerous case)
    force_duplicate_next: bool = False  # the next create answers the duplicate error (the batch is created
    # silently first, as if an earlier attempt had succeeded unseen: the error's link leads to it)
    deny_next_n: int = 0  # the next N created batches become DENIED when advanced (items FAILED)
    # The next N creates are answered 201 with the batch already DENIED (items FAILED): PayPal's preliminary checks
    # ("If the payout passes preliminary checks, the status is PENDING", payout_header.batch_status) refused it.
    deny_at_create_next_n: int = 0
    default_item_status: str = "SUCCESS"
    item_status: dict[str, str] = field(default_factory=dict)  # receiver email (lower case) → status
    advance_after_seconds: float | None = None  # a GET advances batches older than this
    webhook_url: str | None = None
    webhook_id: str = DEFAULT_WEBHOOK_ID
    token_ttl_seconds: int = 32400


@dataclass
class _Item:
    payout_item_id: str
    receiver: str
    value: str
    currency: str
    sender_item_id: str
    note: str
    recipient_type: str
    status: str = "PENDING"
    transaction_id: str | None = None
    time_processed: str | None = None


@dataclass
class _Batch:
    payout_batch_id: str
    sender_batch_header: dict[str, Any]
    items: list[_Item]
    time_created: str
    created_at: float
    status: str = "PENDING"
    deny: bool = False
    time_completed: str | None = None


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _paypal_id(length: int = 13) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _debug_id() -> str:
    return secrets.token_hex(7)[:13]


def _canonical(event: Any) -> bytes:
    # surrogatepass: an event may carry a lone surrogate (escaped in JSON); it raised UnicodeEncodeError here, a 500
    # where PayPal answers SUCCESS or FAILURE (and the webhook answered 503 instead of refusing the delivery).
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


class Emulator:
    """State and behaviour, independent of HTTP (``handle`` maps a request to a response)."""

    def __init__(self, *, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.base_url = ""
        self.stopping = threading.Event()
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.config = Config()
        self.batches: dict[str, _Batch] = {}
        self.by_sender: dict[str, str] = {}
        self.sender_used_at: dict[str, float] = {}  # sender_batch_id → when it was first used (time.time())
        self.items: dict[str, tuple[str, int]] = {}  # payout_item_id → (payout_batch_id, index)
        self.tokens: dict[str, float] = {}  # access token → expiry (monotonic)
        self.deliveries: list[dict[str, Any]] = []
        self.counters = {
            "tokens_issued": 0,
            "create_requests": 0,
            "batches_created": 0,
            "webhooks_sent": 0,
            "items_cancelled": 0,
        }

    # --- wire shapes -----------------------------------------------------------------------------------

    def _link(self, path: str, rel: str, method: str = "GET") -> dict[str, str]:
        return {"href": f"{self.base_url}{path}", "rel": rel, "method": method, "encType": "application/json"}

    def _header_json(self, batch: _Batch) -> dict[str, Any]:
        total = sum(Decimal(item.value) for item in batch.items)
        currency = batch.items[0].currency if batch.items else "USD"
        header: dict[str, Any] = {
            "payout_batch_id": batch.payout_batch_id,
            "batch_status": batch.status,
            "time_created": batch.time_created,
            "sender_batch_header": batch.sender_batch_header,
            "funding_source": "BALANCE",
            "amount": {"currency": currency, "value": f"{total:.2f}"},
            "fees": {"currency": currency, "value": "0.00"},
        }
        if batch.time_completed:
            header["time_completed"] = batch.time_completed
        return header

    def _item_json(self, batch: _Batch, item: _Item, *, standalone: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"payout_item_id": item.payout_item_id}
        if item.transaction_id:
            data["transaction_id"] = item.transaction_id
        data["transaction_status"] = item.status
        data["payout_item_fee"] = {"currency": item.currency, "value": "0.00"}
        data["payout_batch_id"] = batch.payout_batch_id
        if standalone:
            data["sender_batch_id"] = batch.sender_batch_header.get("sender_batch_id", "")
        payout_item: dict[str, Any] = {
            "recipient_type": item.recipient_type,
            "amount": {"value": item.value, "currency": item.currency},
            "receiver": item.receiver,
            "recipient_wallet": "PAYPAL",
        }
        if item.note:
            payout_item["note"] = item.note
        if item.sender_item_id:
            payout_item["sender_item_id"] = item.sender_item_id
        data["payout_item"] = payout_item
        if item.time_processed:
            data["time_processed"] = item.time_processed
        error = _DENIED_ERROR if batch.status == "DENIED" else _ITEM_ERRORS.get(item.status)
        if error is not None:
            data["errors"] = {"name": error[0], "message": error[1], "information_link": _INFO_LINK}
        data["links"] = [
            self._link(f"/v1/payments/payouts-item/{item.payout_item_id}", "item" if not standalone else "self"),
            self._link(f"/v1/payments/payouts/{batch.payout_batch_id}", "batch"),
        ]
        return data

    @staticmethod
    def _error(status: int, name: str, message: str, **extra: Any) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {
            "name": name,
            "message": message,
            "debug_id": _debug_id(),
            "information_link": _INFO_LINK,
        }
        body.update(extra)
        return status, body

    # --- dispatch ----------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> Reply:
        if path.startswith("/emulator/"):
            return Reply(*self._control(method, path, body))
        if method == "POST" and path == "/v1/oauth2/token":
            return Reply(*self._token(headers, body))
        if path.startswith("/v1/"):
            if not self._authorized(headers):
                return Reply(
                    *self._error(
                        401,
                        "AUTHENTICATION_FAILURE",
                        "Authentication failed due to missing authorization header, or invalid authentication "
                        "credentials.",
                    )
                )
            if path.startswith("/v1/payments/"):
                injected = self._inject_failure(method, path, body)
                if injected is not None:
                    return injected
            return Reply(*self._api(method, path, query, body))
        return Reply(*self._error(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist."))

    def _inject_failure(self, method: str, path: str, body: bytes) -> Reply | None:
        with self._lock:
            cfg = self.config
            if cfg.fail_next_n_with_5xx > 0:
                cfg.fail_next_n_with_5xx -= 1
                status = cfg.fail_status
                if status == 429:
                    return Reply(
                        *self._error(429, "RATE_LIMIT_REACHED", "Too many requests. Blocked due to rate limiting.")
                    )
                names = {503: ("SERVICE_UNAVAILABLE", "Service Unavailable.")}
                name, message = names.get(status, ("INTERNAL_SERVER_ERROR", "An internal server error occurred."))
                return Reply(*self._error(status, name, message))
            if cfg.timeout_next_n > 0:
                cfg.timeout_next_n -= 1
                delay = max(0.0, min(float(cfg.timeout_seconds), _MAX_TIMEOUT_SECONDS))
                after = cfg.timeout_after_commit
            else:
                return None
        if after:
            status, data = self._api(method, path, {}, body)
            return Reply(status, data, delay_before=delay)
        # Sleep first, then act: the client has given up by then, but the request still happens late.
        self.stopping.wait(delay)
        return Reply(*self._api(method, path, {}, body))

    # --- OAuth -----------------------------------------------------------------------------------------

    def _token(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        auth = headers.get("Authorization", "")
        scheme, _, encoded = auth.partition(" ")
        client_id = secret = None
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = None
        ok = (
            client_id is not None
            and secret is not None
            and hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(secret.encode(), self.client_secret.encode())
        )
        if not ok:
            return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
        form = parse_qs(body.decode("utf-8", errors="replace"))
        grant = (form.get("grant_type") or [""])[0]
        if not grant:
            return 400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}
        if grant != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": f"Grant Type {grant} is not supported"}
        token = "A21AA" + secrets.token_urlsafe(48)
        with self._lock:
            ttl = int(self.config.token_ttl_seconds)
            self.tokens[token] = time.monotonic() + ttl
            self.counters["tokens_issued"] += 1
        return 200, {
            "scope": "https://uri.paypal.com/services/payments/payouts https://uri.paypal.com/services/applications/webhooks",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-EMULATOR0000000",
            "expires_in": ttl,
            "nonce": f"{_now_iso()}{secrets.token_urlsafe(16)}",
        }

    def _authorized(self, headers: Any) -> bool:
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        with self._lock:
            expiry = self.tokens.get(token)
            return expiry is not None and time.monotonic() < expiry

    # --- PayPal API --------------------------------------------------------------------------------------

    def _api(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/payments/payouts":
            return self._create(body)
        if method == "GET" and path.startswith("/v1/payments/payouts/"):
            return self._get_batch(path.removeprefix("/v1/payments/payouts/"), query)
        if method == "POST" and path.startswith("/v1/payments/payouts-item/") and path.endswith("/cancel"):
            return self._cancel_item(path.removeprefix("/v1/payments/payouts-item/").removesuffix("/cancel"))
        if method == "GET" and path.startswith("/v1/payments/payouts-item/"):
            return self._get_item(path.removeprefix("/v1/payments/payouts-item/"))
        if method == "POST" and path == "/v1/notifications/verify-webhook-signature":
            return self._verify(body)
        return self._error(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.")

    def _validation_error(self, details: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
        return self._error(400, "VALIDATION_ERROR", "Invalid request - see details", details=details, links=[])

    def _create(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            data = json.loads(body)
        except ValueError:
            return self._error(400, "MALFORMED_REQUEST", "Incoming JSON request does not map to API request")
        if not isinstance(data, dict):
            return self._error(400, "MALFORMED_REQUEST", "Incoming JSON request does not map to API request")
        header = data.get("sender_batch_header")
        items = data.get("items")
        problems: list[dict[str, str]] = []
        if not isinstance(header, dict):
            problems.append({"field": "sender_batch_header", "location": "body", "issue": "Required field is missing"})
            header = {}
        if not isinstance(items, list) or not items:
            problems.append({"field": "items", "location": "body", "issue": "Required field is missing"})
            items = []
        if len(items) > 15000:
            problems.append({"field": "items", "location": "body", "issue": "Batch size exceeds 15000 items"})
        parsed: list[_Item] = []
        seen_item_ids: set[str] = set()
        for i, raw in enumerate(items):
            if not isinstance(raw, dict):
                problems.append({"field": f"items[{i}]", "location": "body", "issue": "Invalid item"})
                continue
            rtype = str(raw.get("recipient_type") or header.get("recipient_type") or "")
            amount_raw = raw.get("amount")
            amount: dict[str, Any] = amount_raw if isinstance(amount_raw, dict) else {}
            value, currency = str(amount.get("value", "")), str(amount.get("currency", ""))
            receiver = str(raw.get("receiver", ""))
            sender_item_id = str(raw.get("sender_item_id", ""))
            if rtype not in {"EMAIL", "PHONE", "PAYPAL_ID"}:
                problems.append(
                    {"field": f"items[{i}].recipient_type", "location": "body", "issue": "Invalid recipient type"}
                )
            if not _AMOUNT.match(value) or Decimal(value or "0") <= 0:
                problems.append({"field": f"items[{i}].amount.value", "location": "body", "issue": "Invalid amount"})
            if not re.fullmatch(r"[A-Z]{3}", currency):
                problems.append(
                    {"field": f"items[{i}].amount.currency", "location": "body", "issue": "Invalid currency"}
                )
            if not receiver or (rtype == "EMAIL" and not _EMAIL.match(receiver)):
                problems.append(
                    {
                        "field": f"items[{i}].receiver",
                        "location": "body",
                        "issue": "Receiver is invalid or does not match with type",
                    }
                )
            if sender_item_id and sender_item_id in seen_item_ids:
                problems.append({"field": f"items[{i}].sender_item_id", "location": "body", "issue": "DUPLICATE_ITEM"})
            seen_item_ids.add(sender_item_id)
            parsed.append(
                _Item(
                    payout_item_id=_paypal_id(),
                    receiver=receiver,
                    value=value,
                    currency=currency,
                    sender_item_id=sender_item_id,
                    note=str(raw.get("note", "")),
                    recipient_type=rtype,
                )
            )
        if problems:
            return self._validation_error(problems)
        sender_batch_id = str(header.get("sender_batch_id") or "")
        with self._lock:
            self.counters["create_requests"] += 1
            existing = self.by_sender.get(sender_batch_id) if sender_batch_id else None
            used = self.sender_used_at.get(sender_batch_id, 0.0)
            if existing is not None and time.time() - used >= SENDER_BATCH_ID_MEMORY:
                existing = None  # PayPal's 30 days are over: the id is new again (the old batch stays)
            if existing is None and self.config.force_duplicate_next:
                # As if an earlier attempt had created the batch and its answer was lost.
                existing = self._store(header, parsed).payout_batch_id
            self.config.force_duplicate_next = False
            if existing is not None:
                return self._error(
                    400,
                    "USER_BUSINESS_ERROR",
                    "User business error.",
                    details=[
                        {
                            "field": "SENDER_BATCH_ID",
                            "location": "body",
                            "issue": "Batch with given sender_batch_id already exists",
                            "link": [self._link(f"/v1/payments/payouts/{existing}", "self")],
                        }
                    ],
                    links=[],
                )
            batch = self._store(header, parsed)
            if self.config.deny_at_create_next_n > 0:
                self.config.deny_at_create_next_n -= 1
                batch.status = "DENIED"
                for item in batch.items:
                    item.status = "FAILED"
                    item.time_processed = _now_iso()
            return 201, {
                "batch_header": {
                    "payout_batch_id": batch.payout_batch_id,
                    "batch_status": batch.status,
                    "sender_batch_header": batch.sender_batch_header,
                },
                "links": [self._link(f"/v1/payments/payouts/{batch.payout_batch_id}", "self")],
            }

    def _store(self, header: dict[str, Any], items: list[_Item]) -> _Batch:
        """Called with the lock held."""
        batch_id = _paypal_id()
        batch = _Batch(
            payout_batch_id=batch_id,
            sender_batch_header={k: v for k, v in header.items() if isinstance(v, str)},
            items=items,
            time_created=_now_iso(),
            created_at=time.monotonic(),
            deny=self.config.deny_next_n > 0,
        )
        if batch.deny:
            self.config.deny_next_n -= 1
        self.batches[batch_id] = batch
        sender_batch_id = batch.sender_batch_header.get("sender_batch_id")
        if sender_batch_id:
            self.by_sender[sender_batch_id] = batch_id
            self.sender_used_at[sender_batch_id] = time.time()
        for index, item in enumerate(items):
            self.items[item.payout_item_id] = (batch_id, index)
        self.counters["batches_created"] += 1
        return batch

    def _auto_advance(self) -> None:
        after = self.config.advance_after_seconds
        if after is None:
            return
        now = time.monotonic()
        due = [
            b.payout_batch_id for b in self.batches.values() if b.status == "PENDING" and now - b.created_at >= after
        ]
        events: list[dict[str, Any]] = []
        for batch_id in due:
            events.extend(self._advance_batch(self.batches[batch_id]))
        if events:
            # Not from this request's thread: the receiver may call back into this emulator.
            threading.Thread(target=self._deliver, args=(events,), daemon=True).start()

    def _get_batch(self, batch_id: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._auto_advance()
            batch = self.batches.get(batch_id)
            if batch is None:
                return self._error(404, "INVALID_RESOURCE_ID", "Requested resource ID was not found.")
            try:
                page = max(1, int((query.get("page") or ["1"])[0]))
                size = min(1000, max(1, int((query.get("page_size") or ["1000"])[0])))
            except ValueError:
                return self._validation_error([{"field": "page", "location": "query", "issue": "Invalid value"}])
            chunk = batch.items[(page - 1) * size : page * size]
            data: dict[str, Any] = {
                "batch_header": self._header_json(batch),
                "items": [self._item_json(batch, item, standalone=False) for item in chunk],
                "links": [self._link(f"/v1/payments/payouts/{batch_id}?page={page}&page_size={size}", "self")],
            }
            if (query.get("total_required") or ["false"])[0] == "true":
                data["total_items"] = len(batch.items)
                data["total_pages"] = max(1, -(-len(batch.items) // size))
            return 200, data

    def _get_item(self, item_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._auto_advance()
            where = self.items.get(item_id)
            if where is None:
                return self._error(404, "INVALID_RESOURCE_ID", "Requested resource ID was not found.")
            batch = self.batches[where[0]]
            return 200, self._item_json(batch, batch.items[where[1]], standalone=True)

    def _cancel_item(self, item_id: str) -> tuple[int, dict[str, Any]]:
        """PayPal cancels only unclaimed items; the money returns to the sender and the item is RETURNED."""
        with self._lock:
            where = self.items.get(item_id)
            if where is None:
                return self._error(404, "INVALID_RESOURCE_ID", "Requested resource ID was not found.")
            batch = self.batches[where[0]]
            item = batch.items[where[1]]
            if item.status != "UNCLAIMED":
                return self._error(
                    400,
                    "ITEM_ALREADY_PROCESSED",
                    "Payout item cannot be cancelled: only an UNCLAIMED item can be cancelled.",
                )
            event = self._set_status(batch, item, "RETURNED")
            self.counters["items_cancelled"] += 1
            data = self._item_json(batch, item, standalone=True)
        if event is not None:
            threading.Thread(target=self._deliver, args=([event],), daemon=True).start()
        return 200, data

    # --- lifecycle and webhooks ------------------------------------------------------------------------------

    def _set_status(self, batch: _Batch, item: _Item, status: str) -> dict[str, Any] | None:
        """Called with the lock held; returns the webhook event for the change, if any."""
        item.status = status
        item.time_processed = _now_iso()
        if status not in _NO_TRANSACTION and item.transaction_id is None:
            item.transaction_id = _paypal_id(17)
        if status == "PENDING":
            return None
        return self._event(ITEM_EVENTS[status], "payouts_item", self._item_json(batch, item, standalone=True), status)

    def _settle_batch(self, batch: _Batch) -> list[dict[str, Any]]:
        if batch.status in {"DENIED", "CANCELED"}:
            return []
        previous = batch.status
        batch.status = "PROCESSING" if any(i.status == "PENDING" for i in batch.items) else "SUCCESS"
        if batch.status == previous:
            return []
        if batch.status == "SUCCESS":
            batch.time_completed = _now_iso()
        return [self._batch_event(batch)]

    def _batch_event(self, batch: _Batch) -> dict[str, Any]:
        resource = {
            "batch_header": self._header_json(batch),
            "links": [self._link(f"/v1/payments/payouts/{batch.payout_batch_id}", "self")],
        }
        return self._event(f"PAYMENT.PAYOUTSBATCH.{batch.status}", "payouts", resource, batch.status)

    def _advance_batch(self, batch: _Batch) -> list[dict[str, Any]]:
        """Called with the lock held: every PENDING item to its configured final status."""
        if batch.deny and batch.status == "PENDING":
            for item in batch.items:
                item.status = "FAILED"
                item.time_processed = _now_iso()
            batch.status = "DENIED"
            return [self._batch_event(batch)]
        events: list[dict[str, Any]] = []
        for item in batch.items:
            if item.status == "PENDING":
                target = self.config.item_status.get(item.receiver.lower(), self.config.default_item_status)
                event = self._set_status(batch, item, target)
                if event is not None:
                    events.append(event)
        return events + self._settle_batch(batch)

    def _event(self, event_type: str, resource_type: str, resource: dict[str, Any], status: str) -> dict[str, Any]:
        event_id = f"WH-{_paypal_id(17)}-{_paypal_id(17)}"
        kind = "payout item" if resource_type == "payouts_item" else "payout batch"
        return {
            "id": event_id,
            "event_version": "1.0",
            "create_time": _now_iso(),
            "resource_type": resource_type,
            "resource_version": "1.0",
            "event_type": event_type,
            "summary": f"A {kind} is {status.lower()}",
            "resource": resource,
            "links": [
                self._link(f"/v1/notifications/webhooks-events/{event_id}", "self"),
                self._link(f"/v1/notifications/webhooks-events/{event_id}/resend", "resend", "POST"),
            ],
        }

    def _signature(self, transmission_id: str, transmission_time: str, webhook_id: str, event: Any) -> str:
        message = "|".join(
            [transmission_id, transmission_time, webhook_id, hashlib.sha256(_canonical(event)).hexdigest()]
        )
        return base64.b64encode(hmac.new(self._signing_key, message.encode(), hashlib.sha256).digest()).decode()

    def signed_delivery(self, event: dict[str, Any], webhook_id: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers PayPal would POST for ``event`` (public so tests can build deliveries)."""
        transmission_id = str(secrets.token_hex(16))
        transmission_time = _now_iso()
        body = json.dumps(event).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PayPal/AUHD-214.0-58725474",
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "PAYPAL-CERT-URL": f"{self.base_url}/v1/notifications/certs/CERT-EMULATOR",
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": self._signature(transmission_id, transmission_time, webhook_id, event),
        }
        return body, headers

    def _deliver(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            url, webhook_id = self.config.webhook_url, self.config.webhook_id
        results: list[dict[str, Any]] = []
        if not url:
            return results
        for event in events:
            body, headers = self.signed_delivery(event, webhook_id)
            result: dict[str, Any] = {"event_id": event["id"], "event_type": event["event_type"], "url": url}
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) checked in config
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    result["status"] = response.status
            except urllib.error.HTTPError as exc:
                result["status"] = exc.code
            except (OSError, ValueError) as exc:
                result["status"] = None
                result["error"] = str(exc) or type(exc).__name__
            results.append(result)
            with self._lock:
                self.deliveries.append({**result, "event": event})
                self.counters["webhooks_sent"] += 1
        return results

    def _verify(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            data = json.loads(body)
        except ValueError:
            return self._error(400, "MALFORMED_REQUEST", "Incoming JSON request does not map to API request")
        required = ("auth_algo", "cert_url", "transmission_id", "transmission_sig", "transmission_time", "webhook_id")
        if not isinstance(data, dict) or not isinstance(data.get("webhook_event"), dict):
            return self._validation_error(
                [{"field": "webhook_event", "location": "body", "issue": "MISSING_REQUIRED_PARAMETER"}]
            )
        missing = [name for name in required if not isinstance(data.get(name), str) or not data[name]]
        if missing:
            return self._validation_error(
                [{"field": name, "location": "body", "issue": "MISSING_REQUIRED_PARAMETER"} for name in missing]
            )
        expected = self._signature(
            data["transmission_id"], data["transmission_time"], data["webhook_id"], data["webhook_event"]
        )
        ok = hmac.compare_digest(expected.encode(), str(data["transmission_sig"]).encode())
        return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}

    # --- controls ----------------------------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path == "/emulator/state":
            return 200, self.state()
        if method != "POST":
            return 405, {"error": "method_not_allowed"}
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError:
            return 400, {"error": "invalid_json"}
        if not isinstance(data, dict):
            return 400, {"error": "invalid_json", "message": "Send a JSON object."}
        if path == "/emulator/config":
            return self.configure(data)
        if path == "/emulator/advance":
            return self.advance(data)
        if path == "/emulator/reset":
            with self._lock:
                self._reset()
            return 200, {"reset": True}
        return 404, {"error": "not_found"}

    def configure(self, changes: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        known = {f.name: f for f in fields(Config)}
        unknown = sorted(set(changes) - set(known))
        if unknown:
            return 400, {
                "error": "unknown_switch",
                "message": f"Unknown switches: {', '.join(unknown)}",
                "known": sorted(known),
            }
        with self._lock:
            candidate = Config(**{**asdict(self.config)})
            for key, value in changes.items():
                if key == "item_status":
                    if not isinstance(value, dict):
                        return 400, {
                            "error": "invalid_value",
                            "message": "item_status maps receiver emails to statuses.",
                        }
                    merged = dict(candidate.item_status)
                    for receiver, status in value.items():
                        if status is None:
                            merged.pop(str(receiver).lower(), None)
                        else:
                            merged[str(receiver).lower()] = status
                    candidate.item_status = merged
                else:
                    setattr(candidate, key, value)
            problem = _check_config(candidate)
            if problem:
                return 400, {"error": "invalid_value", "message": problem}
            self.config = candidate
            return 200, {"config": asdict(candidate)}

    def advance(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """All PENDING items (or one batch's with ``payout_batch_id``) to their configured final status, or one
        item to ``transaction_status`` (e.g. SUCCESS, later RETURNED or REVERSED); then deliver webhooks."""
        item_id = data.get("payout_item_id")
        batch_id = data.get("payout_batch_id")
        events: list[dict[str, Any]] = []
        changed: list[str] = []
        with self._lock:
            if item_id is not None:
                status = data.get("transaction_status")
                if status not in ITEM_STATUSES:
                    return 400, {
                        "error": "invalid_value",
                        "message": f"transaction_status must be one of {ITEM_STATUSES}",
                    }
                where = self.items.get(str(item_id))
                if where is None:
                    return 404, {"error": "not_found", "message": f"No payout item {item_id}."}
                batch = self.batches[where[0]]
                event = self._set_status(batch, batch.items[where[1]], str(status))
                events.extend([event] if event else [])
                events.extend(self._settle_batch(batch))
                changed.append(str(item_id))
            else:
                if batch_id is not None and batch_id not in self.batches:
                    return 404, {"error": "not_found", "message": f"No payout batch {batch_id}."}
                targets = [self.batches[batch_id]] if batch_id is not None else list(self.batches.values())
                for batch in targets:
                    pending = [i.payout_item_id for i in batch.items if i.status == "PENDING"]
                    if pending or batch.status == "PENDING":
                        events.extend(self._advance_batch(batch))
                        changed.extend(pending)
        deliveries = self._deliver(events)
        return 200, {"advanced": changed, "events": [e["event_type"] for e in events], "deliveries": deliveries}

    def state(self) -> dict[str, Any]:
        with self._lock:
            batches = []
            for batch in self.batches.values():
                batches.append(
                    {
                        "batch_header": self._header_json(batch),
                        "items": [self._item_json(batch, item, standalone=True) for item in batch.items],
                    }
                )
            return {
                "base_url": self.base_url,
                "config": asdict(self.config),
                "counters": dict(self.counters),
                "batches": batches,
                "webhook_deliveries": [dict(d) for d in self.deliveries],
            }


def _check_config(cfg: Config) -> str | None:
    for name in ("fail_next_n_with_5xx", "timeout_next_n", "deny_next_n", "deny_at_create_next_n"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000:
            return f"{name} must be an integer from 0 to 1000."
    if cfg.fail_status not in {500, 502, 503, 504, 429}:
        return "fail_status must be 500, 502, 503, 504 or 429."
    if not isinstance(cfg.timeout_seconds, int | float) or not 0 <= cfg.timeout_seconds <= _MAX_TIMEOUT_SECONDS:
        return f"timeout_seconds must be a number from 0 to {_MAX_TIMEOUT_SECONDS:g}."
    for name in ("timeout_after_commit", "force_duplicate_next"):
        if not isinstance(getattr(cfg, name), bool):
            return f"{name} must be true or false."
    statuses = [cfg.default_item_status, *cfg.item_status.values()]
    bad = [s for s in statuses if s not in ITEM_STATUSES]
    if bad:
        return f"Item statuses must be among {', '.join(ITEM_STATUSES)}, not {bad[0]!r}."
    if cfg.advance_after_seconds is not None and (
        not isinstance(cfg.advance_after_seconds, int | float) or cfg.advance_after_seconds < 0
    ):
        return "advance_after_seconds must be null or a number of seconds."
    if cfg.webhook_url is not None and (
        not isinstance(cfg.webhook_url, str) or urlsplit(cfg.webhook_url).scheme not in {"http", "https"}
    ):
        return "webhook_url must be null or an http(s) URL."
    if not isinstance(cfg.webhook_id, str) or not re.fullmatch(r"[A-Za-z0-9]{1,50}", cfg.webhook_id):
        return "webhook_id must be 1 to 50 letters and digits."
    if (
        not isinstance(cfg.token_ttl_seconds, int)
        or isinstance(cfg.token_ttl_seconds, bool)
        or cfg.token_ttl_seconds < 1
    ):
        return "token_ttl_seconds must be a positive integer."
    return None


# --- HTTP ------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    delay_before: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after shutdown
    server_version = "PayPalEmulator/1"

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._write(Reply(413, {"name": "REQUEST_TOO_LARGE", "message": "Request body too large."}))
            return
        body = self.rfile.read(length) if length else b""
        try:
            reply = emulator.handle(method, url.path.rstrip("/") or "/", parse_qs(url.query), self.headers, body)
        except Exception as exc:  # an emulator bug must still answer like a server
            reply = Reply(
                500, {"name": "INTERNAL_SERVER_ERROR", "message": f"Emulator error: {exc!r}", "debug_id": _debug_id()}
            )
        if reply.delay_before:
            emulator.stopping.wait(reply.delay_before)
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        payload = json.dumps(reply.body).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if "debug_id" in reply.body:
                self.send_header("PayPal-Debug-Id", str(reply.body["debug_id"]))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout switch): nothing to answer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"paypal-emulator {self.address_string()} {format % args}\n")


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: Emulator, *, verbose: bool = False) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.verbose = verbose
        raw_host, port = self.server_address[:2]
        host = raw_host.decode() if isinstance(raw_host, bytes) else str(raw_host)
        shown = f"[{host}]" if ":" in host else host
        emulator.base_url = f"http://{shown}:{port}"

    @property
    def base_url(self) -> str:
        return self.emulator.base_url


def make_server(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    verbose: bool = False,
) -> EmulatorServer:
    return EmulatorServer((host, port), Emulator(client_id=client_id, client_secret=client_secret), verbose=verbose)


def credentials_from_env() -> tuple[str, str]:
    """``PAYPAL_CLIENT_ID``/``PAYPAL_CLIENT_SECRET`` when set (so the app and the emulator agree), else the
    emulator's defaults."""
    return (
        os.environ.get("PAYPAL_CLIENT_ID") or DEFAULT_CLIENT_ID,
        os.environ.get("PAYPAL_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET,
    )


def run_until_interrupted(server: EmulatorServer) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the socket."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # signals can only be set from the main thread
        signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.emulator.stopping.set()
        server.server_close()


def serve(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, client_id: str | None = None, client_secret: str | None = None
) -> None:
    """Serve until interrupted, with ``PAYPAL_CLIENT_ID``/``PAYPAL_CLIENT_SECRET`` or the default credentials."""
    env_id, env_secret = credentials_from_env()
    server = make_server(
        host, port, client_id=client_id or env_id, client_secret=client_secret or env_secret, verbose=True
    )
    print(f"PayPal emulator on {server.base_url}  client id {server.emulator.client_id}", flush=True)
    run_until_interrupted(server)


class Running:
    """An emulator serving in a background thread (``with running() as emu``)."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.emulator = server.emulator
        self.base_url = server.base_url
        self.client_id = server.emulator.client_id
        self.client_secret = server.emulator.client_secret
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.emulator.stopping.set()  # wakes handlers sleeping for the timeout switch
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout)


@contextlib.contextmanager
def running(host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> Iterator[Running]:
    emu = Running(make_server(host, port, **kwargs))
    try:
        yield emu
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m apertur.integrations.paypal.emulator", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
