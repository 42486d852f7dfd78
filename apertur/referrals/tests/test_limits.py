"""How many referral links a partner may have: refused past the limit (``limit_reached``), page and service alike,
and nothing is created."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.core.errors import AperturError
from apertur.referrals import services
from apertur.referrals.models import ReferralLink
from apertur.testing import make_partner

pytestmark = pytest.mark.django_db


def test_links_up_to_the_limit_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_LINKS_PER_PARTNER", 3, raising=False)
    partner, other = make_partner(), make_partner()
    assert partner.referral_links.count() == 1  # the Default one of approval counts
    services.create_link(partner=partner, label="Newsletter")
    services.create_link(partner=partner, label="Blog")
    with pytest.raises(AperturError) as refused:
        services.create_link(partner=partner, label="One too many")
    assert (refused.value.code, refused.value.status) == ("limit_reached", 409)
    assert "at most 3 referral links" in refused.value.message
    assert partner.referral_links.count() == 3
    services.create_link(partner=other, label="Blog")  # per partner


def test_the_page_shows_the_limit_by_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_LINKS_PER_PARTNER", 1, raising=False)
    partner = make_partner()
    browser = Client()
    browser.force_login(partner.user)
    refused = browser.post("/partners/referrals/", {"label": "Spring"})
    assert refused.status_code == 400
    html = refused.content.decode()
    assert 'role="alert"' in html and "at most 1 referral links" in html
    assert ReferralLink.objects.filter(partner=partner).count() == 1
