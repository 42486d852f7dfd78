from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apertur.core.admin import EstimatedCountPaginator, IndexedValuesFilter, SafeFilters
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
    """A row per event Stripe sent (several per payment): at scale, every query of the list uses an index, as the
    audit log's (:class:`~apertur.core.admin.IndexedValuesFilter`, :class:`~apertur.core.admin.EstimatedCountPaginator`,
    an exact search). Measured at 3 M events: 2.3 s a load with Django's defaults (a date hierarchy reading every row,
    ``SELECT DISTINCT type``, two counts, a sort of the table)."""

    list_display = ("event_id", "type", "status", "created", "received_at", "detail")
    list_filter = ("status", ("type", IndexedValuesFilter), ("created", admin.DateFieldListFilter))
    ordering = ("-created", "-id")  # newest first, read from the stripe_event_created index
    search_fields = ("event_id",)
    search_help_text = "An event id (evt_…), exactly. Filter by status, type or date for the rest."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per status and type over the whole table
    actions = ["apply_again"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[StripeEvent], search_term: str
    ) -> tuple[QuerySet[StripeEvent], bool]:
        """The event whose id is the text: its unique index (Django's ``icontains`` read every row)."""
        term = search_term.strip()
        return (queryset.filter(event_id=term) if term else queryset), False

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
