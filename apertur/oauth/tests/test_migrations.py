"""Migrations 0005-0007 (codes point at their connection), on data: a code in flight during the upgrade gets
the connection of its app and project and can still be exchanged; a code with no connection (which could
never be exchanged) is deleted."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from apertur.core import clock, tokens
from apertur.projects.services import create_project
from apertur.testing import REDIRECT_URI, exchange, make_app, make_user

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("oauth", "0004_token_indexes")]
AFTER = [("oauth", "0007_code_connection_required")]


def test_codes_in_flight_get_their_connection() -> None:
    created = make_app()
    customer = make_user("customer@migrations.example")
    connected, orphan_project = (create_project(owner=customer, name=name) for name in ("Weddings", "Orphan"))
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        apps = executor.loader.project_state(BEFORE).apps
        Connection = apps.get_model("oauth", "Connection")
        Code = apps.get_model("oauth", "AuthorizationCode")
        link = Connection.objects.create(
            app_id=created.app.pk, project_id=connected.pk, user_id=customer.pk, scopes="plan:read"
        )
        now = clock.now()

        def code(value: str, project_id: int) -> int:
            return Code.objects.create(
                code_hash=tokens.hash_secret(value),
                app_id=created.app.pk,
                user_id=customer.pk,
                project_id=project_id,
                scopes="plan:read",
                redirect_uri=REDIRECT_URI,
                created_at=now,
                expires_at=now + dt.timedelta(minutes=10),
            ).pk

        kept, dropped = code("oac_kept", connected.pk), code("oac_dropped", orphan_project.pk)
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        after = executor.loader.project_state(AFTER).apps.get_model("oauth", "AuthorizationCode")
        assert {c.pk: c.connection_id for c in after.objects.all()} == {kept: link.pk}
        assert dropped != kept
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())  # the later migrations too: the code runs on them
        response = exchange(Client(), "oac_kept", created.app.client_id, created.client_secret)
        assert response.status_code == 200, response.content
        assert response.json()["project_id"] == connected.public_id
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
