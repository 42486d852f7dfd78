"""The interactive API reference, /api/v1/docs (README, docs/api.md), as a partner engineer opens it in Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_interactive_reference_shows_every_operation_under_the_sites_csp(page: Page, live_server: Any) -> None:
    """The page loaded Swagger UI from a CDN with an inline script, which the site's Content-Security-Policy
    (script-src and style-src 'self') refuses: a partner opening it saw a blank page. It lists each operation of
    the OpenAPI document now, with nothing refused."""
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if message.type == "error" else None)
    schema = page.request.get(f"{live_server.url}/api/v1/openapi.json").json()
    operations = sum(
        1 for item in schema["paths"].values() for method in item if method in {"get", "post", "patch", "delete"}
    )

    page.goto(f"{live_server.url}/api/v1/docs")

    expect(page.locator(".opblock")).to_have_count(operations, timeout=15_000)
    expect(page.get_by_text("/api/v1/upload-sessions").first).to_be_visible()
    assert refused == [], refused
