from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apertur.core.admin import HTTPS_URL_FIELDS, AuditedDelete, SafeFilters
from apertur.core.errors import ValidationFailed
from apertur.core.forms import add_problems
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


class OAuthAppForm(forms.ModelForm):
    """The name, description and website staff may edit, checked by the apps' one rule set
    (:func:`services.clean_app_details`), as the partner's own edit is."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        app = self.instance
        try:
            details = services.clean_app_details(
                name=cleaned.get("name") or "",
                description=cleaned.get("description") or "",
                website=cleaned.get("website") or "",
                redirect_uris=list(app.redirect_uris.values_list("uri", flat=True)),
                allowed_domains=list(app.allowed_domains.values_list("pattern", flat=True)),
            )
        except ValidationFailed as exc:
            add_problems(self, exc)
            return cleaned
        cleaned.update(name=details.name, description=details.description, website=details.website)
        return cleaned


@admin.register(OAuthApp)
class OAuthAppAdmin(SafeFilters, AuditedDelete, admin.ModelAdmin):
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
        # What happened to the app's credentials, shown to its partner: recorded by the services, never typed.
        "previous_client_secret_last_used_at",
        "last_failed_auth_at",
        "last_failed_auth_ip",
    )
    exclude = ("client_secret_hash", "previous_client_secret_hash")
    inlines = (RedirectURIInline, AllowedDomainInline, PublicKeyInline)
    form = OAuthAppForm

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def save_model(self, request: HttpRequest, obj: OAuthApp, form: Any, change: bool) -> None:
        """An edit is the partner's "edit app" done by staff (services.update_app): audited with who did it, the
        app's redirect URIs and allowed domains kept as they are, not counted in the app's budget of changes."""
        if not form.changed_data:
            return
        services.update_app(
            app=obj,
            name=obj.name,
            description=obj.description,
            website=obj.website,
            redirect_uris=list(obj.redirect_uris.values_list("uri", flat=True)),
            allowed_domains=list(obj.allowed_domains.values_list("pattern", flat=True)),
            actor=request.user,  # type: ignore[arg-type]
            ip=client_ip(request),
            budgeted=False,  # staff answer to no partner's budget
        )

    # Deleting an app here is the partner's "delete for good" (services.delete_app) done by staff: recorded in the
    # audit log like theirs, with who did it.
    def record_deleted(self, request, obj: OAuthApp) -> None:  # type: ignore[no-untyped-def]
        services.record_app_deleted(app=obj, actor=request.user, ip=client_ip(request))
