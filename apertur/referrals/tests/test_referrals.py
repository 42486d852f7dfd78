from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from apertur.referrals.models import Attribution, ReferralClick
from apertur.referrals.services import create_link, ensure_default_link
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db
SIGNUP = {"password": "correct-horse-battery", "confirm_password": "correct-horse-battery"}


def signup(browser: Client, email: str) -> None:
    assert browser.post("/signup", {"email": email, **SIGNUP}).status_code == 302


def test_click_sets_a_90_day_cookie_and_signup_is_attributed() -> None:
    partner = make_partner()
    link = ensure_default_link(partner=partner)
    browser = Client()
    response = browser.get(f"/r/{link.code}")
    assert response.status_code == 302 and response["Location"] == "/signup"
    cookie = response.cookies["aptr_ref"]
    assert cookie["max-age"] == 90 * 24 * 3600 and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert ReferralClick.objects.filter(link=link).count() == 1
    signup(browser, "new@example.com")
    attribution = Attribution.objects.get(customer__email="new@example.com")
    assert attribution.partner == partner and attribution.source == "referral" and attribution.link == link


def test_head_redirects_like_get_but_is_no_click() -> None:
    link = ensure_default_link(partner=make_partner())
    response = Client().head(f"/r/{link.code}")
    assert response.status_code == 302 and response["Location"] == "/signup"
    assert "aptr_ref" not in response.cookies
    assert not ReferralClick.objects.filter(link=link).exists()
    assert Client().head("/r/unknown").status_code == 404


def test_cookie_edge_in_toronto_time() -> None:
    partner = make_partner()
    link = ensure_default_link(partner=partner)
    start = dt.datetime(2026, 3, 1, 4, 30, tzinfo=dt.UTC)  # 2026-02-28 23:30 in Toronto
    browser = Client()
    with time_machine.travel(start, tick=False):
        browser.get(f"/r/{link.code}")
    with time_machine.travel(start + dt.timedelta(days=90, seconds=1), tick=False):
        signup(browser, "late@example.com")
    assert not Attribution.objects.filter(customer__email="late@example.com").exists()
    other = Client()
    with time_machine.travel(start, tick=False):
        other.get(f"/r/{link.code}")
    with time_machine.travel(start + dt.timedelta(days=90), tick=False):
        signup(other, "just-in-time@example.com")
    assert Attribution.objects.filter(customer__email="just-in-time@example.com").exists()


def test_last_click_wins() -> None:
    first, second = make_partner(), make_partner(user=make_user())
    browser = Client()
    browser.get(f"/r/{ensure_default_link(partner=first).code}")
    browser.get(f"/r/{create_link(partner=second, label='Spring').code}")
    signup(browser, "fan@example.com")
    assert Attribution.objects.get(customer__email="fan@example.com").partner == second


def test_forged_or_unknown_cookie_and_unknown_link() -> None:
    assert Client().get("/r/nope").status_code == 404
    browser = Client()
    browser.cookies["aptr_ref"] = "forged-value"
    signup(browser, "x@example.com")
    assert Attribution.objects.count() == 0


def test_suspended_partners_do_not_get_new_referrals() -> None:
    from apertur.partners import services

    partner = make_partner()
    link = ensure_default_link(partner=partner)
    browser = Client()
    browser.get(f"/r/{link.code}")
    services.suspend(partner=partner, reviewer=None, reason="Abuse")
    signup(browser, "y@example.com")
    assert Attribution.objects.count() == 0


def test_staff_change_an_attribution_with_a_reason_in_admin() -> None:
    from apertur.core.models import AuditEvent
    from apertur.testing import make_staff

    first, second = make_partner(), make_partner(user=make_user())
    customer = make_user()
    attribution = Attribution.objects.create(customer=customer, partner=first, source="referral")
    admin = Client()
    admin.force_login(make_staff())
    url = f"/admin/referrals/attribution/{attribution.pk}/change/"
    missing = admin.post(url, {"partner": second.pk, "reason": ""})
    assert missing.status_code == 200  # the form asks for the reason
    attribution.refresh_from_db()
    assert attribution.partner == first
    done = admin.post(url, {"partner": second.pk, "reason": "Customer confirmed they came from Second"})
    assert done.status_code == 302
    attribution.refresh_from_db()
    assert attribution.partner == second
    event = AuditEvent.objects.get(action="attribution.changed")
    assert event.data["reason"] == "Customer confirmed they came from Second"


def test_an_oauth_attribution_moves_to_an_earlier_qualifying_moment_of_the_same_partner() -> None:
    """Stripe may deliver an upgrade before the subscription's start: the attribution made at the upgrade moves
    back to the start when the same partner's app was connected by then, never to another partner, and a
    referral attribution never moves."""
    from apertur.core.models import AuditEvent
    from apertur.oauth.tokens import connect
    from apertur.projects.services import create_project
    from apertur.referrals.models import AttributionSource
    from apertur.referrals.services import attribute_by_oauth
    from apertur.testing import make_app

    def day(d: int) -> dt.datetime:
        return dt.datetime(2026, 1, d, 12, tzinfo=dt.UTC)

    created = make_app()
    customer = make_user("moved@example.com")
    project = create_project(owner=customer, name="P")
    with time_machine.travel(day(1), tick=False):
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    first = attribute_by_oauth(customer=customer, at=day(20))
    assert first is not None and first.at == day(20)
    moved = attribute_by_oauth(customer=customer, at=day(10))
    assert moved is not None and (moved.pk, moved.at, moved.partner) == (first.pk, day(10), created.app.partner)
    assert AuditEvent.objects.filter(action="attribution.moved_earlier").count() == 1
    assert attribute_by_oauth(customer=customer, at=day(15)) is None  # later: nothing to do
    assert attribute_by_oauth(customer=customer, at=day(1)) is not None  # connected at that very moment
    # Before any connection: nothing qualifies.
    assert attribute_by_oauth(customer=customer, at=day(1) - dt.timedelta(seconds=1)) is None
    # A referral attribution is never moved.
    referred = make_user("referred@example.com")
    referred_project = create_project(owner=referred, name="R")
    with time_machine.travel(day(1), tick=False):
        connect(app=created.app, project=referred_project, user=referred, scopes=["plan:read"])
    Attribution.objects.create(customer=referred, partner=make_partner(), source=AttributionSource.REFERRAL, at=day(20))
    assert attribute_by_oauth(customer=referred, at=day(10)) is None
    assert Attribution.objects.get(customer=referred).at == day(20)
