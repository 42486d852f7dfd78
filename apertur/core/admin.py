from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IS_FACETS_VAR, IS_POPUP_VAR, TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.views import main
from django.db import models, transaction
from django.http import HttpRequest
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

from apertur.core.counts import lock_row
from apertur.core.http import client_ip
from apertur.core.models import AuditEvent
from apertur.core.signals import staff_deleting

#: A ModelAdmin's ``formfield_overrides`` for models with a website: a URL typed without a scheme is https, not
#: Django 5's http (the default Django 6 takes).
HTTPS_URL_FIELDS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {models.URLField: {"assume_scheme": "https"}}


#: The changelist's own query parameters; any other is a filter (a lookup on a field) typed into the address.
_CHANGELIST_PARAMS = {
    main.ALL_VAR,
    main.ORDER_VAR,
    main.PAGE_VAR,
    main.SEARCH_VAR,
    main.ERROR_FLAG,
    IS_POPUP_VAR,
    IS_FACETS_VAR,
    TO_FIELD_VAR,
}


class SafeFilters:
    """For a ModelAdmin (listed before it): a filter the database cannot apply (``created_at__year=99999``: "year
    99999 is out of range", raised while the list counts its rows) sends staff back to the unfiltered list with
    Django's "?e=1" notice, as a lookup Django itself finds wrong does, instead of a 500."""

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        try:
            return super().get_changelist_instance(request)  # type: ignore[misc]
        except (ValueError, OverflowError) as exc:
            if set(request.GET) <= _CHANGELIST_PARAMS:
                raise  # no filter typed: a real error
            raise IncorrectLookupParameters(str(exc)) from exc


def field_changes(before: dict[str, Any], obj: models.Model) -> dict[str, dict[str, Any]]:
    """``{field: {"from", "to"}}`` for each field of ``before`` (a row's values before an admin save) whose value on
    ``obj`` differs: the data of the audit event the save records."""
    return {name: {"from": was, "to": getattr(obj, name)} for name, was in before.items() if was != getattr(obj, name)}


class AuditedDelete:
    """For a ModelAdmin (listed before it): each object deleted here, from its page or with "delete selected",
    gets an audit event (:meth:`record_deleted`) in the deletion's own transaction, as a service records what it
    changes; the admin's own history alone does not say it in the audit log."""

    def record_deleted(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            self._before_deleting(request, obj)
            super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            for obj in queryset.order_by("pk"):
                self._before_deleting(request, obj)
            super().delete_queryset(request, queryset)  # type: ignore[misc]

    def _before_deleting(self, request: HttpRequest, obj: Any) -> None:
        # All before Django reads the cascade. First the domain apps (core.signals.staff_deleting): they wait for the
        # requests in flight on rows below (a token request holding its code's lock, which then inserts a token
        # referring to this object). Then the object's own row (FOR UPDATE): a row being added under it at this
        # moment (a webhook endpoint, an API key: their creation holds this row, core.counts.ensure_room, and an
        # insert referring to it holds a key-share lock on it) commits first and the cascade takes it too; one
        # added after waits for the deletion. Read before, the cascade missed it and its foreign key failed the
        # deletion (a 500 for staff). In that order: the row first would wait for a token request that waits for it.
        staff_deleting.send(sender=type(obj), instance=obj, actor=request.user, ip=client_ip(request))
        lock_row(obj._meta.model, obj.pk, deleting=True)
        self.record_deleted(request, obj)


@admin.register(AuditEvent)
class AuditEventAdmin(SafeFilters, admin.ModelAdmin):
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


# django-tasks' own list of task results (read-only), with the same guard as ours: a date filter typed out of range
# was a 500. Registered again here, as the app registry loads django_tasks_db's admin before ours (INSTALLED_APPS).
admin.site.unregister(DBTaskResult)


@admin.register(DBTaskResult)
class TaskResultAdmin(SafeFilters, DBTaskResultAdmin):
    pass
