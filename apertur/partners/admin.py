from typing import Any

from django import forms
from django.contrib import admin
from django.utils.html import format_html

from apertur.core import audit
from apertur.core.admin import HTTPS_URL_FIELDS, AuditedDelete, SafeFilters, field_changes
from apertur.core.errors import ValidationFailed
from apertur.core.forms import add_problems
from apertur.core.http import client_ip
from apertur.partners.models import Partner
from apertur.partners.services import clean_application

APPLICATION_FIELDS = ("company_name", "website", "use_case", "expected_customers")


class PartnerForm(forms.ModelForm):
    """The application's fields staff may correct, checked by the application's own rules."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        if not all(name in self.fields for name in APPLICATION_FIELDS):
            return cleaned
        try:
            fields = clean_application(**{name: cleaned.get(name) or "" for name in APPLICATION_FIELDS})
        except ValidationFailed as exc:
            add_problems(self, exc)
            return cleaned
        cleaned.update(fields)
        return cleaned


@admin.register(Partner)
class PartnerAdmin(SafeFilters, AuditedDelete, admin.ModelAdmin):
    """Browse partners here; decisions (approve, reject with a reason, suspend, restore) are taken on the
    review page so each goes through its service, audit entry and email."""

    list_display = ("company_name", "user", "status", "expected_customers", "applied_at", "review_link")
    list_filter = ("status", "expected_customers", ("payouts_held_at", admin.EmptyFieldListFilter))
    search_fields = ("company_name", "user__email", "website")
    list_select_related = ("user",)
    formfield_overrides = HTTPS_URL_FIELDS
    readonly_fields = (
        "user",
        "status",
        "applied_at",
        "reviewed_at",
        "reviewed_by",
        "review_reason",
        "suspended_at",
        "suspension_reason",
        # PayPal verification and payout holds change only through their services (link confirmation,
        # hold/release on the review page): each is audited, and none may be set by editing a row.
        "paypal_email",
        "paypal_verified_at",
        "paypal_pending_email",
        "payouts_held_at",
        "payouts_hold_reason",
        "review_link",
    )
    exclude = ("paypal_token_hash", "paypal_token_expires_at")  # a credential's hash is nobody's business
    form = PartnerForm

    @admin.display(description="Review")
    def review_link(self, obj: Partner) -> str:
        return format_html('<a href="/partners/staff/{}/">Review</a>', obj.pk)

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    # A correction of the application (what the partner applied with) is recorded with who made it, before and
    # after, in the admin's change transaction.
    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        before = Partner.objects.filter(pk=obj.pk).values(*APPLICATION_FIELDS).first() if change else None
        super().save_model(request, obj, form, change)
        if before is None:
            return
        data = field_changes(before, obj)
        if data:
            audit.record(action="partner.updated", obj=obj, actor=request.user, ip=client_ip(request), data=data)

    # An application deleted here (an approved partner's referral links, never deleted, keep it from being) is
    # recorded with who did it; the address is kept in the event: the row it names is gone.
    def record_deleted(self, request, obj: Partner) -> None:  # type: ignore[no-untyped-def]
        data = {"email": obj.user.email, "company_name": obj.company_name, "status": obj.status}
        audit.record(action="partner.deleted", obj=obj, actor=request.user, ip=client_ip(request), data=data)
