"""A person applies, staff approve, the partner creates an OAuth app and sees the secret exactly once —
in Chromium, against a live server."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from apertur.oauth.models import OAuthApp
from apertur.oauth.selectors import authenticate_client
from apertur.partners.models import Partner, PartnerStatus
from apertur.testing import make_partner, make_staff
from tests.e2e.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Log in")).to_be_visible()


def test_apply_approve_create_app_secret_shown_once(page: Page, live_server: Any) -> None:
    base = live_server.url
    staff = make_staff("reviewer@apertur.example")

    # Sign up and apply.
    page.goto(f"{base}/signup")
    page.get_by_label("Email").fill("founder@snapflow.example")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("Welcome to Apertur!")).to_be_visible()
    page.get_by_role("link", name="Partners").click()
    page.get_by_label("Company or platform name").fill("Snapflow Inc.")
    page.get_by_label("Website").fill("https://snapflow.example")
    page.get_by_label("What will you build with Apertur?").fill(
        "Event software that collects guest photos into Apertur projects."
    )
    page.get_by_label("Expected number of customers").select_option("11-100")
    page.get_by_role("button", name="Submit application").click()
    expect(page.get_by_test_id("application-status")).to_have_text("Pending review")
    page.goto(f"{base}/partners/apps/")
    expect(page.get_by_text("Partner tools are for approved partners")).to_be_visible()
    log_out(page)

    # Staff approve.
    log_in(page, base, staff.email, "correct-horse-battery")
    page.get_by_role("link", name="Review").click()
    page.get_by_role("link", name="Snapflow Inc.").click()
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("Snapflow Inc. approved")).to_be_visible()
    assert Partner.objects.get().status == PartnerStatus.APPROVED
    log_out(page)

    # The partner creates an app; a bad redirect URI is refused first.
    log_in(page, base, "founder@snapflow.example", "correct-horse-battery")
    page.get_by_role("link", name="Partners").click()
    page.get_by_role("link", name="OAuth apps").first.click()
    page.get_by_role("link", name="New OAuth App").click()
    page.get_by_label("App name").fill("Snapflow")
    page.get_by_label("Description").fill("Guest photos for events")
    page.get_by_label("Website URL").fill("https://snapflow.example")
    page.get_by_label("Redirect URIs").fill("http://snapflow.example/callback")
    page.get_by_label("Allowed domains").fill("*.snapflow.example")
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_text("redirect URIs must use https")).to_be_visible()
    assert OAuthApp.objects.count() == 0

    page.get_by_label("Redirect URIs").fill("https://snapflow.example/callback\nhttp://localhost:3000/callback")
    page.get_by_role("button", name="Create app").click()
    secret_box = page.get_by_test_id("client-secret")
    expect(secret_box).to_be_visible()
    secret = secret_box.inner_text().strip()
    assert re.fullmatch(r"aptr_cs_[A-Za-z0-9]{48}", secret)
    client_id = page.get_by_test_id("client-id").inner_text().strip()
    expect(page.get_by_test_id("live-public-key")).to_have_text(re.compile(r"^aptr_live_pk_"))
    expect(page.get_by_test_id("test-public-key")).to_have_text(re.compile(r"^aptr_test_pk_"))
    assert authenticate_client(client_id=client_id, client_secret=secret) is not None

    page.reload()
    expect(page.get_by_test_id("client-id")).to_have_text(client_id)
    expect(page.get_by_test_id("client-secret")).to_have_count(0)
    assert secret not in page.content()
    expect(page.get_by_text(f"••••••••{secret[-4:]}")).to_be_visible()


def test_staff_suspend_asks_first_and_one_field_is_labelled_reason(page: Page, live_server: Any) -> None:
    base = live_server.url
    staff = make_staff("reviewer@apertur.example")
    partner = make_partner()
    log_in(page, base, staff.email, "correct-horse-battery")
    page.goto(f"{base}/partners/staff/{partner.pk}/")
    expect(page.get_by_label("Reason")).to_have_count(1)

    page.get_by_label("Reason").fill("Chargebacks from referred customers")
    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_role("heading", name="Suspend Snapflow Inc.?")).to_be_visible()
    expect(page.get_by_test_id("confirm-reason")).to_have_text("Chargebacks from referred customers")
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.APPROVED  # asked, not done

    page.get_by_role("button", name="Suspend partner").click()
    expect(page.get_by_text("Snapflow Inc. suspended")).to_be_visible()
    partner.refresh_from_db()
    assert (partner.status, partner.suspension_reason) == (
        PartnerStatus.SUSPENDED,
        "Chargebacks from referred customers",
    )
    expect(page.get_by_label("Reason")).to_have_count(0)  # Restore takes no reason
