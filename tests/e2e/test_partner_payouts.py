"""The partner's payouts page in Chromium: the fixed `PayPal email` field is the only thing with that name, the
confirmation link arrives by email, and opening it in the signed-in browser confirms the address."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from apertur.core.mail import stored_messages
from apertur.partners.models import Partner
from apertur.testing import PASSWORD, make_partner, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_set_and_confirm_the_paypal_email(page: Page, live_server: Any, maildir: Path) -> None:
    partner = make_partner(user=make_user("payee@snapflow.example"))
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill("payee@snapflow.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/partners/payouts/")
    field = page.get_by_label("PayPal email")  # strict: one element, even while no address is verified
    expect(field).to_have_count(1)
    field.fill("Pay@Snapflow.example")
    page.get_by_role("button", name="Send confirmation link").click()
    expect(page.get_by_text("We sent a confirmation link to pay@snapflow.example")).to_be_visible()
    expect(page.get_by_label("PayPal email")).to_have_count(1)

    (message,) = stored_messages(to="pay@snapflow.example")
    link = re.search(r"https?://\S+/partners/payouts/confirm/\S+", message.text)
    assert link, message.text
    path = link.group(0).split("/partners/", 1)[1]
    page.goto(f"{live_server.url}/partners/{path}")
    expect(page.get_by_role("heading", name="PayPal email confirmed")).to_be_visible()
    partner.refresh_from_db()
    assert partner.verified_paypal_email == "pay@snapflow.example"
    page.goto(f"{live_server.url}/partners/payouts/")
    expect(page.get_by_label("PayPal email")).to_have_count(1)
    assert Partner.objects.get(pk=partner.pk).paypal_verified_at is not None
