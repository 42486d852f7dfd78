from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction

from apertur.core import audit
from apertur.core.admin import AuditedDelete, SafeFilters, field_changes
from apertur.core.errors import AperturError
from apertur.core.forms import add_problems
from apertur.core.http import client_ip
from apertur.projects import services
from apertur.projects.models import ExchangeRate, Payment, Plan, Project

#: The settings the owner changes on the project's page and through the API (services.update_settings).
SETTINGS_FIELDS = ("name", "description", "default_session_days", "default_max_files", "notify_owner_on_upload")


@admin.register(Plan)
class PlanAdmin(SafeFilters, admin.ModelAdmin):
    list_display = ("name", "price_cents", "currency", "uploads_per_month", "max_active_sessions")

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        # The name is the plan's key: Stripe's price lookup_key ("pro" -> Pro), `billing simulate --plan` and the
        # price list `apertur migrate` seeds by name (a renamed plan would be seeded again beside it) all match
        # on it. Limits and the displayed price stay editable.
        return ("name",) if obj is not None else ()

    # A plan's limits apply at once to every project on it and its price is shown to customers: each change is
    # recorded with who made it, before and after, in the admin's change transaction.
    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        names = [f.name for f in Plan._meta.concrete_fields if f.name != "id"]
        before = Plan.objects.filter(pk=obj.pk).values(*names).first() if change else None
        super().save_model(request, obj, form, change)
        data = field_changes(before, obj) if before is not None else {name: getattr(obj, name) for name in names}
        if data:
            action = "plan.updated" if before is not None else "plan.added"
            audit.record(action=action, obj=obj, actor=request.user, ip=client_ip(request), data=data)


class ProjectForm(forms.ModelForm):
    """A project's settings as staff type them, checked by the projects' one rule set (services.clean_settings):
    a name the owner already has in another case is refused next to its field, as the owner's own rename is."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        owner = self.instance.owner if self.instance.pk else cleaned.get("owner")
        checked = ("name", "description", "default_session_days", "default_max_files")
        if owner is None or any(name in self.errors for name in checked):
            return cleaned  # Django has already said what is wrong with the field
        try:
            values = services.clean_settings(
                owner_id=owner.pk,
                project_id=self.instance.pk,
                name=cleaned.get("name") or "",
                description=cleaned.get("description") or "",
                default_session_days=cleaned.get("default_session_days"),
                default_max_files=cleaned.get("default_max_files"),
            )
        except AperturError as exc:
            add_problems(self, exc)
            return cleaned
        cleaned.update(values)
        return cleaned


@admin.register(Project)
class ProjectAdmin(SafeFilters, AuditedDelete, admin.ModelAdmin):
    list_display = ("name", "public_id", "owner", "plan", "created_at")
    list_select_related = ("owner", "plan")
    search_fields = ("name", "public_id", "owner__email")
    list_filter = ("plan",)
    readonly_fields = ("public_id", "created_at")
    raw_id_fields = ("owner",)

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        # The owner is who connected apps, tokens, API keys and billing answer to (connections and tokens keep
        # the user who authorized them): moving a project to someone else is not an edit of one field. Set when
        # a project is added here; fixed after.
        return (*self.readonly_fields, "owner") if obj is not None else self.readonly_fields

    form = ProjectForm

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        """An edit is what the owner's settings and a plan change do (services.update_settings and change_plan):
        recorded with the staff member as actor, and a new plan told to connected apps' servers (``plan.changed``),
        which a plain save skipped."""
        ip = client_ip(request)
        if not change:
            super().save_model(request, obj, form, change)
            audit.record(action="project.created", obj=obj, actor=request.user, ip=ip, data={"plan": obj.plan.name})
            return
        project = Project.objects.get(pk=obj.pk)
        changed = [name for name in SETTINGS_FIELDS if name in form.changed_data]
        if changed:
            project = services.update_settings(
                project=project,
                **{name: getattr(obj, name) for name in changed},
                actor=request.user,
                ip=ip,
                budgeted=False,
            )
        if "plan" in form.changed_data:
            services.change_plan(project=project, plan=obj.plan, actor=request.user, ip=ip)

    def get_deleted_objects(self, objs, request):  # type: ignore[no-untyped-def]
        # A project's payments are billing records (refunds, disputes and commissions find them by invoice), kept
        # as the customer's account deletion keeps them (Payment.customer protects it): listed as protected, so the
        # admin refuses the deletion, from the project's page and from "delete selected" alike.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        payments = Payment.objects.filter(project__in=list(objs)).order_by("pk")
        protected = [*protected, *(f"Payment: {payment}" for payment in payments)]
        return deleted, counts, perms_needed, protected

    # Deleting a project takes its uploads, keys, webhooks and connections with it: recorded with who did it. The
    # name and owner are kept in the event: the row it names is gone.
    def record_deleted(self, request, obj: Project) -> None:  # type: ignore[no-untyped-def]
        data: dict[str, Any] = {"name": obj.name, "public_id": obj.public_id, "owner": obj.owner.email}
        audit.record(action="project.deleted", obj=obj, actor=request.user, ip=client_ip(request), data=data)


class ExchangeRateForm(forms.ModelForm):
    class Meta:
        model = ExchangeRate
        fields = ("currency", "date", "rate")

    def clean_currency(self) -> str:
        # Payments look their rate up by the upper-case code (Stripe sends "usd"): a rate saved as "usd" would never
        # be found, and the one-rate-per-day check must see "usd" and "USD" as one currency.
        code = str(self.cleaned_data["currency"]).strip().upper()
        if not (len(code) == 3 and code.isascii() and code.isalpha()):
            raise forms.ValidationError("A currency is a three-letter ISO 4217 code, like USD.")
        return code

    def clean_rate(self) -> Decimal:
        rate: Decimal = self.cleaned_data["rate"]
        if rate <= 0:
            raise forms.ValidationError("A rate is the CAD price of one unit of the currency: more than 0.")
        return rate


@admin.register(ExchangeRate)
class ExchangeRateAdmin(SafeFilters, AuditedDelete, admin.ModelAdmin):
    """The CAD rates that convert Stripe payments in other currencies (a webhook never carries the charge's own
    rate): CAD per 1 unit of the currency, used from its date until the next one. A payment keeps the rate it was
    converted at, so changing a rate changes no payment already recorded; a payment that waited for a rate is
    applied by the worker's next pass."""

    list_display = ("currency", "date", "rate")
    list_filter = ("currency",)
    search_fields = ("currency",)
    date_hierarchy = "date"

    form = ExchangeRateForm

    # A rate decides the CAD amount (and so the commission) of every payment converted with it: each change is
    # recorded with who made it, in the save's own transaction.
    @staticmethod
    def _as_data(rate: ExchangeRate) -> dict[str, str]:
        return {"currency": rate.currency, "date": rate.date.isoformat(), "rate": str(rate.rate)}

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        with transaction.atomic():
            before = ExchangeRate.objects.filter(pk=obj.pk).first() if change else None
            super().save_model(request, obj, form, change)
            if before is None:
                action, data = "exchange_rate.added", self._as_data(obj)
            else:
                action, data = "exchange_rate.changed", {"before": self._as_data(before), "after": self._as_data(obj)}
            audit.record(action=action, obj=obj, actor=request.user, ip=client_ip(request), data=data)

    def record_deleted(self, request, obj: ExchangeRate) -> None:  # type: ignore[no-untyped-def]
        audit.record(
            action="exchange_rate.deleted", obj=obj, actor=request.user, ip=client_ip(request), data=self._as_data(obj)
        )
