from django.contrib import admin
from django.utils.html import format_html

from apertur.partners.models import Partner


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    """Browse partners here; decisions (approve, reject with a reason, suspend, restore) are taken on the
    review page so each goes through its service, audit entry and email."""

    list_display = ("company_name", "user", "status", "expected_customers", "applied_at", "review_link")
    list_filter = ("status", "expected_customers")
    search_fields = ("company_name", "user__email", "website")
    list_select_related = ("user",)
    readonly_fields = (
        "user",
        "status",
        "applied_at",
        "reviewed_at",
        "reviewed_by",
        "review_reason",
        "suspended_at",
        "suspension_reason",
        "review_link",
    )

    @admin.display(description="Review")
    def review_link(self, obj: Partner) -> str:
        return format_html('<a href="/partners/staff/{}/">Review</a>', obj.pk)

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
