"""Who reaches the staff review pages (every URL under /partners/staff/, walked from the URLconf)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern

from apertur.partners import urls as partner_urls
from apertur.partners.models import Partner, PartnerStatus
from apertur.testing import make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")


def _staff_urls(partner: Partner) -> list[str]:
    """Each staff route with its parameters filled in: a partner id, and each review action the page posts."""
    urls: list[str] = []
    for pattern in partner_urls.urlpatterns:
        assert isinstance(pattern, URLPattern) or not str(pattern.pattern).startswith("staff/")
        route = str(pattern.pattern)
        if not route.startswith("staff/"):
            continue
        names = [name for _, name in _CONVERTER.findall(route)]
        assert set(names) <= {"partner_id", "action"}, f"fill in the new parameter of {route}"
        actions = ["approve", "reject", "suspend", "restore", "hold", "release"] if "action" in names else [""]
        for action in actions:
            values = {"partner_id": str(partner.pk), "action": action}
            path = _CONVERTER.sub(lambda m, values=values: values[m.group(2)], route)
            urls.append(f"/partners/{path}")
    return urls


@pytest.fixture
def walk() -> tuple[Partner, list[str]]:
    partner = make_partner(approved=False)
    urls = _staff_urls(partner)
    assert "/partners/staff/" in urls and f"/partners/staff/{partner.pk}/" in urls
    assert f"/partners/staff/{partner.pk}/approve" in urls
    return partner, urls


def test_a_signed_out_visitor_gets_the_login_page_with_next(walk: tuple[Partner, list[str]]) -> None:
    partner, urls = walk
    for url in urls:
        for method in ("get", "post"):
            response = getattr(Client(), method)(url)
            assert response.status_code == 302, (method, url)
            assert response["Location"] == f"/login?next={url}", (method, url)
    assert Client().get("/login?next=/partners/staff/").status_code == 200
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.PENDING


def test_a_signed_in_customer_gets_a_403_page_of_the_site(walk: tuple[Partner, list[str]]) -> None:
    partner, urls = walk
    browser = Client()
    browser.force_login(make_user())
    for url in urls:
        for method in ("get", "post"):
            response = getattr(browser, method)(url, {"reason": "no", "confirmed": "yes"} if method == "post" else {})
            assert response.status_code == 403, (method, url)
            html = response.content.decode()
            assert 'class="topbar"' in html and "These pages are for Apertur staff." in html, (method, url)
            # Not Django admin's login form, nor any other: the visitor is signed in already.
            assert 'name="password"' not in html and "/admin/login" not in html, (method, url)
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.PENDING


def test_an_inactive_staff_account_is_not_staff(walk: tuple[Partner, list[str]]) -> None:
    _, urls = walk
    staff = make_staff()
    browser = Client()
    browser.force_login(staff)
    staff.is_active = False
    staff.save(update_fields=["is_active"])
    # Django's auth drops an inactive user's session, so this is the login page again, never the staff page.
    assert browser.get(urls[0]).status_code == 302


def test_staff_still_reach_every_page(walk: tuple[Partner, list[str]]) -> None:
    partner, urls = walk
    browser = Client()
    browser.force_login(make_staff())
    for url in urls:
        status = browser.get(url).status_code
        assert status == (200 if url.endswith("/") else 405), url  # the review actions are POST only
    assert browser.post(f"/partners/staff/{partner.pk}/approve").status_code == 302
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.APPROVED


def test_an_unknown_staff_action_is_the_sites_404_page() -> None:
    partner = make_partner(approved=False)
    staff = Client()
    staff.force_login(make_staff())
    response = staff.post(f"/partners/staff/{partner.pk}/promote", {"reason": "x"})
    assert response.status_code == 404 and 'class="topbar"' in response.content.decode()
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.PENDING


def _staff_with(*codenames: str) -> Client:
    from django.contrib.auth.models import Permission

    staff = make_user(is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    browser = Client()
    browser.force_login(staff)
    return browser


def test_staff_who_may_only_look_cannot_decide_suspend_or_release_payouts() -> None:
    """The admin gives staff limited permissions (a "payout viewer" with only the view permission); the review page
    changes partners, so its actions need the change permission on partners, as editing one in the admin does. A
    view-only staff account got every action: approve, suspend, and release a payout hold (money)."""
    from apertur.payouts import services as payout_services

    pending, approved = make_partner(approved=False), make_partner()
    payout_services.hold_partner(partner=approved, actor=make_staff(), reason="Chargebacks under review")
    viewer = _staff_with("view_partner", "view_payout")
    page = viewer.get(f"/partners/staff/{approved.pk}/")
    assert page.status_code == 200  # looking is still allowed
    html = page.content.decode()
    assert "/release" not in html and "/suspend" not in html
    posts = [
        (pending, "approve", {}),
        (pending, "reject", {"reason": "no", "confirmed": "yes"}),
        (approved, "suspend", {"reason": "no", "confirmed": "yes"}),
        (approved, "release", {}),
    ]
    for partner, action, data in posts:
        response = viewer.post(f"/partners/staff/{partner.pk}/{action}", data)
        assert response.status_code == 403, action
        assert "reviewing needs the change permission on partners" in response.content.decode(), action
    pending.refresh_from_db()
    approved.refresh_from_db()
    assert pending.status == PartnerStatus.PENDING and approved.status == PartnerStatus.APPROVED
    assert approved.payouts_held_at is not None


def test_staff_with_the_change_permission_on_partners_review() -> None:
    partner = make_partner(approved=False)
    reviewer = _staff_with("view_partner", "change_partner")
    assert "/approve" in reviewer.get(f"/partners/staff/{partner.pk}/").content.decode()
    assert reviewer.post(f"/partners/staff/{partner.pk}/approve").status_code == 302
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.APPROVED
