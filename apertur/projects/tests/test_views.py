"""The project page (projects/views.py)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apertur.projects.services import create_project
from apertur.testing import make_user

pytestmark = pytest.mark.django_db


def test_the_page_that_shows_a_new_api_key_is_never_stored_by_the_browser() -> None:
    """The secret is shown once; a cached copy of the page would show it again on Back (or from history)."""
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    shown = browser.post(f"/projects/{project.public_id}/api-keys", {"name": "Server"}, follow=True)
    assert re.search(r'data-testid="api-key-secret">aptr_', shown.content.decode())
    assert "no-store" in shown["Cache-Control"]
    assert "no-store" in browser.get(f"/projects/{project.public_id}/")["Cache-Control"]
