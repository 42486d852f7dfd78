from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apertur.core.admin import SafeFilters
from apertur.core.errors import AperturError
from apertur.integrations.stripe import services
from apertur.integrations.stripe.models import RejectedDelivery, StripeEvent


class _ReadOnly(SafeFilters, admin.ModelAdmin):
    """Stored for inspection: what Stripe sent is evidence, so nobody edits or deletes it here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(_ReadOnly):
    list_display = ("event_id", "type", "status", "created", "received_at", "detail")
    list_filter = ("status", "type")
    search_fields = ("event_id", "detail")
    date_hierarchy = "created"
    actions = ["apply_again"]

    def has_apply_permission(self, request: HttpRequest) -> bool:
        """Applying writes payments and commissions: the change permission (a superuser has it), not the view
        permission that is enough to look here (``has_change_permission`` is False for everyone: rows are never
        edited)."""
        return request.user.has_perm("stripe_billing.change_stripeevent")

    @admin.action(description="Apply the selected events again (given up, ignored or failed)", permissions=["apply"])
    def apply_again(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        """``services.retry_event`` for each: what ``apertur billing retry`` does, without linking a customer
        (that needs the command's ``--customer-email``)."""
        for event_id in queryset.order_by("created", "id").values_list("event_id", flat=True):
            try:
                done = services.retry_event(event_id=event_id, actor=request.user)
            except AperturError as exc:
                self.message_user(request, exc.message, messages.WARNING)
                continue
            outcome, before = done.events[0]
            level = messages.SUCCESS if outcome.status == "processed" else messages.WARNING
            self.message_user(request, f"Stripe event {event_id}: {before} → {outcome.status}: {outcome.detail}", level)


@admin.register(RejectedDelivery)
class RejectedDeliveryAdmin(_ReadOnly):
    list_display = ("received_at", "reason")
    search_fields = ("reason",)
