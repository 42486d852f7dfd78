"""CSRF_FAILURE_VIEW: a stale form gets a finished page of the site, still a 403."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from apertur.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _csrf_token(response: Any) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    assert match
    return match.group(1)


def test_a_stale_login_form_gets_a_finished_403_page_with_a_way_back() -> None:
    """Log in in tab A, then submit the login form still open in tab B: its token was rotated by the login."""
    make_user("ada@example.com")
    browser = Client(enforce_csrf_checks=True)
    tab_b = browser.get("/login?next=/projects/")
    stale = _csrf_token(tab_b)
    tab_a = browser.get("/login")
    logged_in = browser.post(
        "/login", {"email": "ada@example.com", "password": PASSWORD, "csrfmiddlewaretoken": _csrf_token(tab_a)}
    )
    assert logged_in.status_code == 302
    response = browser.post(
        "/login",
        {"email": "ada@example.com", "password": PASSWORD, "csrfmiddlewaretoken": stale, "next": "/projects/"},
        HTTP_REFERER="http://testserver/login?next=/projects/",
    )
    assert response.status_code == 403
    html = response.content.decode()
    assert "This form expired — reload the page and try again" in html
    assert 'class="topbar"' in html  # the site's header, not Django's bare page
    assert 'href="http://testserver/login?next=/projects/"' in html


@pytest.mark.parametrize("referer", [None, "https://evil.example/login", "//evil.example/"])
def test_the_csrf_page_links_home_unless_the_form_was_ours(referer: str | None) -> None:
    headers = {"HTTP_REFERER": referer} if referer else {}
    response = Client(enforce_csrf_checks=True).post("/logout", **headers)
    assert response.status_code == 403
    html = response.content.decode()
    assert "Back to Apertur" in html and 'href="/"' in html
    assert "evil.example" not in html  # (not "evil": a random CSRF token on the page may hold it)


def test_the_csrf_page_in_the_sdk_popup_keeps_the_opener() -> None:
    response = Client(enforce_csrf_checks=True).post(
        "/login", {"email": "a@example.com", "password": "x", "next": "/oauth/authorize?public_key=x"}
    )
    assert response.status_code == 403
    assert response["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert response["X-Frame-Options"] == "DENY"
