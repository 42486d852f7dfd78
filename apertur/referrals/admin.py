from django.contrib import admin

from apertur.referrals.models import ReferralLink


@admin.register(ReferralLink)
class ReferralLinkAdmin(admin.ModelAdmin):
    list_display = ("code", "partner", "label", "created_at")
    search_fields = ("code", "partner__company_name")
    list_select_related = ("partner",)
