from typing import Any

from django import forms
from django.contrib import admin, messages

from apertur.core.admin import SafeFilters
from apertur.core.http import client_ip
from apertur.partners.models import Partner
from apertur.referrals.models import Attribution, ReferralLink
from apertur.referrals.services import ReasonRequired, change_attribution, refusal_for


@admin.register(ReferralLink)
class ReferralLinkAdmin(SafeFilters, admin.ModelAdmin):
    """Browse links; only the label is editable. The partner decides who earns on the signups a link brings and
    the code is printed on the partner's campaigns: changing either here would move money or break shared
    links without an audit entry. Partners create links in the portal; deleting one would erase its clicks."""

    list_display = ("code", "partner", "label", "click_count", "created_at")
    search_fields = ("code", "partner__company_name")
    list_select_related = ("partner__user",)  # a partner is shown as "company (user's email)"
    readonly_fields = ("partner", "code", "click_count", "created_at")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


class AttributionForm(forms.ModelForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=True,
        help_text="Required: why the customer moves to this partner (kept in the audit log).",
    )

    class Meta:
        model = Attribution
        fields = ("partner",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        partner = self.fields["partner"]
        assert isinstance(partner, forms.ModelChoiceField)
        partner.queryset = Partner.objects.select_related("user")  # each choice reads "company (user's email)"

    def clean_partner(self) -> Any:
        """The partner list holds every applicant: refuse, with the reason, one the customer may not be attributed
        to, rather than report the change as saved (services.change_attribution refuses it too)."""
        partner = self.cleaned_data["partner"]
        if partner is not None and partner.pk != self.instance.partner_id:
            refusal = refusal_for(partner=partner, customer=self.instance.customer)
            if refusal:
                raise forms.ValidationError(refusal)
        return partner


@admin.register(Attribution)
class AttributionAdmin(SafeFilters, admin.ModelAdmin):
    """Staff may move a customer to another partner, with a reason; nothing else is editable."""

    form = AttributionForm
    list_display = ("customer", "partner", "source", "app", "at")
    list_filter = ("source",)
    search_fields = ("customer__email", "partner__company_name")
    list_select_related = ("customer", "partner__user", "app")
    readonly_fields = ("customer", "source", "link", "app", "at")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def save_model(self, request: Any, obj: Attribution, form: Any, change: bool) -> None:
        if not change or "partner" not in form.changed_data:
            return
        new_partner = obj.partner
        current = Attribution.objects.get(pk=obj.pk)
        try:
            change_attribution(
                attribution=current,
                partner=new_partner,
                reason=form.cleaned_data["reason"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ReasonRequired as exc:
            messages.error(request, str(exc))
