"""The project page (projects/views.py)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apertur.oauth.tokens import connect
from apertur.projects.services import create_project
from apertur.testing import make_app, make_partner, make_user

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


def test_connected_apps_say_what_each_app_can_do_in_the_consent_pages_words() -> None:
    """The owner allowed "See the project's name and details"; the list of connected apps says the same."""
    partner = make_partner()
    app = make_app(partner, name="Snapflow").app
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    connect(app=app, project=project, user=user, scopes=["plan:read", "project:read"])
    browser = Client()
    browser.force_login(user)
    html = browser.get(f"/projects/{project.public_id}/").content.decode()
    connected = html.split("<h2>Connected apps</h2>")[1]
    assert "See which Apertur plan the project is on and its limits" in connected
    assert "See the project&#x27;s name and details" in connected


def test_a_new_api_key_waits_for_its_own_projects_page() -> None:
    """Another project's page (a second tab) must not use up the one showing of the secret."""
    user = make_user()
    weddings, galas = create_project(owner=user, name="Weddings"), create_project(owner=user, name="Galas")
    browser = Client()
    browser.force_login(user)
    browser.post(f"/projects/{weddings.public_id}/api-keys", {"name": "Server"})
    assert 'data-testid="api-key-secret"' not in browser.get(f"/projects/{galas.public_id}/").content.decode()
    assert 'data-testid="api-key-secret"' in browser.get(f"/projects/{weddings.public_id}/").content.decode()


def test_a_project_without_api_keys_says_so() -> None:
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    html = browser.get(f"/projects/{project.public_id}/").content.decode()
    keys = html.split("<h2>API keys</h2>")[1].split("</section>")[0]
    assert '<p class="muted">No API keys yet.</p>' in keys


def test_a_head_request_does_not_use_up_the_new_api_key() -> None:
    """A HEAD (a link checker, a prefetch) gets no body: it must leave the one showing for the GET."""
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    browser.post(f"/projects/{project.public_id}/api-keys", {"name": "Server"})
    assert browser.head(f"/projects/{project.public_id}/").status_code == 200
    assert 'data-testid="api-key-secret"' in browser.get(f"/projects/{project.public_id}/").content.decode()


def test_the_projects_list_pages_by_25_oldest_first() -> None:
    import datetime as dt

    import time_machine

    user = make_user()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(27):
        with time_machine.travel(start + dt.timedelta(hours=n), tick=False):
            create_project(owner=user, name=f"Project {n:02d}")
    browser = Client()
    browser.force_login(user)
    first = browser.get("/projects/").content.decode()
    second = browser.get("/projects/?page=2").content.decode()
    assert "Project 00" in first and "Project 24" in first and "Project 25" not in first
    assert "Project 25" in second and "Project 26" in second and "Project 24" not in second
    assert "Page 1 of 2 (27 projects)" in first and 'rel="next"' in first
    assert "Create project" in second  # the form is on every page
