"""The authorization code flow end to end through the Django test client."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.projects.services import create_project
from apertur.testing import exchange, get_code, make_app, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():  # type: ignore[no-untyped-def]
    created = make_app()
    customer = make_user("customer@example.com")
    project = create_project(owner=customer, name="Weddings")
    browser = Client()
    browser.force_login(customer)
    return created, customer, project, browser


def test_code_exchange_returns_the_documented_fields(setup) -> None:  # type: ignore[no-untyped-def]
    created, _customer, project, browser = setup
    code = get_code(browser, created.app.client_id, scope="upload:create project:read")
    response = exchange(Client(), code, created.app.client_id, created.client_secret)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["access_token"].startswith("oat_")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"]
    assert body["scopes"] == ["plan:read", "upload:create", "project:read"]
    assert body["scope"] == "plan:read upload:create project:read"
    assert body["project_id"] == project.public_id
    assert body["plan"]["name"] == "Free"
    assert body["livemode"] is True
    assert response["Cache-Control"] == "no-store"

    api = Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert api.status_code == 200, api.content
    assert api.json()["name"] == "Free"
