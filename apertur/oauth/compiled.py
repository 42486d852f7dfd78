"""ORM lookups compiled once: the hot paths of the OAuth server (client authentication, the bearer check,
codes and refresh tokens) run the same few queries thousands of times a second, and Django spends far more
time turning a ``select_related`` queryset into SQL (several hundred µs for a seven-table join) than the
database spends answering it.

:class:`CompiledLookup` lets Django compile the queryset once per database alias, keeps the SQL, the
column converters and the ``select_related`` populators Django computed, and per call only executes the
SQL with the new parameter and builds the model instances exactly as ``QuerySet.first()`` would (same
``from_db``, same converters, related objects cached on the instance). It is limited to what the hot paths
need: one equality lookup on a unique column, inner joins along non-null foreign keys, optionally
``SELECT ... FOR UPDATE OF`` the main table.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connections, models, transaction
from django.db.models.base import Model, ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query import get_related_populators
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

M = TypeVar("M", bound=models.Model)
_names = itertools.count(1)
_PLACEHOLDER = re.compile(r"%%|%s")


def _sentinel(kind: type, index: int) -> Any:
    """A placeholder value the queryset is compiled with, found again in the compiled parameters."""
    return f"\x00apertur-compiled-lookup-{index}\x00" if kind is str else -7_340_001 - index


Builder = Callable[[str, Any], Any]
# The attribute descriptors whose assignment on a new instance only stores the value.
_PLAIN = (DeferredAttribute, ForeignKeyDeferredAttribute)


def _builder(model: type[models.Model], init_list: list[str]) -> Builder:
    """``model.from_db(db, init_list, values)`` as a function of ``(db, values)``. Where it provably does
    nothing but store the values, it is done directly: the model neither overrides ``__init__`` nor
    ``from_db``, nobody listens to its ``pre_init``/``post_init`` signals, and every loaded attribute is a
    plain ``DeferredAttribute`` (a ``ForeignKey``'s too: on a new instance its ``__set__`` only stores), so
    ``Model.__init__`` would only have created the state and called ``setattr`` for each value (with two
    signals sent, several µs an instance on the token endpoints). Tests compare every instance with the ORM's."""
    plain = (
        model.__init__ is Model.__init__
        and model.from_db.__func__ is Model.from_db.__func__  # type: ignore[attr-defined]
        and not pre_init.has_listeners(model)
        and not post_init.has_listeners(model)
        and all(type(getattr(model, name, None)) in _PLAIN for name in init_list)
    )
    if not plain:
        return lambda db, values: model.from_db(db, init_list, values)
    new = model.__new__

    def build(db: str, values: Any) -> Any:
        obj = new(model)
        state = ModelState()
        state.adding = False
        state.db = db
        attributes = obj.__dict__
        attributes["_state"] = state
        attributes.update(zip(init_list, values, strict=True))
        return obj

    return build


class _Populator:
    """Django's ``RelatedPopulator`` (what ``select_related`` uses to build the joined objects) with the
    instances built by :func:`_builder`; the same columns, links and caches."""

    def __init__(self, populator: Any) -> None:
        self.reorder = populator.reorder_for_init
        self.cols = None if self.reorder else slice(populator.cols_start, populator.cols_end)
        self.pk_idx = populator.pk_idx
        self.db = populator.db
        self.build = _builder(populator.model_cls, populator.init_list)
        self.children = [_Populator(child) for child in populator.related_populators]
        self.local_setter = populator.local_setter
        self.remote_setter = populator.remote_setter

    def populate(self, row: tuple[Any, ...], from_obj: Any) -> None:
        data = self.reorder(row) if self.reorder else row[self.cols]  # type: ignore[index]
        if data[self.pk_idx] is None:
            obj = None
        else:
            obj = self.build(self.db, data)
            for child in self.children:
                child.populate(row, obj)
        self.local_setter(from_obj, obj)
        if obj is not None:
            self.remote_setter(obj, from_obj)


@dataclass
class _Plan:
    sql: str
    params: list[Any]
    slots: list[int]
    converters: list[tuple[int, list[Callable[..., Any]], Any]]
    build: Builder
    model_slice: slice
    populators: list[_Populator]
    model: type[models.Model]
    prepared_as: str  # PostgreSQL: the server-side prepared statement's text, "" elsewhere
    names: list[str] | None  # SQLite: the named parameters the SQL was rewritten with (see _named)
    annotations: list[tuple[str, int]]  # (attribute, column) of the queryset's annotations


def _prepared_text(sql: str) -> str:
    """Django's ``%s`` placeholders as PostgreSQL's ``$1, $2…`` (and ``%%`` back to ``%``), or "" when
    preparing is turned off (``APERTUR_PG_PREPARE=0``)."""
    if not getattr(settings, "APERTUR_PG_PREPARE", True):
        return ""
    numbers = itertools.count(1)
    return _PLACEHOLDER.sub(lambda m: "%" if m.group() == "%%" else f"${next(numbers)}", sql)


def _named(sql: str) -> tuple[str, list[str]]:
    """Django's ``%s`` placeholders as named ones (``%(p0)s``), for SQLite. Django's SQLite cursor rewrites a
    query with positional parameters through a regular expression with a look-behind, run over the whole
    statement on every execution (~25 µs for a seven-table join, more than SQLite takes to answer it); with
    a mapping of parameters it only %-formats the names, which costs almost nothing. Same statement, same
    cursor (still counted by query-capturing tests), same values."""
    names: list[str] = []

    def name(match: re.Match[str]) -> str:
        if match.group() == "%%":
            return "%%"
        names.append(f"p{len(names)}")
        return f"%({names[-1]})s"

    return _PLACEHOLDER.sub(name, sql), names


def _bind(names: list[str] | None, params: list[Any]) -> list[Any] | dict[str, Any]:
    return params if names is None else dict(zip(names, params, strict=True))


class CompiledLookup(Generic[M]):
    def __init__(self, build: Callable[..., models.QuerySet[M]], kinds: tuple[type, ...] = (str,)) -> None:
        """``build(*values)`` returns the queryset for these parameter values (of the types ``kinds``), e.g.
        ``lambda v: Token.objects.select_related("app").filter(access_token_hash=v)``. Each value must be
        used exactly once, as a plain parameter of the WHERE clause."""
        self._build = build
        self._kinds = kinds
        self._sentinels = [_sentinel(kind, i) for i, kind in enumerate(kinds)]
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._name: str | None = None

    def _plan(self, using: str) -> _Plan:
        connection = connections[using]
        key = (using, connection.vendor)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        queryset = self._build(*self._sentinels).order_by()[:1]
        compiler = queryset.query.get_compiler(using=using)
        if queryset.query.select_for_update:
            # select_for_update refuses to compile outside a transaction; compiling runs nothing.
            with transaction.atomic(using=using):
                sql, params = compiler.as_sql()
        else:
            sql, params = compiler.as_sql()
        params = list(params)
        if any(params.count(s) != 1 for s in self._sentinels):  # pragma: no cover - a bug in ``build``
            raise ValueError("The lookup must use each of its parameters exactly once.")
        select, klass_info = compiler.select, compiler.klass_info
        assert klass_info is not None
        fields = [s[0] for s in select[0 : compiler.col_count]]
        converters = [(pos, convs, expr) for pos, (convs, expr) in compiler.get_converters(fields).items()]
        select_fields = klass_info["select_fields"]
        start, end = select_fields[0], select_fields[-1] + 1
        names: list[str] | None = None
        if connection.vendor == "sqlite":
            sql, names = _named(sql)
        plan = _Plan(
            sql=sql,
            params=params,
            slots=[params.index(s) for s in self._sentinels],
            converters=converters,
            build=_builder(queryset.model, [f[0].target.attname for f in select[start:end]]),
            model_slice=slice(start, end),
            populators=[
                _Populator(p)
                for p in get_related_populators(klass_info, select, using)  # type: ignore[call-arg]
            ],
            model=queryset.model,
            prepared_as=_prepared_text(sql) if connection.vendor == "postgresql" else "",
            names=names,
            annotations=list(compiler.annotation_col_map.items()),
        )
        self._plans[key] = plan
        return plan

    def _execute_prepared(self, connection: Any, plan: _Plan) -> str:
        """PostgreSQL plans a statement on every execution unless it is prepared, and planning the
        seven-table joins of the token lookups (~1.5 ms) costs ten times more than running them (~0.15 ms).
        Django's psycopg cursors bind client-side and never prepare, so the lookup is prepared once per
        database connection (``PREPARE``, which a rollback does not undo; it is a session setting, not a
        query, so it is issued on the driver's cursor and not counted) and run with ``EXECUTE``: after five
        executions PostgreSQL keeps a generic plan. (Behind a transaction-mode pooler such as PgBouncer session
        state does not follow the connection, and PgBouncer 1.21+ tracks only protocol-level prepared statements,
        not SQL ``PREPARE``: set APERTUR_PG_PREPARE=0 there.)"""
        if self._name is None:
            # Named after the main table, so ``EXECUTE apertur_oauth_token_3(...)`` still says what it reads.
            self._name = f"apertur_{plan.model._meta.db_table}_{next(_names)}"
        state = getattr(connection, "_apertur_prepared", None)
        if state is None or state[0] is not connection.connection:
            state = (connection.connection, set[str]())
            connection._apertur_prepared = state
        if self._name not in state[1]:
            with connection.connection.cursor() as raw_cursor:
                raw_cursor.execute(f"PREPARE {self._name} AS {plan.prepared_as}")
            state[1].add(self._name)
        return f"EXECUTE {self._name}({', '.join(['%s'] * len(plan.params))})"

    def first(self, *values: Any, using: str = "default") -> M | None:
        """The first row (with its ``select_related`` objects) for these parameter values, or None."""
        row = self.fetch(*values, using=using)
        return None if row is None else self.build(row, using=using)

    def fetch(self, *values: Any, using: str = "default") -> tuple[Any, ...] | None:
        """The first row's values, converted to Python values (what :meth:`build` turns into instances), or
        None. The tuple holds no instance, so it can be kept and built again for another request."""
        plan = self._plan(using)
        connection = connections[using]
        params = plan.params.copy()
        for slot, value in zip(plan.slots, values, strict=True):
            params[slot] = value
        with connection.cursor() as cursor:
            if plan.prepared_as:
                cursor.execute(self._execute_prepared(connection, plan), params)
            else:
                cursor.execute(plan.sql, _bind(plan.names, params))
            raw = cursor.fetchone()
        if raw is None:
            return None
        row = list(raw)
        for pos, convs, expression in plan.converters:
            item = row[pos]
            for converter in convs:
                item = converter(item, expression, connection)
            row[pos] = item
        return tuple(row)

    def build(self, row: tuple[Any, ...], *, using: str = "default") -> M:
        """New instances (the model's, its ``select_related`` objects, its annotations) from a row of
        :meth:`fetch`, exactly as :meth:`first` returns them."""
        plan = self._plan(using)
        obj: M = plan.build(using, row[plan.model_slice])
        for populator in plan.populators:
            populator.populate(row, obj)
        for attribute, column in plan.annotations:
            setattr(obj, attribute, row[column])
        return obj


class CompiledInsert(Generic[M]):
    """``INSERT`` of one model instance with the statement built once per database alias: what
    ``Model.objects.create()`` runs (each field's ``pre_save`` and ``get_db_prep_save``, the new primary key
    read back), without the ORM compiling the statement on every call. No model signals are sent: use it
    only for models nothing listens to (tokens, audit events)."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self._plans: dict[tuple[str, str], tuple[str, list[Any], bool, list[str] | None]] = {}

    def _plan(self, using: str) -> tuple[str, list[Any], bool, list[str] | None]:
        connection = connections[using]
        key = (using, connection.vendor)
        plan = self._plans.get(key)
        if plan is None:
            meta = self.model._meta
            fields = [f for f in meta.concrete_fields if f is not meta.auto_field and not f.generated]
            quote = connection.ops.quote_name
            returning = bool(connection.features.can_return_columns_from_insert)
            # Only quoted identifiers from the model's metadata and placeholders: no value is interpolated.
            sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
                quote(meta.db_table),
                ", ".join(quote(str(f.column)) for f in fields),
                ", ".join(["%s"] * len(fields)),
            )
            if returning and meta.auto_field is not None:
                sql += f" RETURNING {quote(str(meta.auto_field.column))}"
            names: list[str] | None = None
            if connection.vendor == "sqlite":
                sql, names = _named(sql)
            plan = (sql, fields, returning, names)
            self._plans[key] = plan
        return plan

    def save(self, obj: M, *, using: str = "default") -> M:
        sql, fields, returning, names = self._plan(using)
        connection = connections[using]
        values = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
        meta = self.model._meta
        with connection.cursor() as cursor:
            cursor.execute(sql, _bind(names, values))
            if meta.auto_field is not None:
                if returning:
                    pk = cursor.fetchone()[0]
                else:  # pragma: no cover - every supported database returns it
                    pk = connection.ops.last_insert_id(cursor, meta.db_table, str(meta.auto_field.column))
                obj.pk = pk
        obj._state.adding = False
        obj._state.db = using
        return obj


class CompiledUpdate:
    """``UPDATE <table> SET <fields> WHERE <pk> = %s`` with the statement built once per database alias:
    what ``Model.objects.filter(pk=...).update(**values)`` runs for plain values (each field's
    ``get_db_prep_save``), returning the number of rows changed. No signals (``update()`` sends none)."""

    def __init__(self, model: type[models.Model], fields: tuple[str, ...]) -> None:
        self.model = model
        self.fields = [model._meta.get_field(name) for name in fields]
        self._plans: dict[tuple[str, str], tuple[str, list[str] | None]] = {}

    def _sql(self, using: str) -> tuple[str, list[str] | None]:
        connection = connections[using]
        key = (using, connection.vendor)
        plan = self._plans.get(key)
        if plan is None:
            meta = self.model._meta
            quote = connection.ops.quote_name
            assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in self.fields)  # type: ignore[union-attr]
            # Only quoted identifiers from the model's metadata and placeholders: no value is interpolated.
            sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(str(meta.pk.column))} = %s"  # noqa: S608
            plan = _named(sql) if connection.vendor == "sqlite" else (sql, None)
            self._plans[key] = plan
        return plan

    def run(self, pk: Any, *values: Any, using: str = "default") -> int:
        connection = connections[using]
        params = [f.get_db_prep_save(v, connection) for f, v in zip(self.fields, values, strict=True)]  # type: ignore[union-attr]
        params.append(pk)
        sql, names = self._sql(using)
        with connection.cursor() as cursor:
            cursor.execute(sql, _bind(names, params))
            return int(cursor.rowcount)
