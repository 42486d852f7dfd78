"""What each Stripe event means for Apertur. Times come from the objects (``status_transitions.paid_at``,
a refund's ``created``, the subscription event's ``created``), never from the moment of delivery.

A handler raises :class:`Skip` when the event does not concern Apertur (stored as ignored) and
:class:`Wait` when it refers to something a not-yet-received event creates (stored as waiting and
retried after every processed event), so delivery order never changes the outcome."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import CharField, Q

from apertur.accounts.models import User, normalize_email
from apertur.commissions import notices
from apertur.commissions import services as ledger
from apertur.core import clock
from apertur.core.money import Money, convert
from apertur.integrations.stripe.models import InvoicePaymentLink
from apertur.projects.errors import UnknownPlan
from apertur.projects.models import (
    PLAN_GIVING_STATUSES,
    RATE_DECIMAL_PLACES,
    BillingCustomer,
    Dispute,
    DisputeStatus,
    ExchangeRate,
    Payment,
    Plan,
    Project,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import change_plan
from apertur.referrals.services import attribute_by_oauth


class Skip(Exception):
    pass


class Wait(Exception):
    pass


class WaitForStaff(Wait):
    """A wait only a person can end (a CAD rate nobody added yet): the event waits as any other, and staff are told
    at once (once a day per ``key`` while it lasts), with ``subject`` and what to do (``lines``)."""

    def __init__(self, detail: str, *, key: str, subject: str, lines: list[str]) -> None:
        super().__init__(detail)
        self.key, self.subject, self.lines = key, subject, lines


def ts(value: Any) -> dt.datetime:
    """A Stripe time: a JSON integer of Unix seconds. A string, a float or a boolean is no time Stripe sends (``int``
    took "1773144000" and 1773144000.5 as one): :class:`ValueError`, as a malformed object."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"not a Unix time: {value!r}"[:80])
    return dt.datetime.fromtimestamp(value, tz=dt.UTC)


#: Stripe's amounts have at most 8 digits (12 for a few zero-decimal currencies); past this no amount is real, and
#: its CAD conversion and commission stay far inside the BIGINT columns.
MAX_AMOUNT = 10**12


def amount_of(value: Any) -> int:
    """A Stripe amount in the currency's smallest unit: a JSON integer, 0 to :data:`MAX_AMOUNT`. Anything else (a
    string, a float ``int`` truncated, a negative amount that would have written a negative payment or refund into
    the ledger, a boolean) is :class:`ValueError`: the event is stored ``failed`` and staff told, never applied."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT:
        raise ValueError(f"not an amount: {value!r}"[:80])
    return value


def currency_of(value: Any) -> str:
    """A Stripe currency: a three-letter ISO code (Stripe sends it lowercase), upper-cased; else :class:`ValueError`."""
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
        raise ValueError(f"not a currency code: {value!r}"[:80])
    return value.upper()


def _metadata_user(*objects: dict[str, Any]) -> User | None:
    for obj in objects:
        public_id = (obj.get("metadata") or {}).get("apertur_user_id")
        if public_id:
            return User.objects.filter(public_id=public_id).first()
    return None


#: The narrowest column a Stripe id is stored in (payments, refunds, disputes, customers, subscriptions, invoice
#: payments), read from the models as ``services.parse`` reads the event's. Stripe's ids are about 30 characters; a
#: longer one was PostgreSQL's DataError, a 500.
MAX_ID = min(
    field.max_length or 0
    for model, names in (
        (Payment, ("external_id", "charge_id")),
        (Refund, ("external_id",)),
        (Dispute, ("external_id",)),
        (BillingCustomer, ("external_id",)),
        (Subscription, ("external_id",)),
        (InvoicePaymentLink, ("external_id", "invoice_id", "charge_id", "payment_intent_id")),
    )
    for name in names
    if isinstance(field := model._meta.get_field(name), CharField)
)


def id_of(reference: Any) -> str | None:
    """The id a Stripe object gives for another (``customer``, ``charge``): the id itself, or the expanded
    object's ``id``; None when there is none. One longer than :data:`MAX_ID` is no Stripe id: :class:`ValueError`,
    as a malformed object."""
    if isinstance(reference, dict):
        reference = reference.get("id")
    if not (isinstance(reference, str) and reference):
        return None
    if len(reference) > MAX_ID:
        raise ValueError(f"an id longer than {MAX_ID} characters: {reference[:40]!r}…")
    return reference


def own_id(obj: dict[str, Any]) -> str:
    """The object's own ``id``, which every object Apertur stores has: a string, else :class:`KeyError`."""
    found = id_of(obj)
    if found is None:
        raise KeyError(f"id (a string), not {obj.get('id')!r}"[:80])
    return found


def _link(customer_id: str | None, user: User) -> None:
    """Remember which user a Stripe customer id is: every id a user's objects name, so an event that names only
    the id (a subscription's) finds the user; an id already linked stays its first user's."""
    if customer_id:
        BillingCustomer.objects.get_or_create(external_id=customer_id, defaults={"user": user})


def unknown_customer(customer_id: str) -> str:
    """What an event waits for when it names a Stripe customer id nothing links to a user yet (its detail)."""
    return f"unknown customer {customer_id}"


def customer_for(obj: dict[str, Any]) -> User:
    """The Apertur user behind a Stripe object: ``metadata.apertur_user_id`` (on the object, its
    subscription details or its expanded customer), then a known customer id, then the invoice's
    ``customer_email``. The customer id is remembered once found.

    An event naming an unknown customer id waits (:class:`Wait`): Stripe does not promise delivery order,
    and the event that tells who it is (an invoice with the customer's email, a ``customer.*`` event with
    the metadata) may come later. A subscription, which carries no email, is usually delivered before its
    first invoice."""
    customer = obj.get("customer")
    customer_id = id_of(customer)
    user = _metadata_user(obj, _subscription_details(obj), customer if isinstance(customer, dict) else {})
    if user is None and customer_id:
        link = BillingCustomer.objects.select_related("user").filter(external_id=customer_id).first()
        user = link.user if link else None
    if user is None and obj.get("customer_email"):
        user = User.objects.filter(email=normalize_email(obj["customer_email"])).first()
    if user is None:
        if customer_id:
            raise Wait(unknown_customer(customer_id))
        raise Skip(f"unknown customer {obj.get('customer_email') or ''}".strip())
    _link(customer_id, user)
    return user


def _subscription_details(invoice: dict[str, Any]) -> dict[str, Any]:
    """The details (metadata) of the subscription an invoice bills: its ``subscription_details`` before Stripe API
    version 2025-03-31, its ``parent.subscription_details`` since; empty when there are none."""
    details = invoice.get("subscription_details") or (invoice.get("parent") or {}).get("subscription_details")
    return details if isinstance(details, dict) else {}


def customer_event(event: dict[str, Any]) -> str:
    """``customer.created`` / ``customer.updated``: a customer carrying ``metadata.apertur_user_id`` is that
    user from now on (and what waited on that customer id is retried)."""
    customer = event["data"]["object"]
    public_id = (customer.get("metadata") or {}).get("apertur_user_id")
    if not public_id:
        raise Skip("customer without metadata.apertur_user_id")
    user = _metadata_user(customer)
    if user is None:
        raise Skip(f"no Apertur user {public_id}")
    _link(id_of(customer), user)
    return f"customer {customer['id']} is {user.public_id}"


def _project(user: User, obj: dict[str, Any]) -> Project:
    wanted = (obj.get("metadata") or {}).get("apertur_project_id")
    projects = Project.objects.filter(owner=user)
    project = (projects.filter(public_id=wanted).first() if wanted else None) or projects.order_by("created_at").first()
    if project is None:
        raise Skip(f"customer {user.public_id} has no project")
    return project


def _earn(payment: Payment) -> None:
    entry = ledger.on_payment(payment=payment)
    if entry is not None:
        notices.first_payment(entry=entry)


def _reapply_payments(user: User) -> None:
    # An attribution made now may cover payments that arrived earlier (out-of-order delivery). Its lock is held (made
    # or moved by this transaction): the payments' locks come after it, as on_payment takes them.
    for payment in ledger.customer_payments_locked(customer_id=user.pk):
        _earn(payment)


def _lookup_keys(items: Any) -> list[str]:
    """The price ``lookup_key`` of each item of a subscription (or of its ``previous_attributes``) that has one."""
    try:
        rows = items["data"]
    except (KeyError, TypeError):
        return []
    keys = []
    for row in rows if isinstance(rows, list) else []:
        try:
            key = row["price"]["lookup_key"]
        except (KeyError, TypeError):
            continue
        if isinstance(key, str) and key:
            keys.append(key)
    return keys


def _plan_of(items: Any) -> Plan | None:
    """The Apertur plan a subscription's (or ``previous_attributes``') items give: the dearest plan their prices'
    ``lookup_key`` names; an item naming no plan (an add-on) gives none. None when no item names a plan."""
    plans = []
    for key in _lookup_keys(items):
        try:
            plans.append(plan_by_name(key))
        except UnknownPlan:
            continue
    return max(plans, key=lambda plan: plan.price_cents, default=None)


def _started(sub: dict[str, Any], event: dict[str, Any]) -> dt.datetime:
    """When the customer subscribed: the subscription's own ``created``, which every event about it carries
    (``start_date`` can be backdated to a billing anchor before the customer did anything)."""
    return ts(sub.get("created") or sub.get("start_date") or event["created"])


def subscription_event(event: dict[str, Any]) -> str:
    """``customer.subscription.created|updated|deleted``, in whatever order Stripe delivers them.

    The plan and status of the subscription (and the project's plan) follow the most recent event by its
    ``created``: an older event delivered late changes no state. Every event still adds what it says about
    the past to the OAuth attribution: the subscription began at its own ``created`` (known from any of its
    events) on its first plan (the ``created`` event's, or the one an ``updated`` event lists in
    ``previous_attributes``), and an ``updated`` event to a dearer plan is an upgrade at that event's time."""
    sub = event["data"]["object"]
    user = customer_for(sub)
    lookup_keys = _lookup_keys(sub.get("items"))
    if not lookup_keys:
        raise Skip("subscription without a price lookup_key")
    plan = _plan_of(sub.get("items"))
    if plan is None:
        raise Skip(f"no Apertur plan named {', '.join(map(repr, lookup_keys))}")
    project = _project(user, sub)
    at = ts(event["created"])
    started = _started(sub, event)
    status = sub.get("status", "active")
    # ``incomplete_expired`` is terminal: the first payment never came and Stripe voided the invoice.
    deleted = event["type"] == "customer.subscription.deleted" or status in {"canceled", "incomplete_expired"}
    row, _created = Subscription.objects.select_for_update().get_or_create(
        external_id=own_id(sub), defaults={"project": project, "plan": plan, "started_at": started}
    )
    if started < row.started_at:
        row.started_at = started
    # Stripe's times are whole seconds: at a tie the later delivery wins, except a ``created`` event, which no
    # other event of the same subscription precedes.
    current = row.state_at is None or at > row.state_at or (at == row.state_at and not _is_created(event))
    previous = project.plan
    if current:
        row.plan, row.state_at = plan, at
        row.status = (
            SubscriptionStatus.CANCELED if deleted else (status if status in SubscriptionStatus.values else "active")
        )
        if deleted:
            row.canceled_at = at
    row.save()
    if current:
        change_plan(project=project, plan=_paid_plan(project))
    if not deleted and _attribute(
        event, user=user, plan=plan, started=started, at=at, previous=previous, current=current
    ):
        _reapply_payments(user)
    if deleted:
        return f"canceled {sub['id']}" if current else f"older cancellation of {sub['id']}: state kept"
    return (
        f"{project.public_id} on {plan.name}"
        if current
        else f"older state of {sub['id']} ({plan.name}): kept {row.plan.name}"
    )


def _paid_plan(project: Project) -> Plan:
    """The project's plan: the dearest of its subscriptions that give their plan (:data:`PLAN_GIVING_STATUSES`:
    not one whose first payment never came, nor one Stripe stopped collecting), else Free. A project can have had
    more than one: cancelling an old one does not take away the plan a newer one pays for."""
    running = (
        Subscription.objects.filter(project=project, status__in=PLAN_GIVING_STATUSES)
        .select_related("plan")
        .order_by("-plan__price_cents", "-id")
        .first()
    )
    return running.plan if running is not None else plan_by_name("Free")


def _is_created(event: dict[str, Any]) -> bool:
    return event["type"] == "customer.subscription.created"


def _attribute(
    event: dict[str, Any],
    *,
    user: User,
    plan: Plan,
    started: dt.datetime,
    at: dt.datetime,
    previous: Plan,
    current: bool,
) -> bool:
    """Attribute the customer through OAuth at the earliest qualifying moment this event shows: subscribing
    (at the subscription's start, on a paid first plan) or upgrading (a dearer plan than before, at the
    event's time). A renewal or any other update on the same plan is neither. True when an attribution was
    made or moved earlier, so that payments already received are examined again."""
    before = _plan_of((event["data"].get("previous_attributes") or {}).get("items"))
    if _is_created(event):
        first_plan: Plan | None = plan
    else:
        # The old price an ``updated`` event lists is the plan the subscription had before it: taken as its
        # plan since the start, so that an upgrade delivered before the ``created`` event still dates the
        # subscribing at the start (exact unless the price changed more than once before this event).
        first_plan = before
        if before is None and current:
            before = previous  # no change listed: compare with the state this event replaces
    moments = []
    if first_plan is not None and first_plan.is_paid:
        # The ``created`` event's own time (ARCHITECTURE 6; Stripe sends it as the subscription is created), or,
        # learnt from a later event delivered first, the subscription's ``created``: the same moment.
        moments.append(at if _is_created(event) else started)
    if not _is_created(event) and before is not None and plan.is_paid and plan.price_cents > before.price_cents:
        moments.append(at)
    return any(attribute_by_oauth(customer=user, at=moment) is not None for moment in sorted(moments))


def _cad_rate(currency: str, invoice: dict[str, Any], paid_at: dt.datetime) -> Decimal:
    if currency == "CAD":
        return Decimal(1)
    charge = invoice.get("charge")
    if isinstance(charge, dict) and isinstance(charge.get("balance_transaction"), dict):
        rate = charge["balance_transaction"].get("exchange_rate")
        if rate:
            # At the precision the payment keeps it (cad_rate): the payment and its refunds convert at one rate.
            return Decimal(str(rate)).quantize(Decimal(1).scaleb(-RATE_DECIMAL_PLACES))
    day = clock.business_date(paid_at)
    row = ExchangeRate.objects.filter(currency=currency, date__lte=day).order_by("-date").first()
    if row is None:
        # Webhooks never carry an expanded balance transaction: the rate table is what converts a payment not in
        # CAD. Without a rate the payment waits for one (the pass after it is added applies it), never dropped.
        raise WaitForStaff(
            f"no CAD rate for {currency} on {day}",
            key=f"no-rate:{currency}:{day}",
            subject=f"A Stripe payment in {currency} waits for a CAD rate for {day}",
            lines=[
                f"A payment in {currency}, paid on {day} (Toronto), cannot be converted to CAD: the rate table has no "
                f"rate for {currency} on or before that day. It is stored and waits: no payment, no commission yet.",
                "",
                f"What to do: add the rate (CAD per 1 {currency}, dated {day} or earlier) at "
                f"{settings.APERTUR_BASE_URL}/admin/projects/exchangerate/add/ . The worker's hourly pass then "
                "applies every payment that waited for it; to apply one at once: apertur billing retry <event id>.",
            ],
        )
    return row.rate


def _charge_of(invoice: dict[str, Any]) -> str:
    """The id of the charge that paid the invoice: its ``charge`` before Stripe API version 2025-03-31; since, the
    first paid one its (expanded) ``payments`` or an ``invoice_payment.paid`` event named; "" when none did."""
    charge = id_of(invoice.get("charge"))
    if charge is None:
        for item in (invoice.get("payments") or {}).get("data") or []:
            charge = id_of((item.get("payment") or {}).get("charge")) if item.get("status") == "paid" else None
            if charge:
                break
    if charge is None:
        charge = (
            InvoicePaymentLink.objects.filter(invoice_id=own_id(invoice))
            .exclude(charge_id="")
            .order_by("id")
            .values_list("charge_id", flat=True)
            .first()
        )
    return charge or ""


def invoice_paid(event: dict[str, Any]) -> str:
    invoice = event["data"]["object"]
    user = customer_for(invoice)
    project = _project(user, _subscription_details(invoice) or invoice)
    paid_at = ts((invoice.get("status_transitions") or {}).get("paid_at") or event["created"])
    currency = currency_of(invoice.get("currency", "cad"))
    amount = amount_of(invoice["amount_paid"])
    rate = _cad_rate(currency, invoice, paid_at)
    payment, _created = Payment.objects.get_or_create(
        external_id=own_id(invoice),
        defaults={
            "project": project,
            "customer": user,
            "charge_id": _charge_of(invoice),
            "amount_cents": amount,
            "currency": currency,
            "amount_cad_cents": convert(Money(amount, currency), to="CAD", rate=rate).cents,
            "cad_rate": rate,
            "description": str(invoice.get("description") or "")[:200],
            "paid_at": paid_at,
        },
    )
    _earn(payment)
    return f"payment {payment.external_id} {payment.amount_cad_cents} CAD cents"


NO_PAYMENT_YET = "no payment yet for charge "


def payment_for(
    charge_id: str | None, *, invoice_id: str | None = None, payment_intent_id: str | None = None
) -> Payment | None:
    """The stored payment a charge (or its PaymentIntent, or its invoice) belongs to: by the charge id the payment
    was stored with; by the invoice a charge names (API versions before 2025-03-31); else by what an
    ``invoice_payment.paid`` event said paid the invoice (since: an invoice names no charge, a charge no invoice)."""
    payment = Payment.objects.filter(charge_id=charge_id).first() if charge_id else None
    if payment is None and invoice_id:
        payment = Payment.objects.filter(external_id=invoice_id).first()
    paid_by = [Q(charge_id=charge_id)] if charge_id else []
    paid_by += [Q(payment_intent_id=payment_intent_id)] if payment_intent_id else []
    if payment is None and paid_by:
        links = InvoicePaymentLink.objects.filter(Q(*paid_by, _connector=Q.OR)).values("invoice_id")
        payment = Payment.objects.filter(external_id__in=links).order_by("id").first()
    return payment


def _payment_for_charge(charge_id: str, invoice_id: str | None = None, payment_intent_id: str | None = None) -> Payment:
    payment = payment_for(charge_id, invoice_id=invoice_id, payment_intent_id=payment_intent_id)
    if payment is None:
        raise Wait(f"{NO_PAYMENT_YET}{charge_id}")  # the charge id last: services.retry_event reads it back
    return payment


# A refund in one of these statuses never returns money (Stripe: a refund can fail even after it succeeded).
VOID_REFUND_STATUSES = frozenset({"failed", "canceled"})


def _record_refund(payment: Payment, item: dict[str, Any], *, at: dt.datetime) -> Refund:
    """One refund, once by its id whichever event brings it (``charge.refunded``'s list, ``refund.*``). It counts
    while it may return money; once an event shows it failed or canceled it is voided for good (``at``, the
    event's time), whatever order the events arrive in, and what it took back is earned again."""
    void = item.get("status") in VOID_REFUND_STATUSES
    external_id, amount = own_id(item), amount_of(item["amount"])
    refund, created = Refund.objects.get_or_create(
        external_id=external_id,
        defaults={
            "payment": payment,
            "amount_cents": amount,
            "amount_cad_cents": convert(Money(amount, payment.currency), to="CAD", rate=payment.cad_rate).cents,
            "created_at": ts(item["created"]),
            "voided_at": at if void else None,
        },
    )
    ledger.on_refund(refund=refund)  # counts nothing if voided
    if void and not created and refund.voided_at is None:
        # Under the row's lock, so two deliveries of the failure cannot both earn it again.
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.voided_at is None:
            refund.voided_at = at
            refund.save(update_fields=["voided_at"])
            ledger.on_refund_voided(refund=refund)
    return refund


def charge_refunded(event: dict[str, Any]) -> str:
    charge = event["data"]["object"]
    charge_id = own_id(charge)
    payment = _payment_for_charge(
        charge_id, id_of(charge.get("invoice")), payment_intent_id=id_of(charge.get("payment_intent"))
    )
    if not payment.charge_id:
        payment.charge_id = charge_id
        payment.save(update_fields=["charge_id"])
    refunds = (charge.get("refunds") or {}).get("data")
    if refunds is None:
        # Since API version 2022-11-15 a charge no longer lists its refunds unless expanded: each refund then
        # arrives on its own as ``refund.created``, with its id and time.
        return f"no refunds listed on {charge['id']}: recorded from refund.created"
    at = ts(event["created"])
    recorded = [_record_refund(payment, item, at=at) for item in refunds]
    voided = sum(1 for refund in recorded if refund.voided_at is not None)
    return f"{len(refunds)} refund(s) on {payment.external_id}" + (f", {voided} failed or canceled" if voided else "")


def refund_event(event: dict[str, Any]) -> str:
    """``refund.created|updated|failed`` and the older ``charge.refund.updated``: a refund of a payment's charge.
    One that failed or was canceled is recorded as voided: it takes nothing, and gives back what it took."""
    item = event["data"]["object"]
    charge_id = id_of(item.get("charge"))
    if charge_id is None:
        raise Skip(f"refund {item['id']} of no charge")
    payment = _payment_for_charge(charge_id, payment_intent_id=id_of(item.get("payment_intent")))
    refund = _record_refund(payment, item, at=ts(event["created"]))
    state = f" ({item['status']}: voided)" if refund.voided_at is not None else ""
    return f"refund {item['id']} on {payment.external_id}{state}"


#: Stripe's status (API versions since 2025-08-27) of a dispute its prevention blocked or resolved before it became a
#: chargeback: no money was withdrawn for it (a resolution refunds the payment, which arrives as a refund), and it is
#: final.
PREVENTED = "prevented"


def _is_inquiry(status: object) -> bool:
    """Stripe's inquiries (``warning_needs_response``, ``warning_under_review``, ``warning_closed``) withdraw no
    money; escalated to a chargeback, the same dispute moves to ``needs_response`` and on. A ``prevented`` dispute
    never became a chargeback either."""
    return isinstance(status, str) and (status.startswith("warning_") or status == PREVENTED)


def _dispute(obj: dict[str, Any]) -> Dispute:
    """The dispute, recorded once by its id. A chargeback takes the payment's commission back until it is won; an
    inquiry takes nothing unless an event shows it escalated (any event, in any order: escalation is for good)."""
    charge_id = id_of(obj["charge"])
    if charge_id is None:
        raise ValueError("dispute without a charge")  # stored as failed, as a malformed object
    payment = _payment_for_charge(charge_id, payment_intent_id=id_of(obj.get("payment_intent")))
    inquiry = _is_inquiry(obj.get("status"))
    dispute, _created = Dispute.objects.get_or_create(
        external_id=own_id(obj),
        defaults={
            "payment": payment,
            "amount_cents": amount_of(obj.get("amount", 0)),
            "opened_at": ts(obj["created"]),
            "status": DisputeStatus.INQUIRY if inquiry else DisputeStatus.OPEN,
        },
    )
    # Every event of the dispute locks its row first, before the payment's (settling the commission): an
    # escalation and a closing delivered at once took the two locks in opposite orders (a deadlock, one aborted),
    # and the closing's status is read here, under the lock, not before another event's change commits.
    dispute = Dispute.objects.select_for_update().get(pk=dispute.pk)
    if not inquiry and dispute.status in {DisputeStatus.INQUIRY, DisputeStatus.INQUIRY_CLOSED}:
        dispute.status = DisputeStatus.OPEN
        dispute.closed_at = None
        dispute.save(update_fields=["status", "closed_at"])
    ledger.on_dispute_opened(dispute=dispute)  # an inquiry settles to no change
    return dispute


def dispute_event(event: dict[str, Any]) -> str:
    """``charge.dispute.created|updated|funds_withdrawn``. One showing ``prevented`` closes the dispute: that status is
    final, whether or not a ``charge.dispute.closed`` follows."""
    if event["data"]["object"].get("status") == PREVENTED:
        return dispute_closed(event)
    dispute = _dispute(event["data"]["object"])
    return f"dispute {dispute.external_id} {dispute.status}"


# (Stripe's closing status, ours) → ours once closed: a chargeback is won or lost; an inquiry closes without one. A
# prevented dispute lost no money: one recorded as a chargeback (an earlier event) is as good as won.
_CLOSING: dict[tuple[object, str], DisputeStatus] = {
    ("won", DisputeStatus.OPEN): DisputeStatus.WON,
    ("lost", DisputeStatus.OPEN): DisputeStatus.LOST,
    ("warning_closed", DisputeStatus.INQUIRY): DisputeStatus.INQUIRY_CLOSED,
    (PREVENTED, DisputeStatus.INQUIRY): DisputeStatus.INQUIRY_CLOSED,
    (PREVENTED, DisputeStatus.OPEN): DisputeStatus.WON,
}


def dispute_closed(event: dict[str, Any]) -> str:
    obj = event["data"]["object"]
    dispute = _dispute(obj)  # a closed event delivered first also opens it
    closed = _CLOSING.get((obj.get("status"), dispute.status))
    if closed is not None:
        dispute.status = closed
        dispute.closed_at = ts(event["created"])
        dispute.save(update_fields=["status", "closed_at"])
    if dispute.status == DisputeStatus.WON:
        ledger.on_dispute_won(dispute=dispute)
    return f"dispute {dispute.external_id} {dispute.status}"


def invoice_payment_paid(event: dict[str, Any]) -> str:
    """``invoice_payment.paid`` (API versions since 2025-03-31): which PaymentIntent or charge paid an invoice,
    recorded whether or not the invoice's payment is stored yet, so that its refunds and disputes find it."""
    obj = event["data"]["object"]
    invoice_id = id_of(obj.get("invoice"))
    if invoice_id is None:
        raise ValueError("invoice payment without an invoice")  # stored as failed, as a malformed object
    paid = obj.get("payment") or {}
    charge_id, intent_id = id_of(paid.get("charge")) or "", id_of(paid.get("payment_intent")) or ""
    if not (charge_id or intent_id):
        raise Skip(f"invoice payment {obj['id']} names no charge or PaymentIntent")
    InvoicePaymentLink.objects.get_or_create(
        external_id=own_id(obj),
        defaults={"invoice_id": invoice_id, "charge_id": charge_id, "payment_intent_id": intent_id},
    )
    if charge_id:
        Payment.objects.filter(external_id=invoice_id, charge_id="").update(charge_id=charge_id)
    return f"invoice {invoice_id} paid by {intent_id or charge_id}"


HANDLERS = {
    "customer.created": customer_event,
    "customer.updated": customer_event,
    "customer.subscription.created": subscription_event,
    "customer.subscription.updated": subscription_event,
    "customer.subscription.deleted": subscription_event,
    "invoice.paid": invoice_paid,
    "invoice_payment.paid": invoice_payment_paid,
    "charge.refunded": charge_refunded,
    "refund.created": refund_event,
    "refund.updated": refund_event,
    "refund.failed": refund_event,
    "charge.refund.updated": refund_event,
    "charge.dispute.created": dispute_event,
    "charge.dispute.updated": dispute_event,
    "charge.dispute.funds_withdrawn": dispute_event,
    "charge.dispute.closed": dispute_closed,
}
