from django.contrib import admin

from apertur.core.admin import HTTPS_URL_FIELDS, AuditedDelete
from apertur.core.http import client_ip
from apertur.oauth import services
from apertur.oauth.models import AllowedDomain, OAuthApp, PublicKey, RedirectURI


class RedirectURIInline(admin.TabularInline):
    model = RedirectURI
    verbose_name, verbose_name_plural = "redirect URI", "redirect URIs"
    extra = 0
    readonly_fields = ("uri", "created_at")
    can_delete = False


class AllowedDomainInline(admin.TabularInline):
    model = AllowedDomain
    extra = 0
    readonly_fields = ("pattern", "created_at")
    can_delete = False


class PublicKeyInline(admin.TabularInline):
    model = PublicKey
    extra = 0
    readonly_fields = ("mode", "key", "is_active", "created_at", "deactivated_at")
    can_delete = False


@admin.register(OAuthApp)
class OAuthAppAdmin(AuditedDelete, admin.ModelAdmin):
    list_display = ("name", "client_id", "partner", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "client_id", "partner__company_name", "partner__user__email")
    list_select_related = ("partner__user",)  # a partner is shown as "company (user's email)"
    formfield_overrides = HTTPS_URL_FIELDS
    readonly_fields = (
        "partner",
        "client_id",
        "client_secret_last4",
        "client_secret_rotated_at",
        "previous_client_secret_last4",
        "previous_client_secret_expires_at",
        "created_at",
        "updated_at",
        "is_active",
    )
    exclude = ("client_secret_hash", "previous_client_secret_hash")
    inlines = (RedirectURIInline, AllowedDomainInline, PublicKeyInline)

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    # Deleting an app here is the partner's "delete for good" (services.delete_app) done by staff: recorded in the
    # audit log like theirs, with who did it.
    def record_deleted(self, request, obj: OAuthApp) -> None:  # type: ignore[no-untyped-def]
        services.record_app_deleted(app=obj, actor=request.user, ip=client_ip(request))
