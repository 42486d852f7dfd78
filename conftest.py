"""Suite-wide fixtures. Lives at the repo root so both apertur/*/tests and tests/ see it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache

from apertur.chromium import CHROMIUM, CHROMIUM_ARGS
from apertur.core import ratelimit
from apertur.oauth import token_cache


@pytest.fixture(autouse=True)
def _isolated(settings: Any, tmp_path: Path) -> Iterator[None]:
    """Each test: its own mail folder, an empty cache, a cheap password hasher (argon2 is tested on
    its own in accounts/tests)."""
    settings.MAIL_DIR = tmp_path / "mail"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    cache.clear()
    ratelimit.clear_process_counters()
    token_cache.clear_local()
    yield
    cache.clear()
    ratelimit.clear_process_counters()
    token_cache.clear_local()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's, and then, before it drops the test database: the local token cache's PostgreSQL
    listener (apertur.oauth.token_cache), which holds a connection to it, ends, and the cache's generation file
    of that database goes."""
    yield
    token_cache.release_database()


@pytest.fixture
def maildir(settings: Any) -> Any:
    """Send through the real development backend (one .eml file per message) instead of locmem."""
    settings.EMAIL_BACKEND = "apertur.core.mail.MaildirBackend"
    return settings.MAIL_DIR


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright. Missing browser: skip locally, fail under CI."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM}; CI requires the browser tests to run.")
        pytest.skip("Chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop in the test thread; Django's guard against ORM calls
    # from async code would trip on the tests' own ORM assertions, which are synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


def pytest_report_header(config: Any) -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or db.get('NAME')}"


@pytest.fixture
def postgres_only(transactional_db: None) -> None:
    """Concurrency tests need real row locks and parallel connections: PostgreSQL."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (make test runs the suite again on PostgreSQL)")
