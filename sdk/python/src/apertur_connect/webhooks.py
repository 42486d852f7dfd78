"""Verify Apertur's webhook deliveries (Standard Webhooks, https://www.standardwebhooks.com) and parse them
into typed events.

Apertur signs ``{webhook-id}.{webhook-timestamp}.{raw body}`` with HMAC-SHA256 and the endpoint's
``whsec_…`` secret and sends ``webhook-signature: v1,<base64>`` (several space-separated signatures are
accepted, for secret rotation). Verify the **raw** body, before any JSON parsing, and dedupe on
``event.id``: it is the same on every retry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apertur_connect.errors import WebhookVerificationError
from apertur_connect.models import Upload as UploadModel
from apertur_connect.models import build, parse_time

DEFAULT_TOLERANCE = 300  # seconds, either way: docs/api.md asks to reject anything older than five minutes


@dataclass(frozen=True)
class SessionRef:
    id: str
    title: str
    status: str


@dataclass(frozen=True)
class PlanChange:
    from_plan: str
    to_plan: str
    price_cents: int | None
    currency: str | None


@dataclass(frozen=True)
class Event:
    """Any event. ``data`` is the raw payload; the subclasses add typed attributes."""

    id: str
    type: str
    timestamp: Any  # datetime
    livemode: bool
    data: dict[str, Any]


@dataclass(frozen=True)
class UploadCreated(Event):
    upload: UploadModel


@dataclass(frozen=True)
class SessionCreated(Event):
    session: SessionRef


@dataclass(frozen=True)
class SessionClosed(Event):
    session: SessionRef


@dataclass(frozen=True)
class PlanChanged(Event):
    plan: PlanChange


@dataclass(frozen=True)
class WebhookTest(Event):
    message: str


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"The {name} header is missing.", code="missing_header")


class Webhook:
    """``Webhook(secret).verify(body, headers)`` → a typed :class:`Event`, or :class:`WebhookVerificationError`."""

    def __init__(self, secret: str, *, tolerance: int = DEFAULT_TOLERANCE) -> None:
        try:
            self._key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("The webhook secret should look like whsec_<base64>.") from exc
        self.tolerance = tolerance

    def sign(self, msg_id: str, timestamp: int, body: bytes) -> str:
        mac = hmac.new(self._key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        return "v1," + base64.b64encode(mac).decode()

    def verify(self, body: bytes | str, headers: Mapping[str, str], *, now: float | None = None) -> Event:
        """A webhook event: its signature and time checked (:meth:`verify_signature`), then read as a typed event."""
        raw = body.encode() if isinstance(body, str) else body
        msg_id = self.verify_signature(raw, headers, now=now)
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise WebhookVerificationError("The body is not JSON.", code="invalid_payload") from exc
        if payload.get("id") != msg_id:
            raise WebhookVerificationError("webhook-id and the event id differ.", code="invalid_payload")
        return parse_event(payload)

    def verify_signature(self, body: bytes | str, headers: Mapping[str, str], *, now: float | None = None) -> str:
        """The signature and time of any signed request from Apertur (a webhook event, or a destination's copy of an
        upload, whose body is the file): returns its ``webhook-id``, or raises :class:`WebhookVerificationError`."""
        raw = body.encode() if isinstance(body, str) else body
        msg_id = _header(headers, "webhook-id")
        stamp = _header(headers, "webhook-timestamp")
        signatures = _header(headers, "webhook-signature")
        try:
            timestamp = int(stamp)
        except ValueError as exc:
            raise WebhookVerificationError("webhook-timestamp is not a number.", code="invalid_timestamp") from exc
        current = time.time() if now is None else now
        if abs(current - timestamp) > self.tolerance:
            raise WebhookVerificationError(
                f"webhook-timestamp is more than {self.tolerance} s away from now (a replay?).",
                code="timestamp_outside_tolerance",
            )
        expected = self.sign(msg_id, timestamp, raw)
        if not any(hmac.compare_digest(expected, part) for part in signatures.split()):
            raise WebhookVerificationError("The webhook signature does not match.", code="invalid_signature")
        return msg_id


def parse_event(payload: Mapping[str, Any]) -> Event:
    """An event from an already verified payload."""
    data: dict[str, Any] = dict(payload.get("data") or {})
    base: dict[str, Any] = {
        "id": str(payload["id"]),
        "type": str(payload["type"]),
        "timestamp": parse_time(str(payload["timestamp"])),
        "livemode": bool(payload.get("livemode", True)),
        "data": data,
    }
    kind = base["type"]
    if kind == "upload.created":
        return UploadCreated(**base, upload=build(UploadModel, data["upload"]))
    if kind in ("session.created", "session.closed"):
        session = build(SessionRef, data["session"])
        return (SessionCreated if kind == "session.created" else SessionClosed)(**base, session=session)
    if kind == "plan.changed":
        plan = data.get("plan") or {}
        change = PlanChange(
            from_plan=str(plan.get("from", "")),
            to_plan=str(plan.get("to", "")),
            price_cents=plan.get("price_cents"),
            currency=plan.get("currency"),
        )
        return PlanChanged(**base, plan=change)
    if kind == "webhook.test":
        return WebhookTest(**base, message=str(data.get("message", "")))
    return Event(**base)
