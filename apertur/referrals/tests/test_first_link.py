"""Every approved partner has a referral link from the start: approval creates it (partners.signals), whichever
way the partner was approved, and migration 0003 gives one to partners approved before."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apertur.partners import services as partner_services
from apertur.partners.errors import InvalidPartnerTransition
from apertur.partners.models import PartnerStatus
from apertur.referrals.models import ReferralLink
from apertur.referrals.services import create_link
from apertur.testing import make_partner, make_user


@pytest.mark.django_db
def test_approval_creates_the_first_link_once() -> None:
    pending = make_partner(approved=False)
    assert not pending.referral_links.exists()
    approved = partner_services.approve(partner=pending, reviewer=make_user("staff@example.com"))
    links = list(approved.referral_links.all())
    assert [link.label for link in links] == ["Default"]
    assert links[0].url.endswith(f"/r/{links[0].code}")
    # Suspending and restoring is not a second approval: still the one link.
    partner_services.suspend(partner=approved, reviewer=None, reason="Chargebacks")
    partner_services.restore(partner=approved, reviewer=None)
    assert approved.referral_links.count() == 1


@pytest.mark.django_db
def test_a_refused_approval_creates_no_link() -> None:
    rejected = make_partner(approved=False)
    partner_services.reject(partner=rejected, reviewer=None, reason="Not a software company")
    with pytest.raises(InvalidPartnerTransition):
        partner_services.approve(partner=rejected, reviewer=None)
    assert not rejected.referral_links.exists()


@pytest.mark.django_db(transaction=True)
def test_migration_gives_earlier_approved_partners_their_first_link() -> None:
    before, after = (
        [("referrals", "0002_billing_and_attribution")],
        [("referrals", "0003_first_link_for_approved_partners")],
    )
    without, pending, with_two = make_partner(), make_partner(approved=False), make_partner()
    suspended = partner_services.suspend(partner=make_partner(), reviewer=None, reason="Chargebacks")
    ReferralLink.objects.filter(partner__in=[without, suspended]).delete()  # approved before approval made one
    create_link(partner=with_two, label="Spring campaign")
    kept = set(with_two.referral_links.values_list("code", flat=True))
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        assert list(without.referral_links.values_list("label", flat=True)) == ["Default"]
        assert list(suspended.referral_links.values_list("label", flat=True)) == ["Default"]
        assert not pending.referral_links.exists()
        assert set(with_two.referral_links.values_list("code", flat=True)) == kept
        assert pending.status == PartnerStatus.PENDING
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
