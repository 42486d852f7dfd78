from __future__ import annotations

import pytest
from django.test import Client

from apertur.api.tests.conftest import Api
from apertur.oauth.tests.conftest import Flow
from apertur.projects.models import ApiKey
from apertur.projects.services import create_api_key, revoke_api_key

pytestmark = pytest.mark.django_db


def test_keys_listing_never_shows_secrets(api: Api, flow: Flow) -> None:
    created = create_api_key(project=flow.project, name="Server")
    body = api.get("/keys").json()
    assert body["data"][0]["name"] == "Server"
    assert body["data"][0]["key"] == f"aptr_live_sk_…{created.secret[-4:]}"
    assert created.secret not in str(body)


def test_secret_keys_have_full_access_to_their_project(flow: Flow) -> None:
    created = create_api_key(project=flow.project, name="Server")
    assert created.secret.startswith("aptr_live_sk_")
    key = Api(created.secret)
    assert key.get("/project").json()["id"] == flow.project.public_id
    assert key.post("/upload-sessions", {"title": "x"}).status_code == 201
    revoke_api_key(key=created.key)
    response = key.get("/project")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_project_page_creates_shows_once_and_revokes(flow: Flow) -> None:
    page = flow.browser.post(
        f"/projects/{flow.project.public_id}/api-keys", {"name": "Server", "mode": "test"}, follow=True
    )
    html = page.content.decode()
    key = ApiKey.objects.get()
    assert key.livemode is False
    assert "You will not be able to see it again" in html
    import re

    secret = re.search(r'data-testid="api-key-secret">([^<]+)<', html)
    assert secret and secret.group(1).startswith("aptr_test_sk_")
    again = flow.browser.get(f"/projects/{flow.project.public_id}/").content.decode()
    assert secret.group(1) not in again and key.masked in again
    url = f"/projects/{flow.project.public_id}/api-keys/{key.pk}/revoke"
    assert "cannot be undone" in flow.browser.get(url).content.decode()
    flow.browser.post(url)
    key.refresh_from_db()
    assert key.revoked_at is not None
    stranger = Client()
    from apertur.testing import make_user

    stranger.force_login(make_user())
    assert stranger.post(f"/projects/{flow.project.public_id}/api-keys", {"name": "x"}).status_code == 404
