"""Migration 0003, on data: ``webhook.test`` leaves every endpoint's subscriptions, and nothing else changes."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apertur.projects.services import create_project
from apertur.testing import make_user

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("webhooks", "0002_previous_secret")]
AFTER = [("webhooks", "0003_drop_webhook_test_subscriptions")]


def test_webhook_test_leaves_every_subscription() -> None:
    project = create_project(owner=make_user("owner@migrations.example"), name="Hooks")
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        before = executor.loader.project_state(BEFORE).apps.get_model("webhooks", "WebhookEndpoint")
        lists = [["upload.created", "webhook.test"], ["webhook.test"], ["*"], ["session.closed", "plan.changed"]]
        rows = [
            before.objects.create(
                project_id=project.pk, url=f"https://hooks.example.com/{n}", events=events, secret="s"
            )
            for n, events in enumerate(lists)
        ]
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        after = executor.loader.project_state(AFTER).apps.get_model("webhooks", "WebhookEndpoint")
        got = [after.objects.get(pk=row.pk).events for row in rows]
        assert got == [["upload.created"], [], ["*"], ["session.closed", "plan.changed"]]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
