"""What the browser tests do alike: logging in through the real form."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from apertur.testing import PASSWORD


def log_in_form(page: Page, email: str, password: str = PASSWORD) -> None:
    """Fill and send the login form already on the page (``/login``, or the one an authorization leads to)."""
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def log_in(page: Page, base: str, email: str, password: str = PASSWORD, *, timeout: float | None = None) -> None:
    """Log in at ``{base}/login`` and wait until the page says so (its Log out button)."""
    page.goto(f"{base}/login")
    log_in_form(page, email, password)
    expect(page.get_by_role("button", name="Log out")).to_be_visible(timeout=timeout)
