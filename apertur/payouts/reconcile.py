"""Reconciliation with PayPal: webhooks and polling both read PayPal's current state and apply each payout's own
item status (a payout is one item, ``sender_item_id``, of a batch it may share with thousands of others):
:func:`reconcile_batch` reads a batch once (``GET /v1/payments/payouts/{id}``, every page) for all of its
watched payouts; :func:`reconcile_payout` reads one item (``GET /v1/payments/payouts-item/{id}``) when its id is
known. Acting on PayPal's current state, not on the event's copy of it, makes the order of deliveries
irrelevant: a late ``SUCCEEDED`` after a ``REVERSED`` cannot undo the reversal.

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
from apertur.core.validation import without_nul
from apertur.integrations.paypal.client import Batch, Item, PayPalClient, client_or_default
from apertur.integrations.paypal.errors import PayPalError
from apertur.payouts import services
from apertur.payouts.models import OPEN, Failure, Payout, PayoutStatus, PayPalEvent, PayPalEventStatus

logger = logging.getLogger(__name__)
UNCLAIMED_RETURN_AFTER = dt.timedelta(days=30)
PAID_WATCH = dt.timedelta(days=180)  # PayPal refunds and reversals of a paid item come within this window
PAID_RECHECK = dt.timedelta(days=1)


def _item_for(payout: Payout, batch: Batch) -> Item | None:
    for item in batch.items:
        if item.sender_item_id == payout.sender_item_id or (
            payout.paypal_item_id and item.payout_item_id == payout.paypal_item_id
        ):
            return item
    return None


def reconcile_payout(*, payout: Payout, client: PayPalClient, item_id: str = "") -> Payout:
    """Bring one sent payout in line with PayPal. Raises :class:`PayPalError` when PayPal cannot be asked. With
    its PayPal item id known (saved, or ``item_id`` from a webhook event) it reads that one item
    (``GET /v1/payments/payouts-item/{id}``), not the whole batch its item shares with thousands of others."""
    if not payout.paypal_batch_id or payout.status == PayoutStatus.CREATED:
        return payout  # not sent yet: the run (same sender_batch_id) owns it
    wanted = payout.paypal_item_id or item_id
    if wanted:
        item = client.get_item(wanted)
        if item.sender_item_id == payout.sender_item_id or item.payout_item_id == payout.paypal_item_id:
            return _apply(payout=payout, item=item, batch_status="", client=client)
    return reconcile_batch(payouts=[payout], client=client)[0]


def _by_batch(payouts: list[Payout]) -> list[list[Payout]]:
    """``payouts`` grouped by their PayPal batch, in order of first appearance: what :func:`reconcile_batch` takes."""
    groups: dict[str, list[Payout]] = {}
    for payout in payouts:
        groups.setdefault(payout.paypal_batch_id, []).append(payout)
    return list(groups.values())


def reconcile_batch(*, payouts: list[Payout], client: PayPalClient) -> list[Payout]:
    """Bring sent payouts of one PayPal batch in line with it: one read of the batch (every page of its items),
    then each payout's own item applied. Raises :class:`PayPalError` when PayPal cannot be asked."""
    sent = [p for p in payouts if p.paypal_batch_id and p.status != PayoutStatus.CREATED]
    if not sent:
        return payouts  # not sent yet: the run (same sender_batch_id) owns them
    batch_ids = {p.paypal_batch_id for p in sent}
    if len(batch_ids) != 1:
        raise ValueError("reconcile_batch takes payouts of one PayPal batch.")
    batch = client.get_batch(batch_ids.pop())
    done = {
        p.pk: _apply(payout=p, item=_item_for(p, batch), batch_status=batch.batch_status, client=client) for p in sent
    }
    return [done.get(p.pk, p) for p in payouts]


#: A batch PayPal refused as a whole (our account: funding, limits, review): nothing about the receivers.
SENDER_BATCH_STATUSES = frozenset({"DENIED", "CANCELED"})


def _apply(*, payout: Payout, item: Item | None, batch_status: str, client: PayPalClient) -> Payout:
    ours = batch_status in SENDER_BATCH_STATUSES
    if item is None:
        if ours:
            return services.apply_item_status(
                payout_id=payout.pk,
                transaction_status="FAILED",
                detail=f"batch {batch_status}",
                failure=Failure.SENDER,
                sender_item_id=payout.sender_item_id,
            )
        Payout.objects.filter(pk=payout.pk).update(checked_at=clock.now())
        return payout
    status = item.transaction_status
    detail = f"PayPal {status}" + (f" ({item.error_name})" if item.error_name else "")
    if ours:
        detail += f", batch {batch_status}"
    if ours and status == "PENDING":
        # A batch PayPal denied or canceled pays none of its items still waiting (docs/payouts.md: batch
        # DENIED/CANCELED → failed): the money is back in the balance, on our side.
        status = "FAILED"
    # A failure about our account (INSUFFICIENT_FUNDS, a DENIED batch) is not the partner's address: staff fix it.
    failure = Failure.SENDER if ours or item.error_name in services.SENDER_ERRORS else Failure.NONE
    # The item this payout had when it was read: a retry since then is a new item, which this read is not about.
    updated = services.apply_item_status(
        payout_id=payout.pk,
        transaction_status=status,
        item_id=item.payout_item_id,
        detail=detail,
        failure=failure,
        sender_item_id=payout.sender_item_id,
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
            sender_item_id=payout.sender_item_id,
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
        for group in _by_batch(payouts):  # one read of each PayPal batch, however many of its items are watched
            try:
                after = reconcile_batch(payouts=group, client=paypal)
            except PayPalError as exc:
                # Said in the log too: the worker logs a pass only when something changed, and a poll that keeps
                # failing (PayPal down, our credentials, a batch PayPal does not know) changes nothing.
                logger.warning(
                    "payout poll: PayPal batch %s (%s, %d payout(s)) not read: %s",
                    group[0].paypal_batch_id,
                    group[0].sender_batch_id,
                    len(group),
                    exc,
                )
                result.errors.extend(f"{payout.sender_batch_id} ({payout.sender_item_id}): {exc}" for payout in group)
                continue
            result.checked += len(group)
            for before, now_ in zip(group, after, strict=True):
                if now_.status != before.status:
                    result.changed.append(
                        {
                            "sender_batch_id": before.sender_batch_id,
                            # The batch is shared by the chunk's partners: the item and the partner tell them apart.
                            "sender_item_id": before.sender_item_id,
                            "partner_id": before.partner_id,
                            "from": str(before.status),
                            "to": str(now_.status),
                        }
                    )
    return result


# --- webhooks -------------------------------------------------------------------------------------------


def _payouts_for(event: dict[str, Any]) -> list[Payout]:
    """The payouts a PayPal event is about. An item event (``PAYMENT.PAYOUTS-ITEM.*``) is about one payout: found
    by PayPal's item id, else by our ``sender_item_id``. A batch event (``PAYMENT.PAYOUTSBATCH.*``) is about every
    payout of the batch: by PayPal's batch id, else by our ``sender_batch_id``."""
    resource = event.get("resource") if isinstance(event.get("resource"), dict) else {}
    assert isinstance(resource, dict)
    item = resource.get("payout_item") if isinstance(resource.get("payout_item"), dict) else {}
    assert isinstance(item, dict)
    item_id = resource.get("payout_item_id")
    sender_item_id = str(item.get("sender_item_id") or "")
    if (isinstance(item_id, str) and item_id) or sender_item_id:
        query = Q(pk__in=[])
        if isinstance(item_id, str) and item_id:
            query |= Q(paypal_item_id=item_id)
        if sender_item_id:
            query |= Q(sender_item_id=sender_item_id)
        found = Payout.objects.filter(query).first()
        return [found] if found is not None else []
    header = resource.get("batch_header") if isinstance(resource.get("batch_header"), dict) else {}
    assert isinstance(header, dict)
    batch_id = resource.get("payout_batch_id") or header.get("payout_batch_id") or ""
    sender = header.get("sender_batch_header") if isinstance(header.get("sender_batch_header"), dict) else {}
    assert isinstance(sender, dict)
    sender_batch_id = str(sender.get("sender_batch_id") or "")
    if isinstance(batch_id, str) and batch_id:
        found_by_batch = list(Payout.objects.filter(paypal_batch_id=batch_id).order_by("pk"))
        if found_by_batch:
            return found_by_batch
    if sender_batch_id:
        return list(Payout.objects.filter(sender_batch_id=sender_batch_id).order_by("pk"))
    return []


def receive_event(*, event: dict[str, Any], client: PayPalClient | None = None) -> PayPalEvent:
    """Store a verified event once (by id) and apply it. Returns the stored row (a redelivery returns the
    first one, unchanged once processed). A NUL or lone surrogate in its strings is stored as U+FFFD (no
    database stores them)."""
    event = without_nul(event)
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
    payouts = _payouts_for(stored.payload)
    if not payouts:
        return _finish(stored, PayPalEventStatus.IGNORED, "no payout of ours (or an earlier attempt's batch)")
    payout = payouts[0]  # the item's payout; for a batch event, its first (the event applies to all of them)
    resource = stored.payload.get("resource") if isinstance(stored.payload.get("resource"), dict) else {}
    item_id = str(resource.get("payout_item_id") or "") if event_type.startswith("PAYMENT.PAYOUTS-ITEM.") else ""
    with client_or_default(client) as paypal:
        try:
            if item_id:  # one item: read that item from PayPal, not its whole batch
                reconcile_payout(payout=payout, client=paypal, item_id=item_id)
            else:
                for group in _by_batch(payouts):
                    reconcile_batch(payouts=group, client=paypal)
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
