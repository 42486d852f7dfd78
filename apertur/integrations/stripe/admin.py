from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apertur.integrations.stripe.models import RejectedDelivery, StripeEvent


class _ReadOnly(admin.ModelAdmin):
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


@admin.register(RejectedDelivery)
class RejectedDeliveryAdmin(_ReadOnly):
    list_display = ("received_at", "reason")
    search_fields = ("reason",)
