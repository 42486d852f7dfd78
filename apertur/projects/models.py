from __future__ import annotations

from django.conf import settings
from django.db import models

from apertur.core import clock, tokens
from apertur.core.money import Money


class Plan(models.Model):
    """A price list entry. Prices are integer cents in CAD; limits are per project."""

    name = models.CharField(max_length=40, unique=True)
    price_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="CAD")
    interval = models.CharField(max_length=10, default="month")
    uploads_per_month = models.PositiveIntegerField()
    storage_bytes = models.BigIntegerField()
    max_active_sessions = models.PositiveIntegerField()
    max_file_bytes = models.BigIntegerField()
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def price(self) -> Money:
        return Money(self.price_cents, self.currency)

    @property
    def is_paid(self) -> bool:
        return self.price_cents > 0

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "price_cents": self.price_cents,
            "currency": self.currency,
            "interval": self.interval,
            "limits": {
                "uploads_per_month": self.uploads_per_month,
                "storage_bytes": self.storage_bytes,
                "active_sessions": self.max_active_sessions,
                "file_bytes": self.max_file_bytes,
            },
        }


def new_project_public_id() -> str:
    return f"prj_{tokens.random_string(16)}"


class Project(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_project_public_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="projects")
    created_at = models.DateTimeField(default=clock.now)
    # Settings (PATCH /api/v1/project/settings with project:settings)
    description = models.CharField(max_length=500, blank=True)
    default_session_days = models.PositiveIntegerField(null=True, blank=True)
    default_max_files = models.PositiveIntegerField(null=True, blank=True)
    notify_owner_on_upload = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="project_name_unique_per_owner"),
        ]

    def __str__(self) -> str:
        return self.name

    def as_json(self) -> dict[str, str]:
        return {"id": self.public_id, "name": self.name, "plan": self.plan.name}

    def settings_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "default_session_days": self.default_session_days,
            "default_max_files": self.default_max_files,
            "notify_owner_on_upload": self.notify_owner_on_upload,
        }


class ApiKey(models.Model):
    """A project's secret API key (``aptr_live_sk_…`` / ``aptr_test_sk_…``): full access to its project
    through /api/v1. Shown once; only its SHA-256 hash is stored."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    livemode = models.BooleanField(default=True)
    key_hash = models.CharField(max_length=64, unique=True)
    last4 = models.CharField(max_length=4)
    created_at = models.DateTimeField(default=clock.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (…{self.last4})"

    @property
    def prefix(self) -> str:
        return tokens.Prefix.LIVE_SECRET_KEY if self.livemode else tokens.Prefix.TEST_SECRET_KEY

    @property
    def masked(self) -> str:
        return f"{self.prefix}…{self.last4}"


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses. Stripe's terminal ``incomplete_expired`` (the first payment never came; the
    invoice is voided) is kept as ``canceled``."""

    ACTIVE = "active", "Active"
    TRIALING = "trialing", "Trialing"
    PAST_DUE = "past_due", "Past due"  # a renewal failed and Stripe is still retrying it
    INCOMPLETE = "incomplete", "Incomplete"  # the first payment has not been made
    UNPAID = "unpaid", "Unpaid"  # Stripe stopped retrying a failed renewal
    PAUSED = "paused", "Paused"  # a trial ended without a payment method
    CANCELED = "canceled", "Canceled"


#: The statuses in which a subscription gives its project its plan: paid for, on trial, or a renewal Stripe is still
#: retrying. Not ``incomplete`` (never paid yet), ``unpaid``, ``paused`` or ``canceled``.
PLAN_GIVING_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE})


class Subscription(models.Model):
    """A customer's paid plan for a project, mirrored from the billing provider (Stripe)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="subscriptions")
    external_id = models.CharField(max_length=100, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE)
    started_at = models.DateTimeField(default=clock.now)
    current_period_end = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    # When the plan and status above were true (the provider's time of the event that said so): an event older
    # than this, delivered late, tells nothing about the current state.
    state_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.plan.name}, {self.status})"


#: CAD per major unit of a currency, as Stripe's ``exchange_rate`` and the rate table give it. Room for the
#: significant digits of a currency worth a fraction of a cent (VND: 0.0000537234; six decimal places kept two of
#: them, 0.000054, and refunds converted at that rate took back 0.5 % too much), and up to 99,999,999 CAD per unit.
RATE_MAX_DIGITS, RATE_DECIMAL_PLACES = 24, 16


class Payment(models.Model):
    """Money a customer paid (an invoice paid at ``paid_at``). Amounts are integer cents in their currency."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="payments")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="payments"
    )
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="payments"
    )
    external_id = models.CharField(max_length=100, unique=True)  # the invoice id
    charge_id = models.CharField(max_length=100, blank=True, db_index=True)
    amount_cents = models.BigIntegerField()  # in ``currency``
    currency = models.CharField(max_length=3, default="CAD")
    amount_cad_cents = models.BigIntegerField(default=0)
    cad_rate = models.DecimalField(max_digits=RATE_MAX_DIGITS, decimal_places=RATE_DECIMAL_PLACES, default=1)
    description = models.CharField(max_length=200, blank=True)
    paid_at = models.DateTimeField()

    class Meta:
        ordering = ["-paid_at", "-id"]

    def __str__(self) -> str:
        return f"{self.external_id} {self.amount_cents} {self.currency}"


class Refund(models.Model):
    """A refund of a payment, counted while it may return money (pending, requires_action, succeeded). One that
    failed or was canceled never returns any (Stripe sends the change as ``refund.updated``): ``voided_at`` is
    set once and for good, and the commission it took back is earned again."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="refunds")
    external_id = models.CharField(max_length=100, unique=True)
    amount_cents = models.BigIntegerField()  # in the payment's currency
    amount_cad_cents = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()
    voided_at = models.DateTimeField(null=True, blank=True)  # failed or canceled (the event's time)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.external_id} −{self.amount_cents}"


class DisputeStatus(models.TextChoices):
    # An inquiry (Stripe's ``warning_*`` statuses) takes no money: it only becomes a chargeback if the issuer
    # escalates it, when Stripe moves the same dispute to a chargeback status.
    INQUIRY = "inquiry", "Inquiry"
    INQUIRY_CLOSED = "inquiry_closed", "Inquiry closed"
    OPEN = "open", "Open"  # a chargeback: the money is withdrawn until it is decided
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Dispute(models.Model):
    """A dispute of a payment: a chargeback, or an inquiry that may become one."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="disputes")
    external_id = models.CharField(max_length=100, unique=True)
    amount_cents = models.BigIntegerField()
    status = models.CharField(max_length=14, choices=DisputeStatus.choices, default=DisputeStatus.OPEN)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.external_id} ({self.status})"


class BillingCustomer(models.Model):
    """A billing provider's customer id of an Apertur user. A user may have several (a Stripe customer made again
    after one was deleted, one per currency); an id is one user's, the first it was linked to."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_customers")
    external_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.external_id


class ExchangeRate(models.Model):
    """CAD per unit of ``currency`` on ``date``: used when an event carries no balance-transaction rate."""

    currency = models.CharField(max_length=3)
    date = models.DateField()
    rate = models.DecimalField(max_digits=RATE_MAX_DIGITS, decimal_places=RATE_DECIMAL_PLACES)

    class Meta:
        ordering = ["-date"]
        constraints = [models.UniqueConstraint(fields=["currency", "date"], name="one_rate_per_currency_day")]

    def __str__(self) -> str:
        return f"{self.currency} {self.date} {self.rate}"
