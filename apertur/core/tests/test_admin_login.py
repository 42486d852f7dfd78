"""``/admin/login/``: a signed-in account that is not staff gets the site's 403 page, not a second login form."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apertur.testing import PASSWORD, make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("who", ["customer", "partner"])
def test_a_signed_in_account_that_is_not_staff_is_told_so_on_the_sites_403_page(who: str) -> None:
    browser = Client()
    browser.force_login(make_user() if who == "customer" else make_partner().user)
    for url in ("/admin/", "/admin/payouts/payout/"):
        first = browser.get(url)
        assert first.status_code == 302 and first["Location"].startswith("/admin/login/?next=")
        page = browser.get(first["Location"])
        html = page.content.decode()
        assert page.status_code == 403 and "These pages are for Apertur staff." in html
        assert 'class="topbar"' in html and 'name="password"' not in html  # the site's page, no login form
    # Nor can it post a login there to become someone else on the admin.
    staff = make_staff("boss@example.com")
    refused = browser.post("/admin/login/", {"username": staff.email, "password": PASSWORD})
    assert refused.status_code == 403 and browser.get("/admin/").status_code == 302


def test_signed_out_visitors_and_staff_keep_the_admins_own_login() -> None:
    make_staff("boss@example.com")
    visitor = Client()
    form = visitor.get("/admin/login/?next=/admin/")
    assert form.status_code == 200 and 'name="password"' in form.content.decode()
    signed_in = visitor.post("/admin/login/?next=/admin/", {"username": "boss@example.com", "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/admin/"
    assert visitor.get("/admin/").status_code == 200
    assert visitor.get("/admin/login/")["Location"] == "/admin/"  # staff already signed in: to the admin


def test_the_admins_login_spends_the_same_failed_login_budgets_as_the_sites(settings: Any) -> None:
    """/admin/login/ checks passwords too: without the login budgets it was an unlimited password-guessing
    endpoint for every account (staff ones above all), beside the throttled /login."""
    settings.LOGIN_RATE_PER_ACCOUNT_IP = (3, 900)
    make_staff("boss@example.com")
    guesser = Client()
    for _ in range(3):
        wrong = guesser.post("/admin/login/", {"username": "boss@example.com", "password": "not-it"})
        assert wrong.status_code == 200 and "Please enter the correct" in wrong.content.decode()
    refused = guesser.post("/admin/login/", {"username": "BOSS@example.com ", "password": PASSWORD})
    # Refused as /login refuses (docs/accounts.md, "Limits"): 429 with Retry-After, not a 200 form that a script
    # or monitor reads as one more wrong password.
    assert refused.status_code == 429 and "Too many attempts" in refused.content.decode()
    assert 0 < int(refused["Retry-After"]) <= 900
    assert guesser.get("/admin/").status_code == 302  # the right password checked nothing past the budget
    # The budgets are the site's own: /login is refused for this account from here too.
    assert guesser.post("/login", {"email": "boss@example.com", "password": PASSWORD}).status_code == 429
