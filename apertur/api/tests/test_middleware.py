"""The browser-only middleware: pages answered to a signed-in person are never cached."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client

from apertur.accounts.models import User
from apertur.accounts.services import confirmation_path
from apertur.partners import paypal
from apertur.projects.services import create_project
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db


def test_every_page_answered_to_a_signed_in_person_is_never_cached() -> None:
    """Several pages (the projects list, the account, the partner's referral links and payouts, a project's cards)
    sent no Cache-Control at all: a shared cache could keep them, and Back after logging out showed them again."""
    partner = make_partner()
    project = create_project(owner=partner.user, name="P")
    browser = Client()
    browser.force_login(partner.user)
    pages = [
        "/projects/",
        f"/projects/{project.public_id}/",
        f"/projects/{project.public_id}/billing",
        f"/projects/{project.public_id}/api-keys/",
        f"/projects/{project.public_id}/webhooks/",
        "/account",
        "/partners/",
        "/partners/apps/",
        "/partners/referrals/",
        "/partners/commissions/",
        "/partners/payouts/",
        "/partners/payouts/statement.csv",
    ]
    for path in pages:
        response = browser.get(path)
        assert response.status_code == 200, path
        cache = response.get("Cache-Control", "")
        assert "no-store" in cache and "private" in cache, (path, cache)
    # A view's own choice stands (the SDK is public and cached), and the API keeps its own headers.
    assert "public" in browser.get("/sdk/aptr-connect.js")["Cache-Control"]


def test_a_page_for_nobody_in_particular_is_left_as_it_was() -> None:
    response = Client().get("/login")
    assert response.status_code == 200 and not response.has_header("Cache-Control")


def test_a_page_whose_service_is_out_of_reach_says_so_in_a_503(redis_down: None) -> None:
    """Login counts failed attempts in Redis: with Redis down the page was the 500 page ("an error on our side")."""
    response = Client(raise_request_exception=False).post("/login", {"email": "a@example.com", "password": "x"})
    assert response.status_code == 503
    html = response.content.decode()
    assert "briefly unavailable" in html and "Nothing was done" in html
    assert response["Retry-After"] == "60" and "no-store" in response["Cache-Control"]


def test_a_page_whose_address_is_a_secret_link_is_never_cached_whoever_opens_it(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A link that works by being known (settings.SECRET_PATH_PREFIXES) opened signed out: the email confirmation
    page (it names the account's address and asks for its password) and the PayPal confirmation page (its form holds
    the link's token) had no Cache-Control: a shared cache or the browser's could keep a working link and the
    account's address. The guest upload page and the password reset page were never_cache already, one by one."""
    partner = make_partner()
    with django_capture_on_commit_callbacks(execute=True):
        paypal.request_change(partner=partner, email="pay@snapflow.example")
    paypal_link = re.search(r"https?://[^/\s]+(/partners/payouts/confirm/\S+)", mail.outbox[-1].body)
    assert paypal_link, mail.outbox[-1].body
    unconfirmed = make_user()
    User.objects.filter(pk=unconfirmed.pk).update(email_confirmed_at=None)
    unconfirmed.refresh_from_db()
    for path in [paypal_link.group(1), confirmation_path(unconfirmed)]:
        assert path.startswith(settings.SECRET_PATH_PREFIXES), path
        response = Client().get(path)
        assert response.status_code == 200, (path, response.status_code)
        cache = response.get("Cache-Control", "")
        assert "no-store" in cache and "private" in cache, (path, cache)
