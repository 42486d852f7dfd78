"""SQL per request on the OAuth hot paths (issue 10): deterministic, so asserted; timings are only printed
by bench/profile_oauth.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from apertur.core.tokens import random_string
from apertur.oauth import services, tokens
from apertur.oauth.models import Connection
from apertur.oauth.tests.conftest import Flow, api_get, run_in_other_process
from apertur.partners import services as partner_services
from apertur.testing import exchange, make_app


def statements(ctx: CaptureQueriesContext) -> list[str]:
    """The queries a request ran, without transaction control (BEGIN/SAVEPOINT/RELEASE)."""
    skip = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN")
    return [q["sql"] for q in ctx.captured_queries if not q["sql"].lstrip().upper().startswith(skip)]


def post(path: str, flow: Flow, **body: str) -> Any:
    return Client().post(path, {"client_id": flow.client_id, "client_secret": flow.secret, **body})


def test_code_exchange_is_at_most_six_queries(flow: Flow) -> None:
    code = flow.code()
    with CaptureQueriesContext(connection) as ctx:
        assert exchange(Client(), code, flow.client_id, flow.secret).status_code == 200
    sql = statements(ctx)
    # code (locked) with its app's credentials (the client authenticates against them) and its connection,
    # project and plan; token INSERT, audit INSERT, code marked used
    assert len(sql) == 4, sql


def test_the_previous_secret_of_a_roll_costs_one_write_a_minute(flow: Flow) -> None:
    """Authenticating with the secret a roll replaced records its use for the app's page, once a minute: the first
    exchange runs one UPDATE more, the next ones within the minute the same 4 queries as with the current secret."""
    services.rotate_secret(app=flow.created.app, expire_previous_in=dt.timedelta(hours=1))
    counts = []
    for _ in range(2):
        code = flow.code()
        with CaptureQueriesContext(connection) as ctx:
            assert exchange(Client(), code, flow.client_id, flow.secret).status_code == 200
        counts.append(len(statements(ctx)))
    assert counts == [5, 4]


def test_refresh_is_at_most_six_queries(flow: Flow) -> None:
    issued = flow.tokens()
    with CaptureQueriesContext(connection) as ctx:
        response = post("/oauth/token", flow, grant_type="refresh_token", refresh_token=issued["refresh_token"])
        assert response.status_code == 200, response.content
    sql = statements(ctx)
    # old token (locked) + its app's credentials + connection + customer + project + plan, token INSERT, audit
    # INSERT, rotation
    assert len(sql) == 4, sql
    assert response.json()["plan"]["name"] == "Pro"


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_introspection_is_one_query(flow: Flow, kind: str) -> None:
    issued = flow.tokens()
    with CaptureQueriesContext(connection) as ctx:
        response = post("/oauth/introspect", flow, token=issued[kind], token_type_hint=kind)
    assert response.json()["active"] is True
    assert response.json()["project_id"] == flow.project.public_id
    # the token with what it reports and its app's credentials, which the client authenticates against
    assert len(statements(ctx)) == 1, statements(ctx)


def test_introspecting_another_clients_token_queries_the_client(flow: Flow) -> None:
    issued = flow.tokens()
    other = make_app(flow.created.app.partner, name="Other")
    with CaptureQueriesContext(connection) as ctx:
        response = Client().post(
            "/oauth/introspect",
            {"token": issued["access_token"], "client_id": other.app.client_id, "client_secret": other.client_secret},
        )
    assert response.json() == {"active": False}
    assert len(statements(ctx)) == 2, statements(ctx)  # the token (not this client's), then the client


def test_revocation_query_count(flow: Flow) -> None:
    issued = flow.tokens()
    with CaptureQueriesContext(connection) as ctx:
        assert post("/oauth/revoke", flow, token=issued["access_token"]).status_code == 200
    # the token with its app's credentials, the UPDATE, the audit event
    assert len(statements(ctx)) == 3, statements(ctx)


def test_bearer_request_is_one_query_without_the_cache(flow: Flow, settings: Any) -> None:
    settings.APERTUR_TOKEN_CACHE = "off"
    issued = flow.tokens()
    for _ in range(2):
        with CaptureQueriesContext(connection) as ctx:
            assert api_get("/api/v1/plan", issued["access_token"]).status_code == 200
        assert len(statements(ctx)) == 1


def test_token_endpoints_and_api_skip_the_browser_middleware(flow: Flow) -> None:
    issued = flow.tokens()
    response = api_get("/api/v1/plan", issued["access_token"])
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies
    assert "Content-Security-Policy" not in response
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware still runs
    # Browser pages keep every header.
    page = flow.browser.get("/oauth/authorize?client_id=" + flow.client_id)
    assert page["X-Frame-Options"] == "DENY" and "frame-ancestors" in page["Content-Security-Policy"]


def test_random_strings_are_the_documented_alphabet_and_length() -> None:
    values = {random_string(40) for _ in range(200)}
    assert len(values) == 200
    assert all(len(v) == 40 and v.isascii() and v.isalnum() for v in values)
    assert tokens.new_access_token().startswith("oat_") and len(tokens.new_access_token()) == 44


# --- the token caches (apertur.oauth.token_cache): local (per process, host-wide generation) and shared ----------


@pytest.fixture(params=["local", "shared"])
def cached(request: Any, settings: Any) -> str:
    from django.core.cache import cache

    from apertur.oauth import token_cache

    settings.APERTUR_TOKEN_CACHE = request.param
    cache.clear()
    token_cache.clear_local()
    return str(request.param)


def warm(flow: Flow, access: str) -> list[str]:
    assert api_get("/api/v1/plan", access).status_code == 200  # fills the cache
    with CaptureQueriesContext(connection) as ctx:
        assert api_get("/api/v1/plan", access).status_code == 200
    return statements(ctx)


def test_a_warm_cache_reads_no_token(flow: Flow, cached: str) -> None:
    issued = flow.tokens()
    sql = warm(flow, issued["access_token"])
    if cached == "local":
        assert sql == []  # the whole check (token, grant, project, plan) from this process's memory
    else:
        assert len(sql) <= 2, sql
        assert not any("oauth_token" in q for q in sql), sql  # only the project and its plan are read


@pytest.mark.parametrize(
    "kill",
    ["revoke", "revoke_refresh", "disconnect", "deactivate_app", "suspend", "deactivate_customer", "code_replay"],
)
def test_every_revocation_path_kills_a_cached_token_at_once(flow: Flow, cached: str, kill: str) -> None:
    code = flow.code()
    issued = exchange(Client(), code, flow.client_id, flow.secret).json()
    access = issued["access_token"]
    warm(flow, access)
    assert introspect(flow, access)["active"] is True  # fills the local cache's introspection entry
    if kill == "revoke":
        assert post("/oauth/revoke", flow, token=access).status_code == 200
    elif kill == "revoke_refresh":
        assert post("/oauth/revoke", flow, token=issued["refresh_token"]).status_code == 200
    elif kill == "disconnect":
        tokens.disconnect(connection=Connection.objects.get(project=flow.project), actor=None)
    elif kill == "deactivate_app":
        services.deactivate_app(app=flow.created.app)
    elif kill == "suspend":
        partner_services.suspend(partner=flow.created.app.partner, reviewer=None, reason="Abuse")
    elif kill == "deactivate_customer":
        flow.customer.is_active = False
        flow.customer.save()
    elif kill == "code_replay":
        assert exchange(Client(), code, flow.client_id, flow.secret).status_code == 400
    assert api_get("/api/v1/plan", access).status_code == 401
    if kill in {"deactivate_app", "suspend"}:
        # The client itself is no longer usable: it cannot authenticate to introspect.
        assert post("/oauth/introspect", flow, token=access).status_code == 401
    else:
        assert introspect(flow, access) == {"active": False}


def introspect(flow: Flow, token: str, secret: str | None = None) -> Any:
    response = Client().post(
        "/oauth/introspect", {"token": token, "client_id": flow.client_id, "client_secret": secret or flow.secret}
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_a_warm_local_cache_introspects_without_sql(flow: Flow, settings: Any) -> None:
    settings.APERTUR_TOKEN_CACHE = "local"
    issued = flow.tokens()
    first = introspect(flow, issued["access_token"])
    with CaptureQueriesContext(connection) as ctx:
        assert introspect(flow, issued["access_token"]) == first
    assert statements(ctx) == []
    # A login stamps last_login and nothing cached reads it: the entry stays.
    Client().force_login(flow.customer)
    with CaptureQueriesContext(connection) as ctx:
        assert introspect(flow, issued["access_token"])["active"] is True
    assert statements(ctx) == []


def test_a_secret_rotation_reaches_cached_introspection_at_once(flow: Flow, settings: Any) -> None:
    settings.APERTUR_TOKEN_CACHE = "local"
    issued = flow.tokens()
    assert introspect(flow, issued["access_token"])["active"] is True
    new_secret = services.rotate_secret(app=flow.created.app)
    old = post("/oauth/introspect", flow, token=issued["access_token"])
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    assert introspect(flow, issued["access_token"], secret=new_secret)["active"] is True


def test_an_email_change_reaches_cached_introspection_at_once(flow: Flow, settings: Any) -> None:
    settings.APERTUR_TOKEN_CACHE = "local"
    issued = flow.tokens()
    assert introspect(flow, issued["access_token"])["username"] == "customer@example.com"
    flow.customer.email = "renamed@example.com"
    flow.customer.save()
    assert introspect(flow, issued["access_token"])["username"] == "renamed@example.com"


def test_a_plan_change_shows_at_once_with_a_warm_cache(flow: Flow, cached: str) -> None:
    from apertur.projects import services as project_services
    from apertur.projects.selectors import plan_by_name

    issued = flow.tokens()
    warm(flow, issued["access_token"])
    project_services.change_plan(project=flow.project, plan=plan_by_name("Free"), actor=flow.customer)
    assert api_get("/api/v1/plan", issued["access_token"]).json()["name"] == "Free"


def test_each_request_gets_its_own_instances_from_the_local_cache(flow: Flow, settings: Any) -> None:
    from apertur.oauth import bearer

    settings.APERTUR_TOKEN_CACHE = "local"
    issued = flow.tokens()
    header = f"Bearer {issued['access_token']}"
    first = bearer.authenticate(header)
    first.project.name = "Changed by one request"
    with CaptureQueriesContext(connection) as ctx:
        second = bearer.authenticate(header)
    assert statements(ctx) == []
    assert second.project is not first.project and second.project.plan is not first.project.plan
    assert second.project.name == "Weddings"


def test_the_local_cache_checks_expiry_on_every_hit(flow: Flow, settings: Any) -> None:
    import time_machine

    from apertur.core import clock

    settings.APERTUR_TOKEN_CACHE = "local"
    issued = flow.tokens()
    warm(flow, issued["access_token"])
    with time_machine.travel(clock.now() + dt.timedelta(minutes=61)):
        assert api_get("/api/v1/plan", issued["access_token"]).status_code == 401


def test_another_process_revoking_voids_this_processs_local_entries(flow: Flow, settings: Any) -> None:
    """The generation is shared through the memory-mapped file: a revocation committed by another process (a
    second app server, a management command) is seen by this one's next request."""
    from apertur.oauth import token_cache
    from apertur.oauth.models import Token

    settings.APERTUR_TOKEN_CACHE = "local"
    issued = flow.tokens()
    assert warm(flow, issued["access_token"]) == []
    # The other process revokes through a bulk UPDATE (no signal in this process) and bumps the generation the
    # way tokens._revoke does; it sees the test database only through its file, so it is told which one.
    token = Token.objects.get()
    out = run_in_other_process("print(token_cache.generation_path())", var_dir=settings.VAR_DIR)
    assert out.strip() == str(token_cache.generation_path())  # the same file in both processes
    Token.objects.filter(pk=token.pk).update(access_revoked_at=token.issued_at)  # as another process's UPDATE
    assert api_get("/api/v1/plan", issued["access_token"]).status_code == 200  # no generation change: cached
    run_in_other_process("token_cache.invalidate_all()", var_dir=settings.VAR_DIR)
    assert api_get("/api/v1/plan", issued["access_token"]).status_code == 401


def test_the_shared_cache_voids_every_entry_when_its_generation_key_is_lost(flow: Flow, settings: Any) -> None:
    from django.core.cache import cache

    from apertur.oauth import token_cache

    settings.APERTUR_TOKEN_CACHE = "shared"
    issued = flow.tokens()
    warm(flow, issued["access_token"])
    cache.delete(token_cache.GENERATION_KEY)
    with CaptureQueriesContext(connection) as ctx:
        assert api_get("/api/v1/plan", issued["access_token"]).status_code == 200
    assert any("oauth_token" in q for q in statements(ctx))  # read again from the database


@pytest.mark.parametrize(
    ("backend", "mode"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", "off"),  # one per process: not shared
        ("django.core.cache.backends.dummy.DummyCache", "off"),
        ("django.core.cache.backends.redis.RedisCache", "shared"),  # shared by every process
    ],
)
def test_unset_the_shared_cache_follows_the_cache_backend(backend: str, mode: str) -> None:
    from apertur.oauth import token_cache

    with override_settings(APERTUR_TOKEN_CACHE=None, CACHES={"default": {"BACKEND": backend}}):
        assert token_cache.mode() == mode


@pytest.mark.parametrize(
    ("env", "database_url", "expected"),
    [
        ({}, "sqlite:///{var}/x.sqlite3", "local"),  # SQLite is one host: local by default
        ({}, "postgres://postgres@127.0.0.1:5432/x", "local"),  # other hosts hear of changes through NOTIFY
        ({"APERTUR_TOKEN_CACHE": "local"}, "postgres://postgres@127.0.0.1:5432/x", "local"),
        ({"APERTUR_TOKEN_CACHE": "0"}, "postgres://postgres@127.0.0.1:5432/x", "off"),
        ({"APERTUR_TOKEN_CACHE": "1", "REDIS_URL": "redis://127.0.0.1:6379/0"}, "sqlite:///{var}/x.sqlite3", "shared"),
        ({"APERTUR_TOKEN_CACHE": "1"}, "sqlite:///{var}/x.sqlite3", "off"),  # shared needs Redis
        ({"APERTUR_TOKEN_CACHE": "0"}, "sqlite:///{var}/x.sqlite3", "off"),
    ],
)
def test_the_setting_from_the_environment(env: dict[str, str], database_url: str, expected: str, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in {"APERTUR_TOKEN_CACHE", "REDIS_URL", "DATABASE_URL"}}
    full = {
        **base,
        **env,
        "DATABASE_URL": database_url.format(var=tmp_path),
        "APERTUR_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "apertur.config.settings",
    }
    script = "from django.conf import settings; print(settings.APERTUR_TOKEN_CACHE)"
    out = subprocess.run([sys.executable, "-c", script], env=full, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


@pytest.mark.django_db
def test_token_table_keeps_only_the_indexes_its_queries_use() -> None:
    """Every token issued updates each index of oauth_token: the hashes have one unique index each (no
    PostgreSQL LIKE twin), and the connection has none of its own (the (connection, access_revoked_at) index
    starts with it)."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "oauth_token")
    indexes = [c for c in constraints.values() if c["index"] or c["unique"]]
    for column in ("access_token_hash", "refresh_token_hash"):
        on_it = [c for c in indexes if c["columns"] == [column]]
        assert len(on_it) == 1 and on_it[0]["unique"], on_it
    assert not [c for c in indexes if c["columns"] == ["connection_id"]]
    assert [c for c in indexes if c["columns"] == ["connection_id", "access_revoked_at"]]


# --- the local cache's generation file ------------------------------------------------------------------------


def test_a_change_fails_rather_than_leave_other_processes_entries_valid(
    flow: Flow, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generation file that exists (other processes may read it) but cannot be mapped here: the change raises
    and does not commit. Where no file exists and the cache is off here, there is nothing to void."""
    from apertur.oauth import token_cache

    settings.APERTUR_TOKEN_CACHE = "local"
    issued = flow.tokens()
    assert warm(flow, issued["access_token"]) == []  # the file exists and is mapped
    token_cache.stop_listeners()  # as a process that has not mapped the file yet

    def refuse(self: Any, path: Any) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(token_cache._GenerationFile, "__init__", refuse)
    with pytest.raises(token_cache.TokenCacheError):
        services.deactivate_app(app=flow.created.app)
    flow.created.app.refresh_from_db()
    assert flow.created.app.is_active
    # Reading: the cache is off (the database answers), never an error.
    with CaptureQueriesContext(connection) as ctx:
        assert api_get("/api/v1/plan", issued["access_token"]).status_code == 200
    assert any("oauth_token" in q for q in statements(ctx))
    monkeypatch.undo()
    token_cache.stop_listeners()
    token_cache.generation_path().unlink()
    settings.APERTUR_TOKEN_CACHE = "off"
    services.deactivate_app(app=flow.created.app)  # no file, cache off here: nothing to void, no error


def test_a_replaced_generation_file_is_followed(flow: Flow, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file deleted and created again by a process started later (a cleanup, a restore): that process's bumps
    reach this one, which checks the path every RECHECK_SECONDS."""
    from apertur.oauth import token_cache
    from apertur.oauth.models import Token

    settings.APERTUR_TOKEN_CACHE = "local"
    monkeypatch.setattr(token_cache, "RECHECK_SECONDS", 0.0)
    issued = flow.tokens()
    assert warm(flow, issued["access_token"]) == []
    path = token_cache.generation_path()
    path.unlink()
    token = Token.objects.get()
    Token.objects.filter(pk=token.pk).update(access_revoked_at=token.issued_at)  # as another process's UPDATE
    run_in_other_process("token_cache.invalidate_all()", var_dir=settings.VAR_DIR)
    assert path.exists()  # a new file, which this process has not mapped
    assert api_get("/api/v1/plan", issued["access_token"]).status_code == 401


def test_many_invalidations_in_one_transaction_register_one_commit_callback(db: None, settings: Any) -> None:
    from django.db import transaction

    from apertur.oauth import token_cache

    settings.APERTUR_TOKEN_CACHE = "local"
    before = token_cache.local_generation()
    with transaction.atomic():
        for _ in range(50):
            token_cache.invalidate_all()
        callbacks = [entry for entry in connection.run_on_commit if entry[1] is token_cache._after_commit]
        assert len(callbacks) == 1
    assert token_cache.local_generation() != before


def test_migrations_void_the_cache(db: None, settings: Any) -> None:
    from django.apps import apps
    from django.db.models.signals import post_migrate

    from apertur.oauth import token_cache

    settings.APERTUR_TOKEN_CACHE = "local"
    before = token_cache.local_generation()
    post_migrate.send(
        sender=apps.get_app_config("oauth"),
        app_config=apps.get_app_config("oauth"),
        verbosity=0,
        interactive=False,
        using="default",
        apps=apps,
        plan=[],
    )
    assert token_cache.local_generation() != before


def test_the_previous_secret_served_from_the_cache_is_written_down_once_a_minute(flow: Flow, settings: Any) -> None:
    """A cached token row keeps its app's credentials as they were cached (an UPDATE of the last use does not void
    the cache): the write is conditional on the stored time, so a minute of requests writes the time once."""
    import time_machine

    from apertur.oauth.models import OAuthApp

    settings.APERTUR_TOKEN_CACHE = "local"
    issued = flow.tokens()
    start = dt.datetime.now(tz=dt.UTC)
    with time_machine.travel(start, tick=False):
        old = flow.secret
        services.rotate_secret(app=flow.created.app, expire_previous_in=dt.timedelta(hours=1))
        assert introspect(flow, issued["access_token"], secret=old)["active"] is True  # caches the row
    for seconds in (10, 20, 30):
        with time_machine.travel(start + dt.timedelta(seconds=seconds), tick=False):
            assert introspect(flow, issued["access_token"], secret=old)["active"] is True
    stored = OAuthApp.objects.get(pk=flow.created.app.pk).previous_client_secret_last_used_at
    assert stored == start
