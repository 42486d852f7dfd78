"""The partner portal's referral links page: the partner's links with their clicks and signups, and a
form to create one with an optional campaign label."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apertur.accounts.models import User
from apertur.partners.models import Partner, PartnerStatus
from apertur.referrals.models import Attribution, AttributionSource, ReferralClick, ReferralLink
from apertur.referrals.services import create_link, ensure_default_link, record_click
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db


def browser_for(user: User, **kwargs: bool) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def attribute(partner: Partner, link: ReferralLink, email: str) -> None:
    Attribution.objects.create(customer=make_user(email), partner=partner, source=AttributionSource.REFERRAL, link=link)


def test_lists_links_with_clicks_signups_and_dates() -> None:
    partner = make_partner()
    default = ensure_default_link(partner=partner)
    with time_machine.travel(dt.datetime(2026, 4, 2, 12, tzinfo=dt.UTC), tick=False):
        spring = create_link(partner=partner, label="Spring newsletter")
    for link in [spring] * 4 + [default]:
        record_click(link=link)
    attribute(partner, spring, "one@example.com")
    attribute(partner, spring, "two@example.com")
    other = make_partner()
    theirs = create_link(partner=other, label="Their campaign")
    record_click(link=theirs)

    response = browser_for(partner.user).get("/partners/referrals/")
    assert response.status_code == 200
    html = response.content.decode()
    assert spring.url in html and default.url in html
    assert "Spring newsletter" in html and "2026-04-02" in html
    links = {link.code: link for link in response.context["links"]}
    assert (links[spring.code].click_count, links[spring.code].signup_count) == (4, 2)
    assert (links[default.code].click_count, links[default.code].signup_count) == (1, 0)
    assert theirs.url not in html and "Their campaign" not in html
    assert "Not available yet" not in html


def test_create_a_link_with_a_label() -> None:
    partner = make_partner()
    client = browser_for(partner.user, enforce_csrf_checks=True)
    page = client.get("/partners/referrals/")
    token = page.cookies["csrftoken"].value
    response = client.post("/partners/referrals/", {"label": "  Spring   newsletter ", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/partners/referrals/"
    link = ReferralLink.objects.filter(partner=partner).latest("id")  # after the Default one of approval
    assert link.label == "Spring newsletter"
    html = client.get("/partners/referrals/").content.decode()
    assert f"Referral link created: {link.url}" in html and "Spring newsletter" in html


def test_the_label_is_optional() -> None:
    partner = make_partner()
    response = browser_for(partner.user).post("/partners/referrals/", {"label": ""})
    assert response.status_code == 302
    assert ReferralLink.objects.filter(partner=partner).latest("id").label == ""
    assert browser_for(partner.user).post("/partners/referrals/", {}).status_code == 302
    assert ReferralLink.objects.filter(partner=partner).count() == 3  # with the Default one of approval


def test_a_label_over_80_characters_is_refused_and_nothing_is_stored() -> None:
    partner = make_partner()
    response = browser_for(partner.user).post("/partners/referrals/", {"label": "x" * 81})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Ensure this value has at most 80 characters (it has 81)." in html
    assert ReferralLink.objects.filter(partner=partner).count() == 1  # only the Default one of approval
    assert browser_for(partner.user).post("/partners/referrals/", {"label": "x" * 80}).status_code == 302


def test_posting_without_the_csrf_token_is_refused() -> None:
    partner = make_partner()
    response = browser_for(partner.user, enforce_csrf_checks=True).post("/partners/referrals/", {"label": "Sneaky"})
    assert response.status_code == 403
    assert not ReferralLink.objects.filter(label="Sneaky").exists()


@pytest.mark.parametrize("status", [None, PartnerStatus.PENDING, PartnerStatus.REJECTED, PartnerStatus.SUSPENDED])
def test_only_approved_partners(status: str | None) -> None:
    user = make_user()
    if status is not None:
        partner = make_partner(user=user, approved=status == PartnerStatus.SUSPENDED)
        Partner.objects.filter(pk=partner.pk).update(status=status)
    client = browser_for(user)
    assert client.get("/partners/referrals/").status_code == 403
    assert client.post("/partners/referrals/", {"label": "Nope"}).status_code == 403
    assert ReferralLink.objects.filter(label="Nope").count() == 0


def test_query_count_does_not_grow_with_links() -> None:
    few, many = make_partner(), make_partner()
    ensure_default_link(partner=few)
    for i in range(20):
        link = create_link(partner=many, label=f"Campaign {i}")
        record_click(link=link)
        attribute(many, link, f"fan{i}@example.com")

    def queries(partner: Partner) -> int:
        client = browser_for(partner.user)
        client.get("/partners/referrals/")
        with CaptureQueriesContext(connection) as captured:
            client.get("/partners/referrals/")
        return len(captured)

    assert queries(few) == queries(many)


def test_links_page_by_25_newest_first() -> None:
    partner = make_partner()  # approval made the Default link
    start = ReferralLink.objects.get(partner=partner).created_at
    for i in range(26):
        with time_machine.travel(start + dt.timedelta(hours=i + 1), tick=False):
            create_link(partner=partner, label=f"Campaign {i:02d}")
    client = browser_for(partner.user)
    first = client.get("/partners/referrals/")
    assert [link.label for link in first.context["links"]][:2] == ["Campaign 25", "Campaign 24"]
    assert len(first.context["links"]) == 25 and "Page 1 of 2 (27 links)" in first.content.decode()
    second = client.get("/partners/referrals/?page=2")
    assert [link.label for link in second.context["links"]] == ["Campaign 00", "Default"]


def test_a_head_request_leaves_the_flash_message_for_the_next_page() -> None:
    partner = make_partner()
    client = browser_for(partner.user)
    assert client.post("/partners/referrals/", {"label": "Spring"}).status_code == 302
    assert client.head("/partners/commissions/").status_code == 200  # a link checker, a prefetch
    assert "Referral link created" in client.get("/partners/referrals/").content.decode()


def test_the_partners_pages_read_each_links_click_count_not_its_clicks() -> None:
    """Counting a link's clicks on every page load grew with every click (180 ms per page at 2 M clicks on
    PostgreSQL): the link keeps its count (``record_click``), and neither the links page nor the dashboard's funnel
    reads the clicks table."""
    partner = make_partner()
    link = ensure_default_link(partner=partner)
    spring = create_link(partner=partner, label="Spring")
    for clicked in (link, link, link, spring):
        record_click(link=clicked)
    assert ReferralClick.objects.filter(link__partner=partner).count() == 4
    client = browser_for(partner.user)
    for path in ("/partners/referrals/", "/partners/commissions/"):
        client.get(path)
        with CaptureQueriesContext(connection) as captured:
            page = client.get(path)
        assert page.status_code == 200
        assert not [q["sql"] for q in captured if "referralclick" in q["sql"].lower()], path
    links = {
        row.code: row.click_count for row in browser_for(partner.user).get("/partners/referrals/").context["links"]
    }
    assert links == {link.code: 3, spring.code: 1}
    assert (
        '>4</span> <span class="funnel-label">clicks on your links'
        in client.get("/partners/commissions/").content.decode()
    )
