"""schemathesis against /api/v1/openapi.json with a token holding every scope: whatever it sends, no
5xx, and every documented response matches its schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from apertur.projects.services import create_project
from apertur.testing import exchange, get_code, make_app, make_user

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())

ALL_SCOPES = "upload:create upload:read project:read project:settings keys:read webhooks:manage billing:read"


@contextmanager
def in_test_transaction() -> Iterator[None]:
    """schemathesis calls the raw WSGI app, whose request signals would close the test's database
    connection mid-transaction; Django's own test client detaches them the same way, per request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def token(db: None) -> str:
    created = make_app()
    customer = make_user()
    project = create_project(owner=customer, name="Fuzzed")
    browser = Client()
    browser.force_login(customer)
    code = get_code(browser, created.app.client_id, scope=ALL_SCOPES, project=project.public_id)
    return str(exchange(Client(), code, created.app.client_id, created.client_secret).json()["access_token"])


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms(case: Any, token: str) -> None:
    with in_test_transaction():
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error, response_schema_conformance]
        )
