"""Reading the ledger: balances are sums of entries at a moment (the clock's now by default), and the
partner dashboard's earnings, monthly series, referral funnel and payout estimate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from django.db import models
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from apertur.accounts.models import User
from apertur.commissions import payability
from apertur.commissions.models import (
    OWN_EARNING_KEY_PREFIX,
    CommissionEntry,
    EntryKind,
    paid_by_run,
    paid_entry_ids,
    paid_out_cents,
    unsent_cents,
)
from apertur.core import clock
from apertur.core.lookups import AnyOf
from apertur.core.pages import Page, page_of
from apertur.oauth import selectors as oauth_selectors
from apertur.partners.models import Partner
from apertur.projects.models import Payment
from apertur.referrals.models import Attribution, AttributionSource, ReferralLink


@dataclass(frozen=True, slots=True)
class Balance:
    pending_cents: int  # still on hold
    eligible_cents: int  # hold over, not yet paid; net of reversals and clawbacks (may be negative)
    carried_cents: int  # the part of eligible a past payout run left unpaid (not a payout's still being sent)
    paid_cents: int  # sent in payouts
    lifetime_cents: int  # everything earned, net of reversals and clawbacks

    def as_json(self) -> dict[str, int]:
        return asdict(self)


def payout_run_in(year: int, month: int) -> dt.datetime:
    """The instant of a month's payout run: its 15th at 09:00 in Toronto (ARCHITECTURE 6). The one place that says
    so: the schedule below, and payouts.services.run_at for a period."""
    return dt.datetime(year, month, PAYOUT_DAY, PAYOUT_HOUR, tzinfo=clock.BUSINESS_TZ)


def last_payout_run_at(at: dt.datetime | None = None) -> dt.datetime:
    """The most recent payout run at or before ``at``: the 15th at 09:00 in Toronto of this month if that
    has passed, else of the previous month."""
    local = (at or clock.now()).astimezone(clock.BUSINESS_TZ)
    run = payout_run_in(local.year, local.month)
    if local >= run:
        return run
    previous = _add_months(local.date().replace(day=1), -1)
    return payout_run_in(previous.year, previous.month)


def _paid(partner: Partner, *, per_row: bool) -> Q | Exists:
    """Whether the outer query's entry of ``partner`` is paid (models.paid_entry_ids): one index probe per row
    (``per_row``: the 25 rows of a page), else one hashed list of the partner's paid entries' ids per query (a
    status filter over all its earnings). Not ``Exists`` for both: PostgreSQL then costs the per-row plan for every
    row, which is enough to JIT-compile the query."""
    if per_row:
        return Exists(paid_entry_ids(partner_id=partner.pk).filter(entry_id=OuterRef("pk")))
    return Q(pk__in=paid_entry_ids(partner_id=partner.pk))


def balance_and_next_payout(*, partner: Partner, at: dt.datetime | None = None) -> tuple[Balance, PayoutEstimate]:
    """:func:`balance` and :func:`next_payout` at ``at``: one pass over the partner's covering index for the sums of
    all its entries, and one over its payouts for what was paid (models.paid_out_cents). Every paid entry is in
    the unpaid sums' place too, and is taken out of them whole: a payout for period P pays entries of payments made
    before P's month whose hold was over by P's run (the invariants test), and it is sent at that run or later, so
    by ``at`` the entries of a payout sent by ``at`` are available, past the last run's hold and before its month:
    in ``eligible``, ``carried`` and the next run's estimate, never ``pending``."""
    now = at or clock.now()
    # A run whose date has passed but that was not made for the partner (the worker was down on the 15th, or the
    # run is still going) is the next one: the scheduler catches it up, for its own period. What is carried stays
    # dated by the schedule (ARCHITECTURE 6's carried_cents: what the runs due so far have not paid), a late run
    # having not paid it either.
    late = payability.late_run_at(partner=partner, at=now)
    coming = next_payout_at(now)
    last_run = last_payout_run_at(now)
    sums = {
        key: int(value or 0)
        for key, value in CommissionEntry.objects.filter(partner=partner)
        .aggregate(
            pending=Sum("amount_cents", filter=Q(available_at__gt=now)),
            eligible=Sum("amount_cents", filter=Q(available_at__lte=now)),
            carried=Sum("amount_cents", filter=paid_by_run(last_run)),
            due=Sum("amount_cents", filter=paid_by_run(coming)),
            # What the late run takes, in the same query: whether it pays the partner at all is decided below.
            **({"due_late": Sum("amount_cents", filter=paid_by_run(late))} if late is not None else {}),
            total=Sum("amount_cents"),
        )
        .items()
    }
    paid = paid_out_cents(partner_id=partner.pk, at=now)
    # Entries of a payout saved but not sent (PayPal not answering yet, or in staff review) are unpaid, but the
    # next run does not take them: they are that payout's. Out of the estimate, as out of the run.
    unsent = unsent_cents(partner_id=partner.pk)
    # The late run is the partner's next payout only if it pays them, by the run's own rule (services.run): a partner
    # it can pay (payability.why_not_paid, lent by the payouts app: approval, no staff hold, a verified PayPal email
    # PayPal has not refused) whose net by its rule reaches the minimum. Else it pays them nothing whenever it runs
    # (it carries their balance): they are told what they are told once it is made, the coming 15th and what that
    # run would take. The rule's query is asked last, and only while a run is late.
    if late is not None and not (
        reaches_minimum(sums["due_late"] - paid - unsent) and payability.why_not_paid(partner=partner) is None
    ):
        late = None
    run_at = late if late is not None else coming
    due = sums["due_late"] if late is not None else sums["due"]
    return (
        Balance(
            pending_cents=sums["pending"],
            eligible_cents=sums["eligible"] - paid,
            carried_cents=sums["carried"] - paid - unsent,
            paid_cents=paid,
            lifetime_cents=sums["total"],
        ),
        PayoutEstimate(
            run_at=run_at,
            eligible_cents=due - paid - unsent,
            unsent_cents=unsent,
            late=late is not None and now >= late + LATE_AFTER,
        ),
    )


def balance(*, partner: Partner, at: dt.datetime | None = None) -> Balance:
    """The partner's ledger at ``at``. ``carried_cents`` is what the last payout run (the most recent
    15th at 09:00 Toronto at or before ``at``) could have paid and left unpaid: the unpaid entries of
    payments made before the 1st of that run's month whose hold had ended by that run (a balance under
    the minimum, a negative one, or one held for a missing verified PayPal email). It is part of
    ``eligible_cents``. Entries linked to a payout not yet sent (PayPal not answering yet, or in staff review) count
    as unpaid in ``eligible_cents`` but not as carried: the run did not leave them, it is paying them."""
    return balance_and_next_payout(partner=partner, at=at)[0]


# --- the partner dashboard ------------------------------------------------------------------------------
#
# Every reader below costs a fixed number of queries whatever the number of rows: sums and statuses are
# computed by the database (annotate/aggregate), customers and projects come with select_related.

PAGE_SIZE = 25
PAYOUT_MINIMUM_CENTS = 5_000
PAYOUT_DAY, PAYOUT_HOUR = 15, 9  # payout runs are dated the 15th, 09:00 America/Toronto (ARCHITECTURE 6)


def reaches_minimum(net_cents: int) -> bool:
    """Whether a payout run pays a net of ``net_cents``: under the minimum (or negative) it is carried forward
    instead. The run's rule (payouts.services.run), and every estimate's."""
    return net_cents >= PAYOUT_MINIMUM_CENTS


class EarningStatus(models.TextChoices):
    """An earning as the partner sees it (issue 7): decided in this order."""

    REVERSED = "reversed", "Reversed"  # refunds, chargebacks or clawbacks took it all back (net ≤ 0)
    PAID = "paid", "Paid"  # sent in a payout
    PENDING = "pending", "Pending"  # still inside the 30-day hold
    ELIGIBLE = "eligible", "Eligible"  # hold over, waiting for the next payout


class EarningSort(models.TextChoices):
    NEWEST = "-date", "Newest first"
    OLDEST = "date", "Oldest first"
    LARGEST = "-amount", "Highest commission"
    SMALLEST = "amount", "Lowest commission"


_ORDERINGS: dict[str, tuple[str, ...]] = {
    EarningSort.NEWEST: ("-paid_at", "-id"),
    EarningSort.OLDEST: ("paid_at", "id"),
    EarningSort.LARGEST: ("-amount_cents", "-paid_at", "-id"),
    EarningSort.SMALLEST: ("amount_cents", "paid_at", "id"),
}


def mask_email(email: str) -> str:
    """``anna@example.com`` → ``an***@example.com``: enough for a partner to recognise a customer they
    know, not enough to contact one they do not. Short local parts keep one character only."""
    local, _, domain = email.rpartition("@")
    if not local:
        return "***"
    keep = 2 if len(local) >= 4 else 1
    return f"{local[:keep]}***@{domain}"


@dataclass(frozen=True, slots=True)
class EarningFilters:
    date_from: dt.date | None = None  # payment date in Toronto, inclusive
    date_to: dt.date | None = None  # payment date in Toronto, inclusive
    customer: str = ""  # a customer's public id (usr_…) or masked label (an***@example.com)
    status: str = ""  # an EarningStatus value, or "" for all
    sort: str = EarningSort.NEWEST


@dataclass(frozen=True, slots=True)
class Earning:
    """One payment's commission, as shown to the partner (never the customer's full email)."""

    id: int
    paid_at: dt.datetime
    customer: str
    project: str
    payment_cad_cents: int
    commission_cents: int
    net_cents: int
    status: EarningStatus
    available_at: dt.datetime

    @property
    def date(self) -> dt.date:
        return clock.business_date(self.paid_at)


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=clock.BUSINESS_TZ)


def _customer_ids(partner: Partner) -> QuerySet[CommissionEntry, Any]:
    """The customers the partner earned on (a subquery over the partner's own entries)."""
    return CommissionEntry.objects.filter(partner=partner, customer__isnull=False).order_by().values("customer_id")


def _customers(partner: Partner) -> QuerySet[User]:
    """The customers the partner earned on: one array of the partner's distinct customer ids (from its ledger
    index), then those users by primary key (``AnyOf``: as ``IN (subquery)`` PostgreSQL hash-joined every user of
    the platform, 16 ms for the largest partner, 70 ms with a filter on the email)."""
    return User.objects.filter(AnyOf(F("pk"), _customer_ids(partner).distinct()))


def _customers_with_label(*, partner: Partner, label: str) -> list[int]:
    candidates = _customers(partner).values_list("pk", "email")
    return [pk for pk, email in candidates if mask_email(email) == label.lower()]


def _own_earnings(partner: Partner) -> QuerySet[CommissionEntry]:
    """Each payment's own earning (``earned:<payment id>``), said as "the partner's earned entries but the
    re-earnings of won disputes": the first part is read from the partner's covering index, the few re-earnings
    from their partial index, so that counting, filtering and sorting a partner's earnings never reads the table
    (the source key is not in the covering index: asked directly, it meant one heap visit per entry)."""
    earned = CommissionEntry.objects.filter(partner=partner, kind=EntryKind.EARNED)
    re_earned = earned.exclude(source_key__startswith=OWN_EARNING_KEY_PREFIX).order_by().values("pk")
    return earned.exclude(pk__in=re_earned)


def _reversed_payments(partner: Partner) -> QuerySet[CommissionEntry, Any]:
    """The partner's payments whose entries net to zero or less (a subquery). Only a payment with a reversal or
    a clawback can (earned entries are positive): the sums are taken over those few payments only."""
    taken_back = (
        CommissionEntry.objects.filter(partner=partner, kind__in=[EntryKind.REVERSAL, EntryKind.CLAWBACK])
        .order_by()
        .values("payment_id")
    )
    return (
        CommissionEntry.objects.filter(partner=partner, payment_id__in=taken_back)
        .order_by()
        .values("payment_id")
        .annotate(total=Sum("amount_cents"))
        .filter(total__lte=0)
        .values("payment_id")
    )


def _status_is(status: str, *, partner: Partner, reversed_payment: Q, now: dt.datetime) -> list[Any]:
    """The conditions under which ``earning_list``'s ``status`` annotation (its CASE) is ``status``: each case is
    "none of the cases before it, and its own". Said directly rather than as ``CASE … = status`` so that
    PostgreSQL tests the cheap conditions first and reads the partner's paid entries only where a row can reach
    them: not at all for ``reversed``; one index probe per row for ``pending`` (the last 30 days' entries, a
    handful); one hashed list per query for ``paid`` and ``eligible``, which cover most rows. An unknown status
    matches nothing, as the CASE would."""
    if status == EarningStatus.REVERSED:
        return [reversed_payment]
    if status == EarningStatus.PAID:
        return [~reversed_payment, _paid(partner, per_row=False)]
    if status == EarningStatus.PENDING:
        return [~reversed_payment, Q(available_at__gt=now), ~_paid(partner, per_row=True)]
    if status == EarningStatus.ELIGIBLE:
        return [~reversed_payment, Q(available_at__lte=now), ~_paid(partner, per_row=False)]
    return [Q(pk__in=[])]


def earning_list(
    *, partner: Partner, filters: EarningFilters | None = None, at: dt.datetime | None = None
) -> QuerySet[CommissionEntry]:
    """The partner's earnings, one per payment: the payment's own ``earned`` entry annotated with
    ``net_cents`` (everything the ledger holds for that payment) and ``status`` (EarningStatus at ``at``)."""
    f = filters or EarningFilters()
    now = at or clock.now()
    net = (
        CommissionEntry.objects.filter(partner=partner, payment=OuterRef("payment"))
        .order_by()
        .values("payment")
        .annotate(total=Sum("amount_cents"))
        .values("total")
    )
    # One hashed list of the partner's reversed payments, computed once per query, rather than the per-row net
    # subquery: filtering or counting by status never runs a subquery per row (the planner costed one per row, so
    # PostgreSQL also JIT-compiled those queries: 14 ms each).
    reversed_payment = Q(payment_id__in=_reversed_payments(partner))
    qs = (
        _own_earnings(partner)
        .select_related("payment__project", "payment__customer")
        .annotate(net_cents=Coalesce(Subquery(net, output_field=BigIntegerField()), Value(0)))
        .annotate(
            status=Case(
                When(reversed_payment, then=Value(EarningStatus.REVERSED.value)),
                When(_paid(partner, per_row=True), then=Value(EarningStatus.PAID.value)),
                When(available_at__gt=now, then=Value(EarningStatus.PENDING.value)),
                default=Value(EarningStatus.ELIGIBLE.value),
                output_field=CharField(),
            )
        )
    )
    if f.date_from is not None:
        qs = qs.filter(paid_at__gte=_day_start(f.date_from))
    if f.date_to is not None and f.date_to < dt.date.max:  # the calendar's last day has no day after it: no bound
        qs = qs.filter(paid_at__lt=_day_start(f.date_to + dt.timedelta(days=1)))
    customer = f.customer.strip()
    if customer.startswith("usr_"):
        qs = qs.filter(customer__public_id=customer)
    elif "***@" in customer:
        qs = qs.filter(customer_id__in=_customers_with_label(partner=partner, label=customer))
    elif customer:
        qs = qs.none()
    if f.status:
        qs = qs.filter(*_status_is(f.status, partner=partner, reversed_payment=reversed_payment, now=now))
    return qs.order_by(*_ORDERINGS.get(f.sort, _ORDERINGS[EarningSort.NEWEST]))


def earning_rows(entries: Iterable[CommissionEntry]) -> Iterator[Earning]:
    for entry in entries:
        payment = entry.payment
        yield Earning(
            id=entry.pk,
            paid_at=payment.paid_at,
            customer=mask_email(payment.customer.email) if payment.customer else "Unknown customer",
            project=payment.project.name,
            payment_cad_cents=payment.amount_cad_cents,
            commission_cents=entry.amount_cents,
            net_cents=int(entry.net_cents),  # type: ignore[attr-defined]
            status=EarningStatus(entry.status),  # type: ignore[attr-defined]
            available_at=entry.available_at,
        )


EarningPage = Page[Earning]


def earning_page(
    *,
    partner: Partner,
    filters: EarningFilters | None = None,
    page: int | str | None = 1,
    at: dt.datetime | None = None,
) -> EarningPage:
    """One page of ``earning_list`` (PAGE_SIZE rows; an invalid or too large page number gives the
    nearest page)."""
    return page_of(
        earning_list(partner=partner, filters=filters, at=at),
        page=page,
        size=PAGE_SIZE,
        rows=earning_rows,
        late_join=True,
        # The page's 25 rows by key, without the filters that chose them (a status filter's hashed list of paid
        # entries would be built a third time): the same annotations, so the same rows.
        late_rows=earning_list(partner=partner, at=at),
    )


def customer_choices(*, partner: Partner) -> list[tuple[str, str]]:
    """(public id, masked label) of every customer the partner earned on, for the customer filter. Two
    customers with the same label are told apart by a number, never by more of their address."""
    customers = _customers(partner).order_by("email").values_list("public_id", "email")
    choices: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for public_id, email in customers:
        label = mask_email(email)
        seen[label] = seen.get(label, 0) + 1
        choices.append((public_id, label if seen[label] == 1 else f"{label} ({seen[label]})"))
    return choices


@dataclass(frozen=True, slots=True)
class MonthTotal:
    month: dt.date  # the first day of the month, in Toronto
    net_cents: int


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def monthly_earnings(*, partner: Partner, months: int = 12, at: dt.datetime | None = None) -> list[MonthTotal]:
    """Net commission (earned, less reversals and clawbacks) by the Toronto month of the payment, for the
    last ``months`` months including the current one, oldest first; months without payments are 0."""
    this_month = clock.business_date(at).replace(day=1)
    first = _add_months(this_month, -(months - 1))
    series = [_add_months(first, i) for i in range(months)]
    # One filtered sum per month between its Toronto boundaries: comparisons on the index's paid_at, rather
    # than converting every entry's time to Toronto to truncate it (4.5 ms instead of 7.5 for 16,000 entries).
    starts = [_day_start(m) for m in (*series, _add_months(this_month, 1))]
    totals = CommissionEntry.objects.filter(partner=partner, paid_at__gte=starts[0], paid_at__lt=starts[-1]).aggregate(
        **{
            f"m{i}": Sum("amount_cents", filter=Q(paid_at__gte=starts[i], paid_at__lt=starts[i + 1]))
            for i in range(months)
        }
    )
    return [MonthTotal(month=m, net_cents=int(totals[f"m{i}"] or 0)) for i, m in enumerate(series)]


@dataclass(frozen=True, slots=True)
class Funnel:
    clicks: int  # on the partner's referral links
    signups: int  # customers attributed through a referral link
    paying_customers: int  # of those, customers with at least one payment
    oauth_customers: int  # customers attributed through one of the partner's OAuth apps
    oauth_paying_customers: int


def referral_funnel(*, partner: Partner) -> Funnel:
    paid = Payment.objects.filter(customer=OuterRef("customer"))
    # Grouped by (source, has paid): the payment lookup runs once per customer (four filtered counts over the
    # annotation repeated it in each count that reads it).
    groups = (
        Attribution.objects.filter(partner=partner)
        .annotate(has_paid=Exists(paid))
        .order_by()
        .values_list("source", "has_paid")
        .annotate(n=Count("pk"))
    )
    counts = {(source, bool(has_paid)): n for source, has_paid, n in groups}

    def customers(source: str, *, paying: bool = False) -> int:
        return counts.get((source, True), 0) + (0 if paying else counts.get((source, False), 0))

    return Funnel(
        clicks=ReferralLink.objects.filter(partner=partner).aggregate(n=Sum("click_count"))["n"] or 0,
        signups=customers(AttributionSource.REFERRAL),
        paying_customers=customers(AttributionSource.REFERRAL, paying=True),
        oauth_customers=customers(AttributionSource.OAUTH),
        oauth_paying_customers=customers(AttributionSource.OAUTH, paying=True),
    )


@dataclass(frozen=True, slots=True)
class AppConnections:
    name: str
    client_id: str
    connected_projects: int


def connected_projects(*, partner: Partner) -> list[AppConnections]:
    """Active connections per OAuth app (the OAuth portal's own count)."""
    apps = oauth_selectors.app_list(partner=partner).prefetch_related(None).order_by("name", "id")
    return [
        AppConnections(name=app.name, client_id=app.client_id, connected_projects=app.connected_projects)  # type: ignore[attr-defined]
        for app in apps
    ]


#: A run not made this long after its time is said to be late. Before, it is the next run still (the scheduler
#: starts it within its interval, 5 minutes by default, and 10,000 partners take well under a minute): at 09:00:30
#: on the 15th every partner read "late" about a run on time.
LATE_AFTER = dt.timedelta(hours=1)


def next_payout_at(at: dt.datetime | None = None) -> dt.datetime:
    """The next payout run: this month's 15th at 09:00 in Toronto if that is still ahead, else next
    month's."""
    local = (at or clock.now()).astimezone(clock.BUSINESS_TZ)
    run = payout_run_in(local.year, local.month)
    if local < run:
        return run
    following = _add_months(local.date().replace(day=1), 1)
    return payout_run_in(following.year, following.month)


@dataclass(frozen=True, slots=True)
class PayoutEstimate:
    run_at: dt.datetime
    eligible_cents: int  # the eligible balance as of the run, if nothing else happens before it
    minimum_cents: int = PAYOUT_MINIMUM_CENTS
    # What payouts saved but not sent hold (models.unsent_cents): left out of ``eligible_cents``, as out of the run.
    unsent_cents: int = 0
    # ``run_at`` has passed and the run was not made for the partner yet: it pays them as soon as it runs (a late
    # run that would pay them nothing is never their next payout: see balance_and_next_payout).
    late: bool = False

    @property
    def will_pay(self) -> bool:
        return reaches_minimum(self.eligible_cents)


def next_payout(*, partner: Partner, at: dt.datetime | None = None) -> PayoutEstimate:
    """What the next payout run would pay the partner if nothing else happens before it: the unpaid entries the
    run's rule takes (models.paid_by_run). The next run is a late one, if a run whose date has passed was not made
    for the partner yet and will pay them (``late``), else the next 15th at 09:00 Toronto."""
    return balance_and_next_payout(partner=partner, at=at)[1]
