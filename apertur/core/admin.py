from django.contrib import admin

from apertur.core.models import AuditEvent


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
