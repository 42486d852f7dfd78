"""The apertur-connect package against a live Apertur (pytest-django's ``live_server`` on loopback).

Codes come from driving consent with a logged-in ``django.test.Client`` (as apertur/oauth/tests do); every
other call goes over HTTP from the SDK. Refreshes are counted on the server: each successful refresh writes
one ``oauth.token_refreshed`` audit event."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from apertur_connect import Client, Connection, MemoryStore, TokenStore
from django.test import Client as BrowserClient

from apertur.core.models import AuditEvent
from apertur.oauth.services import CreatedApp
from apertur.projects.models import Project
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import REDIRECT_URI, get_code, make_app, make_partner, make_user

T = TypeVar("T")


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(main())`` on a thread of its own: the browser tests' Playwright keeps an event loop
    running in the test thread for the whole session, and asyncio.run refuses to start inside it."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(main())).result(timeout=120)


ALL_SCOPES = (
    "upload:create upload:read project:read project:settings keys:read webhooks:manage billing:read destinations:read"
)


@dataclass
class World:
    base_url: str
    created: CreatedApp
    user: Any
    project: Project
    browser: BrowserClient

    def code(self, scope: str = ALL_SCOPES, **params: str) -> str:
        return get_code(self.browser, self.created.app.client_id, project=self.project.public_id, scope=scope, **params)

    def client(self, *, store: TokenStore | None = None, **kwargs: Any) -> Client:
        return Client(
            self.created.app.client_id,
            self.created.client_secret,
            base_url=self.base_url,
            redirect_uri=REDIRECT_URI,
            store=store if store is not None else MemoryStore(),
            **kwargs,
        )

    def connect(self, client: Client, scope: str = ALL_SCOPES) -> Connection:
        return client.exchange_code(self.code(scope))


def refreshes() -> int:
    """Refresh requests the server granted (counted on the server side)."""
    return AuditEvent.objects.filter(action="oauth.token_refreshed").count()


def refresh_reuse_detected() -> int:
    return AuditEvent.objects.filter(action="oauth.refresh_reuse_detected").count()


def expire(store: TokenStore, key: str) -> None:
    """Make the stored access token look expired to the SDK (the server still accepts it)."""
    tokens = store.get(key)
    assert tokens is not None
    store.set(key, dataclasses.replace(tokens, expires_at=time.time() - 5))


@pytest.fixture
def world(live_server: Any) -> World:
    user = make_user("owner@customer.example")
    project = create_project(owner=user, name="Wedding photos", plan=plan_by_name("Pro"))
    created = make_app(make_partner(), name="Snapflow", redirect_uris=[REDIRECT_URI])
    browser = BrowserClient()
    browser.force_login(user)
    return World(live_server.url, created, user, project, browser)
