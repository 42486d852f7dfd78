from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apertur.accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "public_id", "is_staff", "is_active", "email_confirmed_at", "date_joined")
    search_fields = ("email", "public_id")
    list_filter = ("is_staff", "is_active")
    readonly_fields = ("public_id", "date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "password", "public_id")}),
        ("Status", {"fields": ("is_active", "is_staff", "is_superuser", "email_confirmed_at")}),
        # What a staff account may do in /admin/ (e.g. view payouts only; apply Stripe events again with the
        # change permission, as docs/commissions.md says): without these a superuser needed a shell to grant it.
        ("Permissions", {"fields": ("groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
