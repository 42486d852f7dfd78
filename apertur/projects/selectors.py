from __future__ import annotations

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from apertur.accounts.models import User
from apertur.core import tokens
from apertur.projects.errors import UnknownPlan
from apertur.projects.models import ApiKey, Payment, Plan, Project, Subscription, SubscriptionStatus


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.all()


def plan_by_name(name: str) -> Plan:
    """Plans are matched by name, case-insensitively (``pro`` → Pro)."""
    plan = Plan.objects.filter(name__iexact=name.strip()).first()
    if plan is None:
        names = ", ".join(plan_list().values_list("name", flat=True))
        raise UnknownPlan(f"There is no plan named {name!r}. Plans: {names}.", field="plan")
    return plan


def project_list(*, owner: User) -> QuerySet[Project]:
    return Project.objects.filter(owner=owner).select_related("plan")


def project_for_owner(*, owner: User, public_id: str) -> Project | None:
    return project_list(owner=owner).filter(public_id=public_id).first()


def api_key_list(*, project: Project) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(project=project)


def api_key_by_secret(secret: str) -> ApiKey | None:
    """The active key with this secret (one query, by hash), with its project and plan."""
    return (
        ApiKey.objects.select_related("project__plan", "project__owner")
        .filter(key_hash=tokens.hash_secret(secret), revoked_at__isnull=True, project__owner__is_active=True)
        .first()
    )


def current_subscription(*, project: Project) -> Subscription | None:
    return (
        Subscription.objects.filter(project=project)
        .exclude(status=SubscriptionStatus.CANCELED)
        .select_related("plan")
        .order_by("-started_at", "-id")
        .first()
    )


def payment_list(*, project: Project) -> QuerySet[Payment]:
    """The project's payments, newest first, with what was refunded of each (refunds that failed or were canceled
    returned nothing). Ordered here: a query grouped for the sum does not take the model's default ordering, so
    "the latest 20" (the API) were any 20."""
    refunded = Sum("refunds__amount_cents", filter=Q(refunds__voided_at__isnull=True))
    return (
        Payment.objects.filter(project=project)
        .annotate(refunded_cents=Coalesce(refunded, 0))
        .order_by("-paid_at", "-id")
    )
