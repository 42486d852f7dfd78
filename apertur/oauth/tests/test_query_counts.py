"""SQL per request on the OAuth hot paths (issue 10): deterministic, so asserted; timings are only printed
by bench/profile_oauth.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from apertur.core.tokens import random_string
from apertur.oauth import services, tokens
from apertur.oauth.models import Connection
from apertur.oauth.tests.conftest import Flow, api_get
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
    # code (locked) with its app's credentials (the client authenticates against them), connection + project +
    # plan, token INSERT, audit INSERT, code marked used
    assert len(sql) == 5, sql


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


def test_bearer_request_is_one_query_without_the_cache(flow: Flow) -> None:
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


# --- the shared token cache (apertur.oauth.token_cache) ----------------------------------------------------


@pytest.fixture
def cached(settings: Any) -> None:
    from django.core.cache import cache

    settings.APERTUR_TOKEN_CACHE = True
    cache.clear()


def warm(flow: Flow, access: str) -> list[str]:
    assert api_get("/api/v1/plan", access).status_code == 200  # fills the cache
    with CaptureQueriesContext(connection) as ctx:
        assert api_get("/api/v1/plan", access).status_code == 200
    return statements(ctx)


@pytest.mark.usefixtures("cached")
def test_a_warm_cache_reads_no_token(flow: Flow) -> None:
    issued = flow.tokens()
    sql = warm(flow, issued["access_token"])
    assert len(sql) <= 2, sql
    assert not any("oauth_token" in q for q in sql), sql  # only the project and its plan are read


@pytest.mark.usefixtures("cached")
@pytest.mark.parametrize(
    "kill",
    ["revoke", "revoke_refresh", "disconnect", "deactivate_app", "suspend", "deactivate_customer", "code_replay"],
)
def test_every_revocation_path_kills_a_cached_token_at_once(flow: Flow, kill: str) -> None:
    code = flow.code()
    issued = exchange(Client(), code, flow.client_id, flow.secret).json()
    access = issued["access_token"]
    warm(flow, access)
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


@pytest.mark.usefixtures("cached")
def test_a_lost_generation_key_voids_every_entry(flow: Flow) -> None:
    from django.core.cache import cache

    from apertur.oauth import token_cache

    issued = flow.tokens()
    warm(flow, issued["access_token"])
    cache.delete(token_cache.GENERATION_KEY)
    with CaptureQueriesContext(connection) as ctx:
        assert api_get("/api/v1/plan", issued["access_token"]).status_code == 200
    assert any("oauth_token" in q for q in statements(ctx))  # read again from the database


@pytest.mark.parametrize(
    ("backend", "on"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", False),  # one per process: never
        ("django.core.cache.backends.dummy.DummyCache", False),
        ("django.core.cache.backends.redis.RedisCache", True),  # shared by every process
    ],
)
def test_the_cache_is_on_only_with_a_shared_cache(backend: str, on: bool) -> None:
    from apertur.oauth import token_cache

    with override_settings(APERTUR_TOKEN_CACHE=None, CACHES={"default": {"BACKEND": backend}}):
        assert token_cache.enabled() is on


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
