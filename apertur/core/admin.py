from functools import cached_property
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IS_FACETS_VAR, IS_POPUP_VAR, TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.views import main
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db import connections, models, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.text import smart_split, unescape_string_literal
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

from apertur.core.counts import lock_row
from apertur.core.http import client_ip
from apertur.core.lookups import distinct_values
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


class IndexedValuesFilter(admin.AllValuesFieldListFilter):
    """Django's filter by each value a column holds, its values read by a loose index scan
    (:func:`~apertur.core.lookups.distinct_values`; the column must lead an index) instead of ``SELECT DISTINCT``
    over every row: 0.2-0.4 s each over 3 M audit events, on every load of the list."""

    def __init__(self, field: Any, request: HttpRequest, params: Any, model: Any, model_admin: Any, field_path: str):
        super().__init__(field, request, params, model, model_admin, field_path)
        using = model_admin.get_queryset(request).db
        self.lookup_choices = distinct_values(model, field.name, using=using)  # type: ignore[assignment]  # iterated


class EstimatedCountPaginator(Paginator):
    """An admin list's paginator that does not count a whole large table on PostgreSQL: unfiltered, and with more
    than :attr:`exact_below` rows by the statistics, its count is the planner's estimate (``pg_class.reltuples``
    scaled to the table's current size, as the planner scales it; kept by autovacuum), and :attr:`approximate` says
    so (the list shows "about N"). ``COUNT(*)`` reads every row: 0.13 s over 3 M audit events. A filtered list, a
    small table, another database: counted exactly, as Django does."""

    exact_below = 100_000
    approximate = False

    @cached_property
    def count(self) -> int:
        estimate = self._estimate()
        if estimate is None:
            return super().count
        self.approximate = True
        return estimate

    def _estimate(self) -> int | None:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or queryset.query.has_filters():
            return None
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT CASE WHEN relpages > 0 "
                "THEN reltuples / relpages * (pg_relation_size(oid) / current_setting('block_size')::int) "
                "ELSE reltuples END FROM pg_class WHERE oid = %s::regclass",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        if row is None or row[0] < self.exact_below:  # never analysed (-1), or small enough to count
            return None
        return int(row[0])


@admin.register(AuditEvent)
class AuditEventAdmin(SafeFilters, admin.ModelAdmin):
    """Read-only: the audit log is append-only. Its largest table (a row per OAuth token refresh), so every query
    the list sends uses an index: the filters' values (:class:`IndexedValuesFilter`), the count
    (:class:`EstimatedCountPaginator`, and no second count of the whole table), the search
    (:meth:`get_search_results`). docs/performance.md, "The admin's audit log at scale", has the figures."""

    list_display = ("at", "action", "object_type", "object_id", "actor", "ip")
    list_filter = (("action", IndexedValuesFilter), ("object_type", IndexedValuesFilter))
    list_select_related = ("actor",)
    search_fields = ("action", "object_id", "actor__email")  # shows the search box; get_search_results searches
    search_help_text = (
        "Finds the events whose object id is the text (exactly, as in the Object id column), whose action starts "
        "with it (oauth.), or whose actor's email starts with it through the @ at least (ada@ or ada@example.com); "
        "several words: the events matching each. To find one object's events, filter by its type and search its id."
    )
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per action and object type over the whole table

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent], search_term: str
    ) -> tuple[QuerySet[AuditEvent], bool]:
        """Each word (as Django splits the search: quotes keep spaces) matches by index: the object id equal to it
        (the (object_type, object_id) index, probed once per object type), the action starting with it (``action``'s
        pattern index) and, for a word with an ``@``, the actor's email starting with it, lowercased as emails are
        stored (the email's unique index). Django's default, ``icontains`` on each field, is
        ``UPPER(…) LIKE '%word%'`` over every row joined to its actor: 3.5 s over 3 M events.

        The actors are read first and their ids sent as a list: PostgreSQL hashes a list (a subquery's array is
        searched row by row, 13 s for a word matching 5,000 users) and estimates from its values. A word without an
        ``@`` is not looked up among emails: a start as short as "a" names a large share of all users."""
        users = get_user_model()._default_manager.using(queryset.db)
        object_types = None
        for bit in smart_split(search_term):
            if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
                bit = unescape_string_literal(bit)
            if object_types is None:
                object_types = distinct_values(AuditEvent, "object_type", using=queryset.db)
            matches = Q(object_type__in=object_types, object_id=bit) | Q(action__startswith=bit)
            if "@" in bit:
                actors = users.filter(email__startswith=bit.lower()).values_list("pk", flat=True)
                matches |= Q(actor_id__in=list(actors))
            queryset = queryset.filter(matches)
        return queryset, False

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
    """A row per background task (each webhook delivery, destination copy and mail), kept 14 days after it finished
    (core.housekeeping): millions of rows on a busy day. So, as the audit log's, every query of the list uses an
    index: the queues (:class:`IndexedValuesFilter`, on django-tasks' own ``queue_name`` index), newest first from the
    ``(enqueued_at, id)`` index this project adds (core migration ``0003``), the count
    (:class:`EstimatedCountPaginator`, no second count of the whole table). django-tasks' list filtered by priority
    too: ``SELECT DISTINCT priority`` over every row, no index leads that column, and every task here has the default
    priority. docs/performance.md, "Task results and PayPal events at scale", has the figures."""

    list_filter = ("status", ("queue_name", IndexedValuesFilter))  # type: ignore[assignment]  # django-tasks: 3 str
    ordering = ["-enqueued_at", "-id"]  # read backwards from task_result_enqueued (core migration 0003)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per status and queue over the whole table
