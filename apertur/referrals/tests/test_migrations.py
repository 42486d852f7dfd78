"""Migration 0004 (each link keeps its click count), on data: the count starts at the clicks the link already had."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apertur.referrals.models import ReferralLink
from apertur.referrals.services import ensure_default_link
from apertur.testing import make_partner

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("referrals", "0003_first_link_for_approved_partners")]
AFTER = [("referrals", "0004_link_click_count")]


def test_each_link_starts_with_the_clicks_it_had() -> None:
    busy, quiet = ensure_default_link(partner=make_partner()), ensure_default_link(partner=make_partner())
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        apps = executor.loader.project_state(BEFORE).apps
        Click = apps.get_model("referrals", "ReferralClick")
        Click.objects.bulk_create([Click(link_id=busy.pk) for _ in range(5)])
    finally:
        executor.loader.build_graph()
        executor.migrate(AFTER)
    assert dict(ReferralLink.objects.values_list("pk", "click_count")) == {busy.pk: 5, quiet.pk: 0}
