"""Races of the dashboard's secret rolls, on PostgreSQL with real parallel connections."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client

from apertur.core.models import AuditEvent
from apertur.projects.services import create_project
from apertur.testing import make_app, make_user
from apertur.webhooks import services
from apertur.webhooks.models import WebhookEndpoint
from tests.test_concurrency import race


def _posted_twice_at_once(browser: Client, url: str, choice: str) -> list[Any]:
    """The roll form as the page gives it (its hidden fields too), sent twice at once from one browser: a double
    click. Two clients with the browser's cookies, so one session."""
    page = browser.get(url).content.decode()
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    form = {**hidden, "expire_previous_in": choice}

    def post() -> Any:
        twin = Client()
        twin.cookies = browser.cookies
        return twin.post(url, form)

    return race(post, n=2)


def test_a_roll_form_sent_twice_at_once_rolls_once_and_keeps_the_chosen_overlap(postgres_only: None) -> None:
    """The second roll of a double click ended at once the secret the receiver holds (rolling during an overlap
    drops the older previous secret), whatever overlap was chosen, and replaced the first new secret. The form
    names the secret it replaces; a roll that finds it already replaced does nothing and says so."""
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    old = endpoint.secret
    browser = Client()
    browser.force_login(user)
    url = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/roll-secret"
    results = _posted_twice_at_once(browser, url, "86400")
    # Both go to the endpoint's page (the second, which the browser shows, says it was rolled once).
    assert [r.status_code for r in results] == [302, 302], [r.status_code for r in results]
    assert AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated").count() == 1  # was 2
    stored = WebhookEndpoint.objects.get()
    assert stored.previous_secret == old and stored.previous_secret_expires_at is not None  # still signs a day


def test_a_client_secret_rotation_sent_twice_at_once_rotates_once(postgres_only: None) -> None:
    from apertur.core import tokens
    from apertur.oauth.models import OAuthApp

    created = make_app()
    browser = Client()
    browser.force_login(created.app.partner.user)
    url = f"/partners/apps/{created.app.client_id}/rotate-secret"
    results = _posted_twice_at_once(browser, url, "86400")
    assert [r.status_code for r in results] == [302, 302], [r.status_code for r in results]
    assert {r["Location"] for r in results} == {f"/partners/apps/{created.app.client_id}/"}
    assert AuditEvent.objects.filter(action="oauth_app.secret_rotated").count() == 1  # was 2
    app = OAuthApp.objects.get()
    assert app.previous_client_secret_hash == tokens.hash_secret(created.client_secret)  # the partner's servers'
