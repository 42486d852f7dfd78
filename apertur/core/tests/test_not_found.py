"""The 404 page says what our views mean by it, and nothing of Django's internals."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.testing import make_user

pytestmark = pytest.mark.django_db


def test_a_views_own_not_found_message_is_shown() -> None:
    browser = Client()
    browser.force_login(make_user())
    response = browser.get("/projects/prj_doesnotexist/")
    assert response.status_code == 404
    assert b"No such project." in response.content


def test_an_unmatched_url_gets_the_generic_text_not_the_resolvers_name() -> None:
    response = Client().get("/no/such/page")
    assert response.status_code == 404
    assert b"This page does not exist, or you do not have access to it." in response.content
    assert b"Resolver404" not in response.content


def test_the_api_still_answers_json_for_unknown_paths() -> None:
    response = Client().get("/api/v1/no-such-endpoint")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")
