"""The header every page shares (templates/base.html)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apertur.projects.services import create_project
from apertur.testing import make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db


def _current(html: str) -> list[str]:
    header = html.split("</header>")[0]
    return re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', header)


def test_the_header_marks_the_section_the_page_is_in() -> None:
    """Screen readers announce the current link; sighted users see it underlined."""
    partner = make_partner()
    project = create_project(owner=partner.user, name="Weddings")
    browser = Client()
    browser.force_login(partner.user)
    assert _current(browser.get("/projects/").content.decode()) == ["Projects"]
    assert _current(browser.get(f"/projects/{project.public_id}/").content.decode()) == ["Projects"]
    assert _current(browser.get("/partners/").content.decode()) == ["Partners"]
    assert _current(browser.get("/partners/apps/").content.decode()) == ["Partners"]
    assert _current(browser.get("/account").content.decode()) == ["Account"]
    staff = Client()
    staff.force_login(make_staff())
    assert _current(staff.get("/partners/staff/").content.decode()) == ["Review"]


def test_a_skip_link_is_the_first_thing_on_every_page_and_leads_to_the_main_content() -> None:
    """WCAG 2.4.1: a keyboard user gets past the header's links in one step."""
    html = Client().get("/login").content.decode()
    body = html.split("<body>", 1)[1]
    assert body.lstrip().startswith('<a class="skip-link" href="#main">Skip to main content</a>')
    assert '<main id="main"' in body


def test_flash_messages_stay_a_list_inside_a_status_region() -> None:
    """role="status" on the <ul> itself replaced its list role, leaving its items outside any list (WCAG 1.3.1)."""
    browser = Client()
    browser.force_login(make_partner().user)
    browser.post("/partners/referrals/", {"label": "Spring campaign"})
    html = browser.get("/partners/referrals/").content.decode()
    assert re.search(r'<div role="status"><ul class="messages">\s*<li class="message success">', html), html
    assert not re.search(r"<ul[^>]*role=", html)


def test_the_unconfirmed_email_banner_is_a_named_region() -> None:
    """Between the header and the main content it was outside every landmark, so landmark navigation skipped it."""
    user = make_user("new@example.com")
    user.email_confirmed_at = None
    user.save(update_fields=["email_confirmed_at"])
    browser = Client()
    browser.force_login(user)
    html = browser.get("/projects/").content.decode()
    assert '<div class="banner" role="region" aria-label="Email confirmation">' in html
