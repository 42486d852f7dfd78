from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from apertur.oauth.tests.conftest import Flow, flow  # noqa: F401 - the fixture is reused here
from apertur.projects.services import create_api_key


@dataclass
class Api:
    token: str

    def get(self, path: str, **params: Any) -> Any:
        return Client().get(f"/api/v1{path}", params, HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def post(self, path: str, body: Any = None, *, key: str | None = None) -> Any:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}
        if key:
            headers["HTTP_IDEMPOTENCY_KEY"] = key
        return Client().post(f"/api/v1{path}", body or {}, content_type="application/json", **headers)


ALL = "upload:create upload:read project:read keys:read project:settings webhooks:manage billing:read destinations:read"


@pytest.fixture
def api(flow: Flow) -> Api:  # noqa: F811
    return Api(flow.tokens(scope=ALL)["access_token"])


@pytest.fixture
def narrow_api(flow: Flow) -> Api:  # noqa: F811
    return Api(flow.tokens(scope="project:read")["access_token"])


@pytest.fixture
def test_key_api(flow: Flow) -> Api:  # noqa: F811
    return Api(create_api_key(project=flow.project, name="CI", livemode=False).secret)


@pytest.fixture
def live_key_api(flow: Flow) -> Api:  # noqa: F811
    return Api(create_api_key(project=flow.project, name="Server").secret)
