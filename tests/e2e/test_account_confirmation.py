"""The email confirmation link in Chromium, against a squatted signup ("pre-hijacked accounts", Sudhodanan &
Paverd 2022): someone signs up with ada's address and stays signed in; ada opens the link in her own browser.
It must not confirm the squatter's account for her: it asks for the password, and "Choose a new password" makes
the account hers and logs the squatter out. The person who really signed up, on another device, confirms with
their password; in the browser that signed up, opening the link is all it takes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from apertur.accounts.models import User
from apertur.core.mail import stored_messages

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SQUATTER_PASSWORD = "squatters-own-secret"


def _sign_up(page: Page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text(f"We sent a confirmation link to {email}")).to_be_visible()


def _confirmation_path(email: str) -> str:
    (message,) = stored_messages(to=email)
    link = re.search(r"https?://[^/\s]+(/confirm-email/\S+)", message.text)
    assert link, message.text
    assert "asks for\nyour password first" in message.text
    return link.group(1)


def test_the_owner_of_a_squatted_address_takes_the_account_over(
    page: Page, browser: Browser, live_server: Any, maildir: Path
) -> None:
    base = live_server.url
    squatter = browser.new_context().new_page()
    _sign_up(squatter, base, "ada@example.com", SQUATTER_PASSWORD)
    path = _confirmation_path("ada@example.com")

    page.goto(f"{base}{path}")
    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    expect(page.get_by_text("This link confirms ada@example.com")).to_be_visible()
    assert not User.objects.get(email="ada@example.com").email_confirmed
    page.get_by_role("button", name="Confirm and log in").click()
    expect(page.get_by_text("This field is required.")).to_be_visible()
    page.get_by_label("Password").fill("a-wrong-guess")
    page.get_by_role("button", name="Confirm and log in").click()
    expect(page.get_by_text("Incorrect password.")).to_be_visible()
    assert not User.objects.get(email="ada@example.com").email_confirmed

    page.get_by_role("button", name="Choose a new password").click()
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill("adas-very-own-secret")
    page.get_by_label("New password confirmation").fill("adas-very-own-secret")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()
    user = User.objects.get(email="ada@example.com")
    assert user.email_confirmed and user.check_password("adas-very-own-secret")

    squatter.goto(f"{base}/account")  # the squatter's session ended with the new password
    expect(squatter.get_by_role("button", name="Log in")).to_be_visible()
    squatter.context.close()


def test_the_person_who_signed_up_confirms_on_another_device_with_the_password(
    page: Page, browser: Browser, live_server: Any, maildir: Path
) -> None:
    base = live_server.url
    laptop = browser.new_context().new_page()
    _sign_up(laptop, base, "grace@example.com", SQUATTER_PASSWORD)
    path = _confirmation_path("grace@example.com")
    laptop.context.close()

    page.goto(f"{base}{path}")  # the phone
    page.get_by_label("Password").fill(SQUATTER_PASSWORD)
    page.get_by_role("button", name="Confirm and log in").click()
    expect(page.get_by_role("heading", name="Email confirmed")).to_be_visible()
    expect(page.get_by_text("You are logged in as grace@example.com")).to_be_visible()
    assert User.objects.get(email="grace@example.com").email_confirmed


def test_the_browser_that_signed_up_confirms_in_one_click(page: Page, live_server: Any, maildir: Path) -> None:
    base = live_server.url
    _sign_up(page, base, "lin@example.com", SQUATTER_PASSWORD)
    page.goto(f"{base}{_confirmation_path('lin@example.com')}")
    expect(page.get_by_role("heading", name="Email confirmed")).to_be_visible()
    assert User.objects.get(email="lin@example.com").email_confirmed
