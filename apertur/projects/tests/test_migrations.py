"""Migration 0008 on data: subscriptions from before ``state_at`` get the time of the newest subscription event
already applied to them, so an older event delivered after the upgrade cannot overwrite a newer state."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import make_user

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("projects", "0007_refund_voided_dispute_inquiry"), ("stripe_billing", "0001_initial")]
AFTER = [("projects", "0008_subscription_state_at")]
UTC = dt.UTC


def test_state_at_is_the_newest_applied_subscription_event() -> None:
    project = create_project(owner=make_user("sub@example.com"), name="Studio")
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        apps = executor.loader.project_state(BEFORE).apps
        Subscription = apps.get_model("projects", "Subscription")
        StripeEvent = apps.get_model("stripe_billing", "StripeEvent")
        plan_id = plan_by_name("Pro").pk
        for sub_id in ("sub_seen", "sub_unseen"):
            Subscription.objects.create(
                project_id=project.pk,
                external_id=sub_id,
                plan_id=plan_id,
                started_at=dt.datetime(2026, 1, 1, tzinfo=UTC),
            )

        def stored(n: int, kind: str, day: int, status: str, sub_id: str = "sub_seen") -> None:
            StripeEvent.objects.create(
                event_id=f"evt_{n}",
                type=kind,
                created=dt.datetime(2026, 1, day, tzinfo=UTC),
                payload={"id": f"evt_{n}", "type": kind, "data": {"object": {"id": sub_id}}},
                status=status,
            )

        stored(1, "customer.subscription.created", 1, "processed")
        stored(2, "customer.subscription.updated", 9, "processed")
        stored(3, "customer.subscription.updated", 20, "waiting")  # not applied yet: says nothing
        stored(4, "invoice.paid", 25, "processed")  # not a subscription event
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        after = executor.loader.project_state(AFTER).apps.get_model("projects", "Subscription")
        assert dict(after.objects.values_list("external_id", "state_at")) == {
            "sub_seen": dt.datetime(2026, 1, 9, tzinfo=UTC),
            "sub_unseen": None,
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
