from datetime import datetime
from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from apertur.accounts import login as login_service
from apertur.accounts import services as account_services
from apertur.accounts.models import User
from apertur.core import audit
from apertur.core.admin import AuditedDelete, SafeFilters
from apertur.core.errors import RateLimited
from apertur.core.http import client_ip


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, checking the password through :func:`apertur.accounts.login.attempt_login`:
    the same failed-login budgets (and audit of failures) as ``/login``. Django's form calls ``authenticate()``
    directly, which made ``/admin/login/`` an unthrottled way to guess any account's password. A refusal past a
    budget is kept in :attr:`rate_limited`: the login view answers it with 429 and ``Retry-After``, as ``/login``."""

    rate_limited: RateLimited | None = None

    def clean(self) -> dict[str, Any]:
        username, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if username is not None and password and self.request is not None:
            try:
                self.user_cache = login_service.attempt_login(
                    request=self.request, email=username, password=password, ip=client_ip(self.request)
                )
            except RateLimited as exc:
                self.rate_limited = exc
                raise ValidationError(exc.wait_message()) from exc
            if self.user_cache is None:
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


admin.site.login_form = ThrottledAdminAuthenticationForm


def _as_json(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


@admin.register(User)
class UserAdmin(SafeFilters, AuditedDelete, BaseUserAdmin):
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

    # Who may do what in the admin is granted by superusers only: staff allowed to change accounts (to help
    # customers) would otherwise give themselves, or anyone, every permission, or take a superuser's account over
    # by changing its address or password.
    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        fields = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return fields
        return (*fields, "is_staff", "is_superuser", "groups", "user_permissions")

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    # A change here (deactivation, address, rights) is recorded like the site's own changes, with the staff member
    # as actor and each field before and after; the admin's change view runs in one transaction.
    AUDITED_FIELDS = ("email", "is_active", "is_staff", "is_superuser", "email_confirmed_at")

    @staticmethod
    def _rights(user: User) -> dict[str, set[str]]:
        return {
            "groups": set(user.groups.values_list("name", flat=True)),
            "user_permissions": {
                f"{app}.{codename}"
                for app, codename in user.user_permissions.values_list("content_type__app_label", "codename")
            },
        }

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if change:
            old = User.objects.get(pk=obj.pk)
            form.audit_before = ({f: getattr(old, f) for f in self.AUDITED_FIELDS}, self._rights(old))
        super().save_model(request, obj, form, change)

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        before = getattr(form, "audit_before", None)
        if before is None:
            return
        fields, rights = before
        user = form.instance
        data: dict[str, Any] = {}
        for name, was in fields.items():
            now = getattr(user, name)
            if was != now:
                data[name] = {"from": _as_json(was), "to": _as_json(now)}
        for name, now_set in self._rights(user).items():
            if now_set != rights[name]:
                data[name] = {"added": sorted(now_set - rights[name]), "removed": sorted(rights[name] - now_set)}
        if data:
            audit.record(action="user.updated", obj=user, actor=request.user, ip=client_ip(request), data=data)

    def user_change_password(self, request, id, form_url=""):  # type: ignore[no-untyped-def]
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:  # Django saved the new password
            user = self.get_object(request, unquote(id))
            if user is not None:
                account_services.password_set_by_staff(user=user, actor=request.user, ip=client_ip(request))
        return response

    # Deleting an account here takes its projects, uploads and keys with it (payments and partners with money
    # protect theirs): recorded with who did it. The email is kept in the event: the row it names is gone.
    def record_deleted(self, request, obj: User) -> None:  # type: ignore[no-untyped-def]
        data = {"email": obj.email, "public_id": obj.public_id, "projects": obj.projects.count()}
        audit.record(action="user.deleted", obj=obj, actor=request.user, ip=client_ip(request), data=data)


# Rights are granted by superusers only (see UserAdmin): staff allowed to change groups would otherwise give a group
# they belong to every permission.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin):
    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, "permissions")
