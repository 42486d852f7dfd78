"""Pages without Apertur's own <link rel="icon"> (the admin's, the API reference's) make the browser ask for
/favicon.ico: it must not be a 404 (an error in the console of every admin page)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_page_loads_without_a_failed_request(page: Page, live_server: Any) -> None:
    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.on("console", lambda message: failed.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/admin/login/")
    icon = page.request.get(f"{live_server.url}/favicon.ico")
    assert icon.ok and icon.headers["content-type"].startswith("image/svg+xml"), icon.status
    page.wait_for_load_state("networkidle")
    assert failed == [], failed
