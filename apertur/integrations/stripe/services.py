"""Intake of Stripe webhook events: verify, store once, apply, and retry what waited on an earlier event."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apertur.accounts.models import User, normalize_email
from apertur.core import alerts, audit, clock, housekeeping, ratelimit
from apertur.core.errors import Conflict, NotFound
from apertur.core.http import rate_limit_ip
from apertur.core.models import AuditEvent
from apertur.core.validation import loads_json, without_nul
from apertur.integrations.stripe.handlers import (
    HANDLERS,
    NO_PAYMENT_YET,
    Skip,
    Wait,
    WaitForStaff,
    id_of,
    payment_for,
    ts,
    unknown_customer,
)
from apertur.integrations.stripe.models import EventStatus, RejectedDelivery, StripeEvent
from apertur.projects.models import BillingCustomer, Payment

logger = logging.getLogger(__name__)
SIGNATURE_TOLERANCE = 300  # seconds, as Stripe's own libraries default to
# How long an event may wait for the event that completes it (a refund for its payment, an invoice for the
# customer it names). Stripe retries a delivery for up to three days; after a week the missing event is not
# coming, and the event stops being retried (stored as ignored, with what it waited for) so that events about
# customers who are not Apertur users do not pile up and slow every later delivery. It gets a last try first, and
# staff are told about it: Stripe was answered 2xx, so nobody else will ever send it again (_give_up).
WAIT_LIMIT = dt.timedelta(days=7)


class Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Outcome:
    event_id: str
    status: str
    detail: str
    duplicate: bool = False


MAX_EVENT_ID = StripeEvent._meta.get_field("event_id").max_length or 0
MAX_EVENT_TYPE = StripeEvent._meta.get_field("type").max_length or 0


def parse(text: str) -> dict[str, Any]:
    """The event in ``text`` if it has the shape every handler relies on, else :class:`ValueError`."""
    event = loads_json(text)
    if not isinstance(event, dict):
        raise ValueError("not an object")
    for key in ("id", "type", "created"):
        if key not in event:
            raise ValueError(f"missing {key}")
    if not isinstance(event["id"], str) or not event["id"] or not isinstance(event["type"], str):
        raise ValueError("id and type must be strings")
    # Stored in columns of these widths: a longer one was PostgreSQL's DataError, a 500 (Stripe's are ~30).
    if len(event["id"]) > MAX_EVENT_ID or len(event["type"]) > MAX_EVENT_TYPE:
        raise ValueError(f"id (at most {MAX_EVENT_ID} characters) or type (at most {MAX_EVENT_TYPE}) too long")
    try:
        if isinstance(event["created"], bool):  # an int to Python, never a time
            raise TypeError("a boolean")
        ts(event["created"])
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"created is not a Unix time: {event['created']!r}") from exc
    if not isinstance((event.get("data") or {}).get("object"), dict):
        raise ValueError("missing data.object")
    return event


#: Refused deliveries kept for inspection, per client address and in all, per hour: anyone can post to the endpoint,
#: and each kept delivery holds up to 100 KB of its body. Past either budget a delivery is refused all the same, not
#: kept. A misconfigured secret shows within the first few Stripe retries; kept ones go after REFUSED_KEPT_FOR.
REFUSED_KEPT_PER_ADDRESS = ratelimit.Limit("stripe-refused-kept-ip", 20, 3600)
REFUSED_KEPT_IN_ALL = ratelimit.Limit("stripe-refused-kept", 200, 3600)
REFUSED_KEPT_FOR = dt.timedelta(days=30)


def verify(*, body: bytes, signature: str | None, client_ip: str | None = None) -> dict[str, Any]:
    """Check the ``Stripe-Signature`` header with the stripe package; refuse and record anything else (within the
    budgets above, counted by ``client_ip`` when the delivery came over HTTP)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise Rejected("not_configured", "STRIPE_WEBHOOK_SECRET is not set.")
    text = body.decode("utf-8", errors="replace")
    try:
        if signature is not None and not signature.isascii():
            # Stripe's header is ASCII; the stripe package compares a non-ASCII v1 with hmac.compare_digest, whose
            # TypeError was a 500.
            raise stripe.SignatureVerificationError("the header is not ASCII", signature, text)
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance=SIGNATURE_TOLERANCE)
    except stripe.SignatureVerificationError as exc:
        _keep_rejected(f"invalid signature: {exc}", signature=signature, text=text, client_ip=client_ip)
        raise Rejected("invalid_signature", "The Stripe-Signature header does not verify.") from exc
    try:
        return parse(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        _keep_rejected(f"malformed event: {exc}", signature=signature, text=text, client_ip=client_ip)
        raise Rejected("malformed_event", f"The event is not a Stripe event ({exc}).") from exc


def _keep_rejected(reason: str, *, signature: str | None, text: str, client_ip: str | None) -> None:
    """Keep a refused delivery for inspection, whatever it holds: a NUL (which anyone can post, and PostgreSQL
    refuses in text) is kept as U+FFFD, as :func:`receive` keeps an accepted event's. Not past the budgets."""
    budgets = [(REFUSED_KEPT_IN_ALL, "all")]
    if client_ip is not None:
        budgets.insert(0, (REFUSED_KEPT_PER_ADDRESS, rate_limit_ip(client_ip)))
    try:
        ratelimit.hit_all(*budgets)
    except ratelimit.RateLimited:
        logger.warning("Stripe webhook: a refused delivery from %s not kept (budget spent): %s", client_ip, reason)
        return
    RejectedDelivery.objects.create(
        reason=without_nul(reason[:300]),
        signature_header=without_nul((signature or "")[:500]),
        body=without_nul(text[:100_000]),
    )


def intake(*, body: bytes, signature: str | None, client_ip: str | None = None) -> Outcome:
    """What ``POST /webhooks/stripe`` does with a delivery: verify it, then store and apply it once."""
    return receive(verify(body=body, signature=signature, client_ip=client_ip))


def prune_refused(at: dt.datetime) -> int:
    """The worker's housekeeping (registered in :mod:`apertur.integrations.stripe.apps`): refused deliveries go
    :data:`REFUSED_KEPT_FOR` after they came. Returns how many."""
    return housekeeping.delete_in_batches(RejectedDelivery.objects.filter(received_at__lt=at - REFUSED_KEPT_FOR))


def _apply(row: StripeEvent) -> None:
    handler = HANDLERS.get(row.type)
    if handler is None:
        row.status, row.detail = EventStatus.IGNORED, "event type not used by Apertur"
        return
    try:
        with transaction.atomic():
            detail = handler(row.payload)
    except Skip as exc:
        row.status, row.detail = EventStatus.IGNORED, str(exc)[:300]
    except WaitForStaff as exc:
        row.status, row.detail = EventStatus.WAITING, str(exc)[:300]
        _tell_staff(row, key=exc.key, subject=exc.subject, lines=[*exc.lines, "", f"The event: {row.event_id}"])
    except Wait as exc:
        row.status, row.detail = EventStatus.WAITING, str(exc)[:300]
    # An object of the wrong shape: a missing key, a string where an object was (AttributeError on ``.get``), a
    # number that is not one (decimal.InvalidOperation is arithmetic).
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        row.status, row.detail = EventStatus.FAILED, f"malformed {row.type}: {exc}"[:300]
        # Stripe was (or will be) answered 2xx and never sends it again: a person must know, or whatever money it
        # records is lost without a trace but this row. Once a day per event type, not per event: a change of shape
        # (a new API version) fails every event of the type, and one mail an event would bury the first. But only
        # while events of the type are still failed (the key names the oldest): once staff applied them all, the
        # next failure is told at once, not up to a day later (never, if no other of its type failed after it).
        oldest_failed = failed_of_its_type(row).values_list("event_id", flat=True).first()
        failed_of_type = f"/admin/stripe_billing/stripeevent/?status__exact=failed&type={quote(row.type)}"
        _tell_staff(
            row,
            key=f"failed:{row.type}:{oldest_failed or row.event_id}",
            subject=f"Stripe event {row.event_id} ({row.type}) could not be applied",
            lines=[
                f"Stripe event {row.event_id} ({row.type}) was accepted and stored, but its object does not have the "
                f"shape Apertur reads ({row.detail}). Whatever money it records (a payment, a refund, a dispute) is "
                "not in the commission ledger, and Stripe will not send it again.",
                "",
                "What to do: compare it with the event in Stripe's dashboard (the stored payload is in the admin). "
                "Once what it lacked is fixed (in Apertur's code or data), apply it with: apertur billing retry "
                f"{row.event_id}",
                "",
                f"Other {row.type} events that fail while failed ones of that type are left are stored failed "
                "without another mail for 24 hours. "
                f"The admin lists every one: {settings.APERTUR_BASE_URL}{failed_of_type} (select them and choose "
                '"Apply the selected events again" once the cause is fixed).',
            ],
        )
    else:
        row.status, row.detail, row.processed_at = EventStatus.PROCESSED, detail[:300], clock.now()


def failed_of_its_type(row: StripeEvent) -> QuerySet[StripeEvent]:
    """The other failed events of ``row``'s type, oldest first, read from the partial ``stripe_event_failed`` index."""
    return (
        StripeEvent.objects.filter(status=EventStatus.FAILED, type=row.type)
        .exclude(pk=row.pk)
        .order_by("created", "id")
    )


def _tell_staff(row: StripeEvent, *, key: str, subject: str, lines: list[str]) -> None:
    """An accepted event that needs a person now (not after its week of waiting): once a day per ``key``."""
    alerts.alert_staff(
        action="stripe.staff_alerted",
        about=row,
        key=key,
        subject=subject,
        lines=lines,
        template="emails/stripe_staff_notice",
    )


def receive(event: dict[str, Any]) -> Outcome:
    """Store the event once and apply it. A replay of a stored event id changes nothing. ``event`` must have
    passed :func:`parse` (the webhook view verifies first; ``apertur billing import`` parses each line). A NUL or a
    lone surrogate in any of its strings (a customer's name…) is stored and applied as U+FFFD: no database stores
    them, and the event would otherwise never be accepted."""
    event = without_nul(event)
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(
                event_id=str(event["id"]),
                type=str(event["type"]),
                created=ts(event["created"]),
                payload=event,
                status=EventStatus.WAITING,
            )
    except IntegrityError:
        first = StripeEvent.objects.get(event_id=str(event["id"]))
        return Outcome(first.event_id, first.status, first.detail, duplicate=True)
    with transaction.atomic():
        row = StripeEvent.objects.select_for_update().get(pk=row.pk)
        if row.status != EventStatus.WAITING:
            # Another process's retry_waiting() applied it between our insert and this lock.
            return Outcome(row.event_id, row.status, row.detail)
        _apply(row)
        row.save()
    if row.status == EventStatus.PROCESSED:
        # In a transaction of its own, after this one committed: retrying while still holding this event's
        # locks (a payment's row) would wait for an event another delivery is applying, which may wait for
        # that payment: a deadlock. Once committed, the retry also sees what this event created.
        with transaction.atomic():
            retry_waiting()
    return Outcome(row.event_id, row.status, row.detail)


def retry_waiting() -> int:
    """Apply events that waited for something that may now exist, oldest first, until nothing changes; then give
    up the events that have waited longer than :data:`WAIT_LIMIT` and are still waiting after that last try
    (:func:`_give_up`). Run inside a transaction (every delivery's, and the worker's periodic pass): the rows are
    locked, so two passes at once apply, and give up, each event once."""
    done = _retry()
    _give_up()
    return done


def waiting_events() -> QuerySet[StripeEvent]:
    """The events still waiting, in the order they are retried: read through the partial index
    ``stripe_event_waiting`` (every processed delivery reads them; the whole table otherwise)."""
    return StripeEvent.objects.filter(status=EventStatus.WAITING).order_by("created", "id")


def _retry() -> int:
    """Apply what waited, oldest first, until nothing changes. How many events left the waiting state."""
    done = 0
    waiting = waiting_events()
    progress = True
    stuck: set[int] = set()
    while progress:
        progress = False
        # Expired events too: the event one waited for may have come in since the last pass, and this is its last
        # chance before it is given up below.
        for row in waiting.exclude(pk__in=stuck).select_for_update():
            try:
                with transaction.atomic():  # a savepoint: an error undoes this event's work only
                    _apply(row)
                    row.save()
            except Exception as exc:
                # Anything else one event raises (a database error, a bug) must not hold back every other waiting
                # event, nor the expiry below: it stays waiting (given up after WAIT_LIMIT like any other), and says
                # why. Raised here, it answered 500 to every later delivery and nothing waiting moved again.
                logger.exception("Stripe event %s not applied on retry", row.event_id)
                stuck.add(row.pk)
                StripeEvent.objects.filter(pk=row.pk).update(detail=f"not applied yet: {exc!r}"[:300])
                continue
            if row.status != EventStatus.WAITING:
                progress = True
                done += 1
    return done


def _give_up(at: dt.datetime | None = None) -> list[StripeEvent]:
    """Mark ``ignored`` every event still waiting :data:`WAIT_LIMIT` after it was received, at ``at`` (default:
    now) and after :func:`retry_waiting`'s last try; audit each (``stripe.event_given_up``) and tell staff, one
    email listing them, so that no event Stripe was told we accepted is dropped without a person knowing. Once
    per event: only rows still waiting under their lock move. Returns the events given up."""
    expired = list(waiting_events().filter(received_at__lt=(at or clock.now()) - WAIT_LIMIT).select_for_update())
    if not expired:
        return []
    waited_for: dict[int, str] = {}
    for row in expired:
        waited_for[row.pk] = row.detail
        row.status, row.detail = (
            EventStatus.IGNORED,
            f"gave up waiting after {WAIT_LIMIT.days} days: {row.detail}"[:300],
        )
        row.save(update_fields=["status", "detail"])
    AuditEvent.objects.bulk_create(
        [
            audit.event(
                action="stripe.event_given_up",
                obj=row,
                data={
                    "event_id": row.event_id,
                    "type": row.type,
                    "waited_for": waited_for[row.pk],
                    "received_at": row.received_at.isoformat(),
                },
            )
            for row in expired
        ]
    )
    first = expired[0]
    subject = (
        f"Stripe event {first.event_id} ({first.type}) given up after {WAIT_LIMIT.days} days of waiting"
        if len(expired) == 1
        else f"{len(expired)} Stripe events given up after {WAIT_LIMIT.days} days of waiting"
    )
    alerts.alert_staff(
        action="stripe.staff_alerted",
        about=first,
        key=f"given-up:{first.event_id}",
        subject=subject,
        lines=[
            f"These events were accepted from Stripe and stored, but each refers to something Apertur never received "
            f"(a customer it cannot link to an Apertur user, a payment a refund or dispute is about). After "
            f"{WAIT_LIMIT.days} days and a last try they are marked ignored: whatever money they record (a payment, "
            "a refund, a dispute) is not in the commission ledger.",
            "",
            "What to do: look each one up in Stripe's dashboard by its id. If it is about someone who is not an "
            "Apertur customer, there is nothing to do. If it is about an Apertur customer whose Stripe email differs "
            "from their Apertur email (and without metadata.apertur_user_id), link the two and apply what was given "
            "up about that Stripe customer: apertur billing retry <event id> --customer-email <their Apertur email>. "
            "If it waited for a payment Apertur never received (a refund's, a dispute's), have Stripe resend that "
            "payment's invoice.paid event (Stripe dashboard, the event, Resend), then: apertur billing retry "
            "<event id>. On Stripe API versions since 2025-03-31 an invoice does not name the charge that paid it: "
            "its invoice_payment.paid event does, so resend that one too (the endpoint must list it). Stripe "
            "resending a given-up event itself changes nothing: an event id is stored once.",
            "",
            "event id | type | received (Toronto) | waited for",
            *(
                f"{row.event_id} | {row.type} | {clock.business_date(row.received_at).isoformat()} | "
                f"{waited_for[row.pk] or '?'}"
                for row in expired
            ),
        ],
        template="emails/stripe_staff_alert",
    )
    logger.warning("Stripe events given up after %s days: %s", WAIT_LIMIT.days, [row.event_id for row in expired])
    return expired


def retry_waiting_pass(at: dt.datetime) -> int:
    """The worker's periodic pass (registered with :mod:`apertur.core.housekeeping`): what :func:`receive` does
    after each processed delivery, for the hours when none comes, so an event is given up (and staff told) about
    when its week is over rather than at the next delivery, by the pass's time ``at``, as every pruner. Returns the
    events applied or given up."""
    with transaction.atomic():
        return _retry() + len(_give_up(at))


# --- staff: applying again what was given up -------------------------------------------------------------


class StripeEventNotFound(NotFound):
    code = "event_not_found"


class StripeEventAlreadyApplied(Conflict):
    code = "event_already_applied"


class CustomerNotLinkable(Conflict):
    code = "customer_not_linkable"


class UserNotFound(NotFound):
    code = "user_not_found"


@dataclass(frozen=True, slots=True)
class Retried:
    """What :func:`retry_event` did: each event it applied again (the one asked for and, with a customer linked,
    the others given up about that Stripe customer, oldest first; then the refunds and disputes given up for want
    of a payment stored now) with the status it had before, the customer id it linked, and how many waiting events
    applied after them (a refund that waited for the payment)."""

    events: list[tuple[Outcome, str]]
    linked_customer: str | None
    waiting_applied: int

    def as_json(self) -> dict[str, Any]:
        return {
            "linked_customer": self.linked_customer,
            "events": [
                {"id": o.event_id, "previous_status": before, "status": o.status, "detail": o.detail}
                for o, before in self.events
            ],
            "waiting_applied": self.waiting_applied,
        }


def retry_event(*, event_id: str, customer_email: str | None = None, actor: Any = None) -> Retried:
    """Staff's way back for an accepted event that was not applied: given up after :data:`WAIT_LIMIT` (Stripe was
    answered 2xx and never sends it again), ignored (say, a customer without a project then), or failed. Applies
    it again now, each step through the handlers as a delivery would.

    With ``customer_email``, first link the Stripe customer id the event names to that Apertur user (the case the
    give-up email describes: their Stripe email differs from their Apertur one), audited ``stripe.customer_linked``,
    and apply again every other event given up about that customer too. An id linked to someone else is refused.
    Once something applied, so are the refunds and disputes given up for want of a payment that is stored now.

    An event still missing what it waited for stays ``ignored`` (not ``waiting``: it would be given up and reported
    a second time), its detail saying so. Each event retried is audited ``stripe.event_retried``; then the waiting
    events are retried (what waited for a payment applied here). Refused: an unknown or already applied event."""
    with transaction.atomic():
        row = _retryable(event_id, StripeEvent.objects.select_for_update())
        rows, linked = [row], None
        if customer_email is not None:
            linked = _link_customer(row, customer_email, actor=actor)
            others = (
                StripeEvent.objects.select_for_update()
                .filter(status=EventStatus.IGNORED, detail__endswith=unknown_customer(linked))
                .exclude(pk=row.pk)
                .order_by("created", "id")  # one lock order for retries at once
            )
            rows = sorted([row, *others], key=lambda r: (r.created, r.pk))
        done = [_apply_again(r, actor=actor) for r in rows]
        if any(outcome.status == EventStatus.PROCESSED for outcome, _ in done):
            done += [_apply_again(r, actor=actor) for r in _given_up_for_stored_payments()]
    applied = 0
    if any(outcome.status == EventStatus.PROCESSED for outcome, _ in done):
        with transaction.atomic():  # after the commit, as receive() does: the waiting events see what was applied
            applied = _retry()
    return Retried(events=done, linked_customer=linked, waiting_applied=applied)


def _given_up_for_stored_payments() -> list[StripeEvent]:
    """Refunds and disputes given up because their payment had not come, whose payment is stored now (the events
    just applied again brought it): locked, oldest first. Their detail ends with the charge id they waited for."""
    candidates = StripeEvent.objects.filter(status=EventStatus.IGNORED, detail__contains=NO_PAYMENT_YET)
    charge_of = {pk: detail.rsplit(NO_PAYMENT_YET, 1)[-1] for pk, detail in candidates.values_list("pk", "detail")}
    stored = set(Payment.objects.filter(charge_id__in=set(charge_of.values())).values_list("charge_id", flat=True))
    ready = [pk for pk, charge in charge_of.items() if charge and charge in stored]
    # Since Stripe API version 2025-03-31 a payment may be stored without its charge: the others are found as their
    # events find them (their PaymentIntent, through what an ``invoice_payment.paid`` event said paid the invoice).
    for pk, payload in candidates.exclude(pk__in=ready).values_list("pk", "payload"):
        obj = (payload.get("data") or {}).get("object") if isinstance(payload, dict) else None
        if isinstance(obj, dict) and payment_for(
            charge_of[pk], invoice_id=id_of(obj.get("invoice")), payment_intent_id=id_of(obj.get("payment_intent"))
        ):
            ready.append(pk)
    # Still ignored under the lock: read without one above, an event another retry applied meanwhile is processed.
    locked = StripeEvent.objects.select_for_update().filter(pk__in=ready, status=EventStatus.IGNORED)
    return list(locked.order_by("created", "id"))


@dataclass(frozen=True, slots=True)
class LinkPreview:
    """What ``retry_event(customer_email=…)`` would link, for the person to confirm first (it cannot be undone:
    the events it applies write payments and commissions): the Stripe customer, the email Stripe has for it on
    the event, the Apertur user, whether the link exists already, and how many other given-up events name it."""

    event_id: str
    customer_id: str
    stripe_email: str
    user_email: str
    already_linked: bool
    others_given_up: int


def preview_link(*, event_id: str, customer_email: str) -> LinkPreview:
    """Check what :func:`retry_event` would check before linking, and say what it would do; changes nothing."""
    row = _retryable(event_id, StripeEvent.objects.all())
    customer_id, user = _customer_and_user(row, customer_email)
    link = BillingCustomer.objects.select_related("user").filter(external_id=customer_id).first()
    if link is not None:
        _refuse_another_users(link, user)
    obj = row.payload["data"]["object"]
    others = StripeEvent.objects.filter(status=EventStatus.IGNORED, detail__endswith=unknown_customer(customer_id))
    return LinkPreview(
        event_id=row.event_id,
        customer_id=customer_id,
        stripe_email=str(obj.get("customer_email") or ""),
        user_email=user.email,
        already_linked=link is not None,
        others_given_up=others.exclude(pk=row.pk).count(),
    )


def _retryable(event_id: str, rows: QuerySet[StripeEvent]) -> StripeEvent:
    """The stored event ``event_id`` (from ``rows``: locked or not), unless it is unknown or applied already."""
    row = rows.filter(event_id=event_id).first()
    if row is None:
        raise StripeEventNotFound(f"No Stripe event {event_id} is stored.")
    if row.status == EventStatus.PROCESSED:
        raise StripeEventAlreadyApplied(f"Stripe event {event_id} is already applied: {row.detail}")
    return row


def _customer_and_user(row: StripeEvent, customer_email: str) -> tuple[str, User]:
    """The Stripe customer id ``row`` names and the Apertur user with ``customer_email``, or the refusal."""
    user = User.objects.filter(email=normalize_email(customer_email)).first()
    if user is None:
        raise UserNotFound(f"No Apertur user has the email {customer_email}.")
    obj = (row.payload.get("data") or {}).get("object") or {}
    customer_id = id_of(obj.get("customer")) if isinstance(obj, dict) else None
    if customer_id is None:
        raise CustomerNotLinkable(f"Stripe event {row.event_id} names no Stripe customer: there is nothing to link.")
    return customer_id, user


def _refuse_another_users(link: BillingCustomer, user: User) -> None:
    """A Stripe customer id is one user's, the first it was linked to: never moved by a retry."""
    if link.user_id != user.pk:
        raise CustomerNotLinkable(f"Stripe customer {link.external_id} is already linked to {link.user.email}.")


def _link_customer(row: StripeEvent, customer_email: str, *, actor: Any) -> str:
    customer_id, user = _customer_and_user(row, customer_email)
    # get_or_create: a delivery linking the same id meanwhile is found, not an IntegrityError.
    link, created = BillingCustomer.objects.get_or_create(external_id=customer_id, defaults={"user": user})
    _refuse_another_users(link, user)
    if created:
        audit.record(
            action="stripe.customer_linked",
            obj=user,
            actor=actor,
            data={"customer_id": customer_id, "user": user.public_id, "event_id": row.event_id},
        )
    return customer_id


def _apply_again(row: StripeEvent, *, actor: Any) -> tuple[Outcome, str]:
    """Apply ``row`` (locked) again; the outcome and the status it had before."""
    before = str(row.status)
    _apply(row)
    if row.status == EventStatus.WAITING and before != EventStatus.WAITING:
        row.status, row.detail = EventStatus.IGNORED, f"retried, still waiting: {row.detail}"[:300]
    row.save()
    audit.record(
        action="stripe.event_retried",
        obj=row,
        actor=actor,
        data={"event_id": row.event_id, "type": row.type, "from": before, "to": row.status, "detail": row.detail},
    )
    return Outcome(row.event_id, row.status, row.detail), before
