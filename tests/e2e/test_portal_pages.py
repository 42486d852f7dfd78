"""Portal pages as a person uses them in Chromium: what Back shows after a secret, and what fits a phone."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from apertur.projects.services import create_project
from apertur.testing import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


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
