"""Reconciliation with PayPal: webhooks and polling both end in :func:`reconcile_payout`, which reads the
batch's current state from PayPal (``GET /v1/payments/payouts/{id}``) and applies the item's status. Acting on
PayPal's current state, not on the event's copy of it, makes the order of deliveries irrelevant: a late
``SUCCEEDED`` after a ``REVERSED`` cannot undo the reversal.

- :func:`receive_event` stores a verified webhook event once by its id and applies it; an event that could not
  be applied (PayPal unreachable) stays ``received`` and :func:`process_pending_events` retries it.
- :func:`poll_open` reconciles every payout PayPal has not settled (sent, processing, unclaimed, held), once a
  day each payout paid in the last 180 days (a lost REVERSED webhook is found within a day), and
  cancels an item still unclaimed 30 days after it was sent: its money comes back (PayPal's own rule; we ask
  for it rather than wait, so the partner's balance is right on day 30).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q

from apertur.core import clock
from apertur.integrations.paypal.client import Batch, Item, PayPalClient, client_or_default
from apertur.integrations.paypal.errors import PayPalError
from apertur.payouts import services
from apertur.payouts.models import OPEN, Payout, PayoutStatus, PayPalEvent, PayPalEventStatus

logger = logging.getLogger(__name__)
UNCLAIMED_RETURN_AFTER = dt.timedelta(days=30)
PAID_WATCH = dt.timedelta(days=180)  # PayPal refunds and reversals of a paid item come within this window
PAID_RECHECK = dt.timedelta(days=1)


def _item_for(payout: Payout, batch: Batch) -> Item | None:
    wanted = f"{payout.sender_batch_id}-1"
    for item in batch.items:
        if item.sender_item_id == wanted or (payout.paypal_item_id and item.payout_item_id == payout.paypal_item_id):
            return item
    return batch.items[0] if len(batch.items) == 1 else None


def reconcile_payout(*, payout: Payout, client: PayPalClient) -> Payout:
    """Bring one sent payout in line with PayPal. Raises :class:`PayPalError` when PayPal cannot be asked."""
    if not payout.paypal_batch_id or payout.status == PayoutStatus.CREATED:
        return payout  # not sent yet: the run (same sender_batch_id) owns it
    batch = client.get_batch(payout.paypal_batch_id)
    item = _item_for(payout, batch)
    if item is None:
        if batch.batch_status in {"DENIED", "CANCELED"}:
            return services.apply_item_status(
                payout_id=payout.pk, transaction_status="FAILED", detail=f"batch {batch.batch_status}"
            )
        Payout.objects.filter(pk=payout.pk).update(checked_at=clock.now())
        return payout
    status = item.transaction_status
    detail = f"PayPal {status}" + (f" ({item.error_name})" if item.error_name else "")
    if batch.batch_status == "DENIED" and status == "PENDING":
        status = "FAILED"
    updated = services.apply_item_status(
        payout_id=payout.pk, transaction_status=status, item_id=item.payout_item_id, detail=detail
    )
    if (
        updated.status == PayoutStatus.UNCLAIMED
        and updated.sent_at is not None
        and clock.now() - updated.sent_at >= UNCLAIMED_RETURN_AFTER
    ):
        try:
            cancelled = client.cancel_item(item.payout_item_id)
        except PayPalError as exc:  # claimed meanwhile: the next look sees SUCCESS
            logger.info("payout %s: unclaimed item not cancelled: %s", payout.pk, exc)
            return updated
        updated = services.apply_item_status(
            payout_id=payout.pk,
            transaction_status=cancelled.transaction_status,
            item_id=cancelled.payout_item_id,
            detail="unclaimed for 30 days: cancelled, the money came back",
        )
    return updated


@dataclass(slots=True)
class PollResult:
    checked: int = 0
    changed: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "changed": self.changed, "errors": self.errors}


def poll_open(*, client: PayPalClient | None = None, limit: int = 500) -> PollResult:
    """Reconcile every payout without a final state, and once a day each payout paid in the last
    :data:`PAID_WATCH` (PayPal can still refund or reverse it; the webhook saying so may be lost). Bounded per
    call; the least recently checked first."""
    result = PollResult()
    now = clock.now()
    watched = Q(status__in=OPEN) | Q(
        status=PayoutStatus.PAID, paid_at__gte=now - PAID_WATCH, checked_at__lt=now - PAID_RECHECK
    )
    payouts = list(
        Payout.objects.filter(watched)
        .exclude(paypal_batch_id="")
        .order_by(F("checked_at").asc(nulls_first=True), "id")[:limit]
    )
    if not payouts:
        return result
    with client_or_default(client) as paypal:
        for payout in payouts:
            before = payout.status
            try:
                after = reconcile_payout(payout=payout, client=paypal)
            except PayPalError as exc:
                result.errors.append(f"{payout.sender_batch_id}: {exc}")
                continue
            result.checked += 1
            if after.status != before:
                result.changed.append(
                    {"sender_batch_id": payout.sender_batch_id, "from": str(before), "to": str(after.status)}
                )
    return result


# --- webhooks -------------------------------------------------------------------------------------------


def _payout_for(event: dict[str, Any]) -> Payout | None:
    """The payout a PayPal event is about: by PayPal's batch id, else by our sender_batch_id (the batch header,
    or the item's ``sender_item_id`` = ``<sender_batch_id>-1``)."""
    resource = event.get("resource") if isinstance(event.get("resource"), dict) else {}
    assert isinstance(resource, dict)
    header = resource.get("batch_header") if isinstance(resource.get("batch_header"), dict) else {}
    assert isinstance(header, dict)
    batch_id = resource.get("payout_batch_id") or header.get("payout_batch_id") or ""
    sender = header.get("sender_batch_header") if isinstance(header.get("sender_batch_header"), dict) else {}
    assert isinstance(sender, dict)
    sender_batch_id = str(sender.get("sender_batch_id") or "")
    item = resource.get("payout_item") if isinstance(resource.get("payout_item"), dict) else {}
    assert isinstance(item, dict)
    sender_item_id = str(item.get("sender_item_id") or "")
    if not sender_batch_id and sender_item_id.endswith("-1"):
        sender_batch_id = sender_item_id[:-2]
    query = Q(pk__in=[])
    if isinstance(batch_id, str) and batch_id:
        query |= Q(paypal_batch_id=batch_id)
    if sender_batch_id:
        query |= Q(sender_batch_id=sender_batch_id)
    return Payout.objects.filter(query).first()


def receive_event(*, event: dict[str, Any], client: PayPalClient | None = None) -> PayPalEvent:
    """Store a verified event once (by id) and apply it. Returns the stored row (a redelivery returns the
    first one, unchanged once processed)."""
    event_id = str(event.get("id") or "")
    if not event_id:
        raise ValueError("A PayPal event has an id.")
    try:
        with transaction.atomic():
            stored, created = PayPalEvent.objects.get_or_create(
                event_id=event_id,
                defaults={"event_type": str(event.get("event_type") or "")[:80], "payload": event},
            )
    except IntegrityError:  # the same event delivered twice at once: the other request stored it
        stored, created = PayPalEvent.objects.get(event_id=event_id), False
    if not created and stored.status != PayPalEventStatus.RECEIVED:
        return stored
    return apply_event(stored=stored, client=client)


def apply_event(*, stored: PayPalEvent, client: PayPalClient | None = None) -> PayPalEvent:
    event_type = stored.event_type
    if not (event_type.startswith("PAYMENT.PAYOUTS-ITEM.") or event_type.startswith("PAYMENT.PAYOUTSBATCH.")):
        return _finish(stored, PayPalEventStatus.IGNORED, "not a payouts event")
    payout = _payout_for(stored.payload)
    if payout is None:
        return _finish(stored, PayPalEventStatus.IGNORED, "no payout of ours (or an earlier attempt's batch)")
    with client_or_default(client) as paypal:
        try:
            reconcile_payout(payout=payout, client=paypal)
        except PayPalError as exc:
            PayPalEvent.objects.filter(pk=stored.pk).update(detail=f"not applied yet: {exc}"[:300], payout=payout)
            stored.refresh_from_db()
            return stored
    return _finish(stored, PayPalEventStatus.PROCESSED, "", payout=payout)


def _finish(stored: PayPalEvent, status: str, detail: str, payout: Payout | None = None) -> PayPalEvent:
    PayPalEvent.objects.filter(pk=stored.pk).update(
        status=status, detail=detail[:300], processed_at=clock.now(), payout=payout
    )
    stored.refresh_from_db()
    return stored


def process_pending_events(*, client: PayPalClient | None = None, limit: int = 500) -> int:
    """Apply events that were stored but could not be applied yet. Returns how many got applied."""
    pending = list(PayPalEvent.objects.filter(status=PayPalEventStatus.RECEIVED).order_by("received_at", "id")[:limit])
    if not pending:
        return 0
    with client_or_default(client) as paypal:
        return sum(apply_event(stored=stored, client=paypal).status != PayPalEventStatus.RECEIVED for stored in pending)
