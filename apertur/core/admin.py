from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.http import HttpRequest

from apertur.core.models import AuditEvent

#: A ModelAdmin's ``formfield_overrides`` for models with a website: a URL typed without a scheme is https, not
#: Django 5's http (the default Django 6 takes).
HTTPS_URL_FIELDS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {models.URLField: {"assume_scheme": "https"}}


class AuditedDelete:
    """For a ModelAdmin (listed before it): each object deleted here, from its page or with "delete selected",
    gets an audit event (:meth:`record_deleted`) in the deletion's own transaction, as a service records what it
    changes; the admin's own history alone does not say it in the audit log."""

    def record_deleted(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            self.record_deleted(request, obj)
            super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            for obj in queryset.order_by("pk"):
                self.record_deleted(request, obj)
            super().delete_queryset(request, queryset)  # type: ignore[misc]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only."""

    list_display = ("at", "action", "object_type", "object_id", "actor", "ip")
    list_filter = ("action", "object_type")
    search_fields = ("action", "object_id", "actor__email")
    list_select_related = ("actor",)

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
