"""The header every page shares (templates/base.html)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apertur.projects.services import create_project
from apertur.testing import make_partner, make_staff

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
