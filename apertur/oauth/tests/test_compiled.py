"""oauth/compiled.py builds model instances from SQL it compiled once, with Django's internals: every compiled
lookup must give exactly what its ORM queryset gives (same rows, same field values, same related objects),
for a hit, a miss and after other rows change. A Django upgrade that changes those internals fails here."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import models, transaction

from apertur.core import tokens
from apertur.oauth import bearer, server
from apertur.oauth import tokens as token_store
from apertur.oauth.compiled import CompiledLookup
from apertur.oauth.models import Token
from apertur.projects.services import create_project
from apertur.testing import REDIRECT_URI, make_app, make_user

pytestmark = pytest.mark.django_db


def _values(obj: models.Model | None, related: tuple[str, ...]) -> Any:
    """Every loaded field of the instance and of its select_related objects, as plain values."""
    if obj is None:
        return None
    out: dict[str, Any] = {"__model__": type(obj).__name__}
    for f in obj._meta.concrete_fields:
        if f.attname in obj.__dict__:
            out[f.attname] = getattr(obj, f.attname)
    for path in related:
        target: Any = obj
        for part in path.split("__"):
            target = getattr(target, part)
        out[path] = _values(target, ())
    return out


def _world() -> tuple[Any, Token, str, str, str]:
    created = make_app()
    customer = make_user()
    project = create_project(owner=customer, name="Weddings")
    connection = token_store.connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    code = token_store.new_code()
    token_store.save_code(
        code=code,
        connection=connection,
        user=customer,
        scopes=["plan:read"],
        redirect_uri=REDIRECT_URI,
        code_challenge="x" * 43,
        code_challenge_method="S256",
        livemode=True,
    )
    access, refresh = token_store.new_access_token(), token_store.new_refresh_token()
    token = token_store.issue(
        connection=connection, scopes=["plan:read"], livemode=True, access_token=access, refresh_token=refresh
    )
    return created, token, access, refresh, code


LOOKUPS: list[tuple[str, Any, tuple[str, ...]]] = [
    ("by_access", token_store._by_access, ("connection",)),
    ("by_refresh", token_store._by_refresh, ("connection",)),
    ("by_refresh_locked", token_store._by_refresh_locked, ("connection", "user", "project", "project__plan")),
    ("bearer", token_store._bearer, ("project", "project__plan")),
]


def _related(lookup: CompiledLookup[Any], value: Any) -> tuple[str, ...]:
    qs = lookup._build(value)
    sr = qs.query.select_related
    paths: list[str] = []

    def walk(tree: Any, prefix: str) -> None:
        if isinstance(tree, dict):
            for name, sub in tree.items():
                paths.append(prefix + name)
                walk(sub, prefix + name + "__")

    walk(sr, "")
    return tuple(paths)


@pytest.mark.parametrize("name", [name for name, _, _ in LOOKUPS])
def test_token_lookups_match_the_orm(name: str) -> None:
    _, token, access, refresh, _ = _world()
    lookup = dict((n, lk) for n, lk, _ in LOOKUPS)[name]
    value = tokens.hash_secret(access if name in {"by_access", "bearer"} else refresh)
    related = _related(lookup, value)
    annotations = tuple(lookup._build(value).query.annotations)
    with transaction.atomic():
        assert _values(lookup.first(value), related) == _values(lookup._build(value).first(), related)
        # annotations (the bearer check's grant state) too, with the same types (bool, not SQLite's 0/1)
        compiled, orm = lookup.first(value), lookup._build(value).first()
        assert [(getattr(compiled, a), type(getattr(compiled, a))) for a in annotations] == [
            (getattr(orm, a), type(getattr(orm, a))) for a in annotations
        ]
        assert lookup.first(value).pk == token.pk
        assert lookup.first(tokens.hash_secret("nope")) is None
        assert lookup._build(tokens.hash_secret("nope")).first() is None
    # A second token: the compiled plan is reused with the new value and still finds the right row.
    _, other, access2, refresh2, _ = _world()
    value2 = tokens.hash_secret(access2 if name in {"by_access", "bearer"} else refresh2)
    with transaction.atomic():
        assert lookup.first(value2).pk == other.pk
        assert _values(lookup.first(value2), related) == _values(lookup._build(value2).first(), related)


def test_client_code_and_project_lookups_match_the_orm() -> None:
    created, token, _, _, code = _world()
    app = created.app
    cases = [
        (server._usable_client, (app.client_id,)),
        (server._authenticating_client, (app.client_id,)),
        (server._code_locked, (tokens.hash_secret(code),)),
        (bearer._project, (token.project.public_id,)),
    ]
    for lookup, args in cases:
        related = _related(lookup, *args)
        with transaction.atomic():
            compiled, orm = lookup.first(*args), lookup._build(*args).first()
            assert compiled is not None and compiled.pk == orm.pk
            assert _values(compiled, related) == _values(orm, related)


def _instances(obj: Any, related: tuple[str, ...]) -> list[Any]:
    found = [obj]
    for path in related:
        target = obj
        for part in path.split("__"):
            target = getattr(target, part)
        found.append(target)
    return found


@pytest.mark.parametrize("name", [name for name, _, _ in LOOKUPS])
def test_compiled_instances_are_what_the_orm_builds(name: str) -> None:
    """The instances are built without Model.__init__ where that only stores values (compiled._builder): the
    same attributes, the same state, the same related-object caches as the ORM's, and they save and reload."""
    _, token, access, refresh, _ = _world()
    lookup = dict((n, lk) for n, lk, _ in LOOKUPS)[name]
    value = tokens.hash_secret(access if name in {"by_access", "bearer"} else refresh)
    related = _related(lookup, value)
    with transaction.atomic():
        compiled, orm = lookup.first(value), lookup._build(value).first()
        for mine, theirs in zip(_instances(compiled, related), _instances(orm, related), strict=True):
            assert type(mine) is type(theirs)
            assert set(mine.__dict__) - {"_state"} == set(theirs.__dict__) - {"_state"}
            assert (mine._state.adding, mine._state.db) == (False, "default")
            assert (theirs._state.adding, theirs._state.db) == (False, "default")
            assert set(mine._state.fields_cache) == set(theirs._state.fields_cache)
        # a deferred field loads on access, and a save of a built instance updates its row
        if name != "by_refresh_locked":  # the others defer the hash
            assert "access_token_hash" not in compiled.__dict__
        assert compiled.access_token_hash == token.access_token_hash
        project = compiled.project
        project.name = "Renamed"
        project.save(update_fields=["name"])
        project.refresh_from_db()
        assert project.name == "Renamed"
