"""Suite-wide fixtures. Lives at the repo root so both apertur/*/tests and tests/ see it."""

from __future__ import annotations

import inspect
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


@pytest.fixture(scope="session", autouse=True)
def _flush_postgresql_by_delete() -> Iterator[None]:
    """After each transactional test Django empties every table with one ``TRUNCATE`` on PostgreSQL, which makes
    new files for all ~50 tables: ~0.25 s idle, ~0.6 s on a busy machine, over a minute and a half of the suite.
    ``DELETE`` of the few rows a test leaves, after locking the tables as TRUNCATE would, takes ~0.02 s. Django's
    foreign keys on PostgreSQL are
    ``DEFERRABLE INITIALLY DEFERRED``, so the order of the deletes does not matter: the constraints are checked
    when the flush commits, with every table empty. Sequences are untouched either way (pytest-django does not
    reset them); a flush that asks to reset them keeps Django's ``TRUNCATE … RESTART IDENTITY``."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def delete(
        self: Any, style: Any, tables: Any, *, reset_sequences: bool = False, allow_cascade: bool = False
    ) -> list[str]:
        if reset_sequences or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        names = [self.quote_name(table) for table in tables]
        # TRUNCATE waits for every transaction still writing to these tables and sees what they commit; DELETE alone
        # would not (a row a live server's request commits after the DELETE's snapshot would outlive the flush).
        # EXCLUSIVE mode waits for those writers and holds off new ones until the flush commits; reads go on.
        return [
            "SET CONSTRAINTS ALL DEFERRED",
            f"LOCK TABLE {', '.join(names)} IN EXCLUSIVE MODE",
            *(f"DELETE FROM {name}" for name in names),  # noqa: S608 - Django's own table names
        ]

    DatabaseOperations.sql_flush = delete  # type: ignore[method-assign]
    yield
    DatabaseOperations.sql_flush = truncate  # type: ignore[method-assign]


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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for Chromium (``browser`` or ``page``) is a browser test whether or not its module says so:
    ``make test`` runs the browser tests in one of its two runs by that marker (Makefile, SQLITE_SHARE). First, so
    that ``-m`` sees the marker."""
    here = Path(__file__).resolve()
    for item in items:
        fixtures = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        # The fixtures this test gets by those names: a module's own ``browser`` (a signed-in test client in
        # apertur/accounts/tests/test_account.py) is not Chromium, and its tests belong in both runs.
        resolved = [fixtures[name][-1] for name in ("browser", "page") if fixtures.get(name)]
        if any(Path(inspect.getfile(fixturedef.func)).resolve() == here for fixturedef in resolved):
            item.add_marker(pytest.mark.browser)
        if item.get_closest_marker("own_database") and "postgres_only" in getattr(item, "fixturenames", ()):
            # make test runs own_database tests in the SQLite run only, where postgres_only skips: it would run nowhere.
            raise pytest.UsageError(f"{item.nodeid}: own_database and postgres_only together would never run")


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


@pytest.fixture
def redis_down() -> Iterator[None]:
    """The cache (rate limits, shared caches) is Redis on a loopback port nobody listens on: Redis down. Undone
    before ``_isolated`` clears the cache."""
    import socket

    from django.test import override_settings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    location = f"redis://127.0.0.1:{port}/14"
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location}}
    ):
        yield
