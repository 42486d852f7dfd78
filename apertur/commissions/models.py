from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q, QuerySet, Sum

from apertur.core import clock
from apertur.partners.models import Partner
from apertur.projects.models import Payment


class EntryKind(models.TextChoices):
    EARNED = "earned", "Earned"
    REVERSAL = "reversal", "Reversal"
    CLAWBACK = "clawback", "Clawback"


#: The source key of a payment's own earning is ``earned:<payment id>`` (services.earned_key); a won dispute
#: re-earns under another key. The dashboard tells them apart by this prefix (and a partial index by it too).
OWN_EARNING_KEY_PREFIX = "earned:"


# --- Paid: a fact of the payouts app -------------------------------------------------------------------------
#
# An entry is paid while a payout PayPal accepted links it: the payouts app's link (``PayoutEntry``, this model's
# reverse relation ``payout_links``) not released (released when the money came back), of a payout with a
# ``sent_at`` (a payout saved but not yet sent, or being retried, has none). It is derived from those rows, not
# written on every entry: the first payout run of a large program pays a million entries, and marking each one
# paid (a non-HOT update of a wide row with five indexes) was half of that run's time and three quarters of its
# WAL (docs/performance.md). The commissions app does not import the payouts app (ARCHITECTURE §3): it reads
# the link through the reverse relation, by these names, which apertur/payouts/tests/test_models.py pins.
PAYOUT_LINKS = "payout_links"


def _link_model() -> Any:
    """The payouts app's link model, through this model's reverse relation (no import of the payouts app)."""
    return CommissionEntry._meta.get_field(PAYOUT_LINKS).related_model


def paid_entry_ids(*, partner_id: int | None = None) -> QuerySet[Any]:
    """The ids (``entry_id``) of the paid entries, of one partner or of all: a subquery for ``pk__in`` (hashed
    once per query by PostgreSQL, as the dashboard uses it) or ``Exists`` (one entry)."""
    links = _link_model().objects.filter(released_at__isnull=True, payout__sent_at__isnull=False)
    if partner_id is not None:  # from the partner's few payouts, by the (payout, entry) index
        links = links.filter(payout__partner_id=partner_id)
    return links.order_by().values("entry_id")


def paid_out_cents(*, partner_id: int, at: dt.datetime) -> int:
    """What the partner had been paid at ``at``: the amounts of its payouts sent by then whose money had not come
    back by then. Equal to the sum of the entries those payouts link (each payout's amount is the sum of exactly
    the entries it links; payouts/tests/test_invariants.py checks both after every step of random histories), read
    from a partner's few payouts instead of matching thousands of entries against their links."""
    payout: Any = _link_model()._meta.get_field("payout").related_model
    sent = payout.objects.filter(partner_id=partner_id, sent_at__lte=at).filter(
        Q(returned_at__isnull=True) | Q(returned_at__gt=at)
    )
    return int(sent.aggregate(total=Sum("amount_cents"))["total"] or 0)


def unsent_cents(*, partner_id: int) -> int:
    """What the partner's payouts saved but not sent hold: the entries linked, not released, to a payout without a
    ``sent_at`` (one PayPal has not accepted yet, or one staff must review). They are not paid, but no run takes
    them again (they belong to that payout): the next run's estimate leaves them out, as the run does."""
    links = _link_model().objects.filter(
        released_at__isnull=True, payout__sent_at__isnull=True, payout__partner_id=partner_id
    )
    return int(links.aggregate(total=Sum("entry__amount_cents"))["total"] or 0)


def paid_by_run(run_at: dt.datetime) -> Q:
    """The entries a payout run dated ``run_at`` pays, if no payout has them yet: those of payments made before the
    1st of the run's month (Toronto) whose hold was over by the run. The run (payouts.services.unpaid_entries), the
    next run's estimate and the carried balance (commissions.selectors) all read this one rule."""
    local = run_at.astimezone(clock.BUSINESS_TZ)
    month_start = dt.datetime(local.year, local.month, 1, tzinfo=clock.BUSINESS_TZ)
    return Q(paid_at__lt=month_start, available_at__lte=run_at)


class CommissionEntryQuerySet(models.QuerySet["CommissionEntry"]):
    def paid(self) -> CommissionEntryQuerySet:
        return self.filter(pk__in=paid_entry_ids())

    def unpaid(self) -> CommissionEntryQuerySet:
        return self.exclude(pk__in=paid_entry_ids())


class CommissionEntry(models.Model):
    """The append-only commission ledger, in CAD cents (negative for reversals and clawbacks). Balances
    are sums of entries, never stored totals. ``source_key`` names the business event that wrote the
    entry; its uniqueness makes every event change the ledger at most once, whatever the retries."""

    # No index of its own: the (partner, paid_at) index below serves every lookup by partner.
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="commission_entries", db_index=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="commission_entries")
    # The payment's date and customer, copied when the entry is written (neither ever changes on a payment):
    # the dashboard and the payout run filter, sort and group a partner's entries by them without joining a
    # million payments. The customer is the payment's, whose own foreign key already protects the user: no
    # second constraint (deleting any user would scan the ledger for it, unindexed) and no index of its own
    # (the covering index below carries it for a partner's lookups).
    paid_at = models.DateTimeField()
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        db_index=False,
    )
    kind = models.CharField(max_length=8, choices=EntryKind.choices)
    amount_cents = models.BigIntegerField()
    # No index of its own: every query on it is either a partner's (the covering index below carries it) or the
    # payout run's over the whole ledger (a scan either way), and each entry written or marked paid would
    # update it.
    available_at = models.DateTimeField()
    # Unique through Meta.constraints rather than unique=True: the same unique index, without the second
    # (LIKE-pattern) index PostgreSQL gets for unique text fields; every entry written maintains each index.
    source_key = models.CharField(max_length=120)
    created_at = models.DateTimeField(default=clock.now)
    # Whether an entry is paid is not stored on it: see paid_entry_ids() below.

    objects = CommissionEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-available_at", "-id"]
        # A partner's entries by payment date (then id: the dashboard's order), with what the balance, the monthly
        # totals, the customer filter, the earnings table and the payout run read carried in the index
        # (PostgreSQL INCLUDE: index-only scans; ignored elsewhere). The two small partial indexes hold the
        # rare entries a partner's dashboard must single out among thousands without reading the table: the
        # reversals and clawbacks, and the re-earnings of won disputes (earned, but not the payment's own
        # earning, whose source key is "earned:<payment id>"; the source key is not in the covering index).
        indexes = [
            models.Index(
                fields=["partner", "paid_at", "id"],
                include=["available_at", "amount_cents", "kind", "customer", "payment"],
                name="commission_partner_paid_at",
            ),
            models.Index(
                fields=["partner", "payment"],
                condition=Q(kind__in=["reversal", "clawback"]),
                name="commission_taken_back",
            ),
            models.Index(
                fields=["partner"],
                condition=Q(kind="earned") & ~Q(source_key__startswith=OWN_EARNING_KEY_PREFIX),
                name="commission_re_earned",
            ),
        ]
        constraints = [models.UniqueConstraint(fields=["source_key"], name="commission_entry_source_key_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_cents} for {self.partner_id}"


class PartnerNotice(models.Model):
    """A commission email sent to a partner, once per ``key``: ``first-payment:<customer id>`` when a
    referred customer first earns the partner a commission, ``statement:<YYYY-MM>`` for a monthly
    statement. The unique pair, not a check in code, keeps two runs at once from sending twice."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="notices")
    key = models.CharField(max_length=80)
    sent_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["partner", "key"], name="one_notice_per_partner_and_key")]

    def __str__(self) -> str:
        return f"{self.key} to {self.partner_id}"
