"""``/admin/login/``: a signed-in account that is not staff gets the site's 403 page, not a second login form."""

from __future__ import annotations

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
