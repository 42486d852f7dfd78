"""Portal pages as a person uses them in Chromium: what Back shows after a secret, and what fits a phone."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from apertur.oauth.tokens import connect
from apertur.projects.services import create_api_key, create_project
from apertur.referrals.services import create_link
from apertur.testing import make_app, make_partner, make_staff, make_user
from tests.e2e.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_back_does_not_show_a_new_api_key_again(page: Page, live_server: Any) -> None:
    base = live_server.url
    user = make_user("owner@example.com")
    project = create_project(owner=user, name="Weddings")
    log_in(page, base, user.email)
    page.goto(f"{base}/projects/{project.public_id}/")
    page.get_by_label("Key name").fill("Server")
    page.get_by_role("button", name="Create API key").click()
    expect(page.get_by_test_id("api-key-secret")).to_be_visible()

    page.get_by_role("link", name="Add webhook endpoint").click()
    expect(page.get_by_role("heading", name="New webhook endpoint")).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", name="Weddings")).to_be_visible()
    expect(page.get_by_role("cell", name="Server")).to_be_visible()
    expect(page.get_by_test_id("api-key-secret")).to_have_count(0)


# The widest elements sticking out of the viewport, for a readable failure.
OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
    .map((el) => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(el.getBoundingClientRect().right)}`);
  return { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, wide: wide.slice(0, 5) };
}"""

LONG_EMAIL = "christopher.montgomeryfairweather@photographystudio.example"  # no hyphen to break at


def test_pages_with_long_addresses_fit_a_phone_without_sideways_scrolling(page: Page, live_server: Any) -> None:
    """375 px (an iPhone): long emails, URLs and keys wrap; wide tables scroll inside their own box."""
    base = live_server.url
    page.set_viewport_size({"width": 375, "height": 800})
    staff = make_staff("staff@example.com")
    owner = make_user(LONG_EMAIL)
    partner = make_partner(user=owner)
    created = make_app(
        partner,
        name="Snapflow Event Galleries",
        website="https://www.snapflow-event-galleries.example/integrations/apertur",
        redirect_uris=["https://www.snapflow-event-galleries.example/integrations/apertur/callback"],
    )
    project = create_project(owner=owner, name="Weddings")
    create_api_key(project=project, name="Server")
    connect(app=created.app, project=project, user=owner, scopes=["plan:read", "project:read"])

    log_in(page, base, owner.email)
    pages = [
        "/partners/apps/",
        "/partners/referrals/",
        f"/partners/apps/{created.app.client_id}/",
        f"/projects/{project.public_id}/",
        f"/projects/{project.public_id}/settings",
        "/account",
        "/login",  # the notice naming the signed-in account
    ]
    for path in pages:
        page.goto(base + path)
        assert page.evaluate(OVERFLOW)["scrollWidth"] <= 375, (path, page.evaluate(OVERFLOW))
    # Tables a phone user acts on show every column on screen, not off to the side of a scrolling box:
    # connected apps (what the app can do, Disconnect), the partner's apps (status) and referral links.
    on_screen = {
        f"/projects/{project.public_id}/": [
            page.get_by_role("link", name="Disconnect Snapflow Event Galleries"),
            page.get_by_text("See the project's name and details"),
        ],
        "/partners/apps/": [page.get_by_text("Active", exact=True)],
        "/partners/referrals/": [page.get_by_role("cell", name="Default")],
    }
    for path, targets in on_screen.items():
        page.goto(base + path)
        for target in targets:
            box = target.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, (path, box)
    page.get_by_role("button", name="Log out").click()

    log_in(page, base, staff.email)
    page.goto(f"{base}/partners/staff/{partner.pk}/")
    assert page.evaluate(OVERFLOW)["scrollWidth"] <= 375, page.evaluate(OVERFLOW)


def test_a_long_campaign_label_does_not_squeeze_the_referral_link(page: Page, live_server: Any) -> None:
    """Desktop: the link a partner copies stays on one line beside an 80-character label with no space."""
    base = live_server.url
    page.set_viewport_size({"width": 1280, "height": 800})
    partner = make_partner(user=make_user("partner@example.com"))
    create_link(partner=partner, label="x" * 80)
    log_in(page, base, "partner@example.com")
    page.goto(f"{base}/partners/referrals/")
    for code in page.locator("td code").all():
        box = code.bounding_box()
        assert box and box["height"] < 30, box  # one line
    assert page.evaluate(OVERFLOW)["scrollWidth"] <= 1280
    signups = page.get_by_role("columnheader", name="Signups").bounding_box()
    assert signups and signups["x"] + signups["width"] <= 1280, signups


# Sends the form twice in one go, as a double click does, and tells whether each send was stopped. The page's
# own listener on window runs last and stops the real navigation, so the test sees both sends.
SEND_TWICE = """(selector) => {
  const form = document.querySelector(selector);
  const stopped = [];
  const record = (event) => { stopped.push(event.defaultPrevented); event.preventDefault(); };
  window.addEventListener("submit", record);
  form.requestSubmit();
  form.requestSubmit();
  window.removeEventListener("submit", record);
  return stopped;
}"""
PAGESHOW = "() => window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))"


def test_a_form_on_its_way_is_not_sent_a_second_time(page: Page, live_server: Any) -> None:
    """A double click on "Create project" sends one request (core/forms.js)."""
    base = live_server.url
    user = make_user("owner@example.com")
    log_in(page, base, user.email)
    page.get_by_label("Project name").fill("Weddings")  # an empty required field is never sent at all

    assert page.evaluate(SEND_TWICE, "section.card form") == [False, True]
    assert page.get_attribute("section.card form", "aria-busy") == "true"

    # Back shows the page again (pageshow): the form can be sent again, once.
    page.evaluate(PAGESHOW)
    assert page.get_attribute("section.card form", "aria-busy") is None
    assert page.evaluate(SEND_TWICE, "section.card form") == [False, True]

    # Sent for real, the form does what it did before: one project, and its page.
    page.evaluate(PAGESHOW)
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Weddings")).to_be_visible()
    assert [project.name for project in user.projects.all()] == ["Weddings"]


def test_the_owner_changes_project_settings_by_their_labels_once_per_click(page: Page, live_server: Any) -> None:
    """From the project page to its Settings page; a double click on Save sends one request (core/forms.js); a
    refused value is said beside its field and kept to correct; a save says so."""
    base = live_server.url
    user = make_user("owner@example.com")
    project = create_project(owner=user, name="Weddings")
    log_in(page, base, user.email)
    page.goto(f"{base}/projects/{project.public_id}/")
    page.get_by_role("link", name="Project settings").click()
    expect(page.get_by_role("heading", name="Project settings")).to_be_visible()

    page.get_by_label("Default link expiry (days)").fill("5000")
    page.get_by_label("Email me when a guest uploads").check()
    assert page.evaluate(SEND_TWICE, "section.card form") == [False, True]
    page.evaluate(PAGESHOW)

    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#id_default_session_days_error")).to_have_text(
        "The default link expiry is a number of days between 1 and 3,650."
    )
    expect(page.get_by_label("Default link expiry (days)")).to_have_value("5000")
    expect(page.get_by_label("Email me when a guest uploads")).to_be_checked()
    page.get_by_label("Default link expiry (days)").fill("30")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Project settings saved.")).to_be_visible()
    project.refresh_from_db()
    assert (project.default_session_days, project.notify_owner_on_upload) == (30, True)
