"""``/status``: the footer's Status link, ``/healthz``'s answer as a page for people (core/health.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apertur.core import health
from apertur.testing import assert_head_like_get, make_user

pytestmark = pytest.mark.django_db


def _break_the_database(monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise connection.Database.OperationalError("down")

    monkeypatch.setattr(connection, "cursor", broken)


def test_the_footer_links_to_the_status_page_not_to_the_json() -> None:
    html = Client().get("/login").content.decode()
    footer = html.split('<footer class="footer">')[1]
    assert '<a href="/status">Status</a>' in footer
    assert "/healthz" not in footer
    # The 500 page is static (no tags): its footer says the same.
    static_500 = (Path(__file__).parents[2] / "templates" / "500.html").read_text()
    assert '<a href="/status">Status</a>' in static_500 and "/healthz" not in static_500


def test_the_status_page_says_the_service_is_up_and_links_to_the_json() -> None:
    response = Client().get("/status")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert "<h1" in html and "Apertur is up" in html and "Operational" in html
    assert 'href="/healthz"' in html
    assert 'href="/static/css/apertur.css"' in html or "apertur." in html  # the site's stylesheet
    assert assert_head_like_get(Client(), "/status").status_code == 200


def test_healthz_is_unchanged() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize("signed_in", [False, True])
def test_the_status_page_says_so_when_the_database_is_down(monkeypatch: Any, signed_in: bool) -> None:
    """The page must not need the database it reports on: a signed-in visitor's session and user live there."""
    browser = Client(raise_request_exception=False)
    if signed_in:
        browser.force_login(make_user())
    _break_the_database(monkeypatch)
    response = browser.get("/status")
    assert response.status_code == 503
    html = response.content.decode()
    assert "Apertur is having trouble" in html and "Unavailable" in html
    assert "Something went wrong" not in html  # not the 500 page
    assert Client().get("/healthz").json() == {"status": "unavailable", "database": "OperationalError"}


def test_the_page_and_the_json_read_the_same_checks(monkeypatch: Any) -> None:
    """One place decides "up": a check that fails makes both answers say so."""
    monkeypatch.setattr(health, "check", lambda: health.Health(database="InterfaceError"))
    assert Client().get("/healthz").status_code == 503
    assert Client().get("/healthz").json() == {"status": "unavailable", "database": "InterfaceError"}
    page = Client().get("/status")
    assert page.status_code == 503 and "Apertur is having trouble" in page.content.decode()
