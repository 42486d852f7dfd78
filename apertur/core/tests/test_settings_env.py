"""Settings the README's Configuration table names are read from the environment on every database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@contextmanager
def silent_port(backlog: int = 8) -> Iterator[int]:
    """A loopback port whose listener completes the handshake and never reads or answers (a hung server or proxy)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(backlog)
    try:
        yield silent.getsockname()[1]
    finally:
        silent.close()


def run_bounded(script: str, *, env: dict[str, str], timeout: int, waiting: str) -> Any:
    """Run ``script`` in a fresh interpreter with ``env`` and read the JSON it prints; a run still going after
    ``timeout`` seconds fails the test saying what was ``waiting``."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{waiting} was still waiting after {timeout} s")
    return json.loads(out.stdout)


SCRIPT = (
    "import json; from apertur.config import settings as s; print(json.dumps(s.DATABASES['default']['CONN_MAX_AGE']))"
)


def conn_max_age(tmp_path: Path, database_url: str, value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CONN_MAX_AGE"}}
    env.update(DATABASE_URL=database_url, APERTUR_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="")
    if value is not None:
        env["CONN_MAX_AGE"] = value
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return int(json.loads(out.stdout))


@pytest.mark.parametrize(
    ("database_url", "default"),
    [("postgres://postgres@127.0.0.1:5432/apertur", 60), ("sqlite:///{var}/apertur.sqlite3", 600)],
)
def test_conn_max_age_comes_from_the_environment(tmp_path: Path, database_url: str, default: int) -> None:
    url = database_url.format(var=tmp_path)
    assert conn_max_age(tmp_path, url, None) == default
    assert conn_max_age(tmp_path, url, "5") == 5


def test_secret_key_fallbacks_come_from_the_environment_comma_separated(tmp_path: Path) -> None:
    script = "import json; from apertur.config import settings as s; print(json.dumps(s.SECRET_KEY_FALLBACKS))"
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY_FALLBACKS"}
    env.update(APERTUR_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="")

    def fallbacks(value: str | None) -> list[str]:
        run_env = env if value is None else {**env, "SECRET_KEY_FALLBACKS": value}
        out = subprocess.run([sys.executable, "-c", script], env=run_env, capture_output=True, text=True, check=True)
        return list(json.loads(out.stdout))

    assert fallbacks(None) == [] and fallbacks("") == []
    assert fallbacks(" old-key-1 ,old-key-2,, ") == ["old-key-1", "old-key-2"]


def test_smtp_has_a_timeout_from_the_environment(tmp_path: Path) -> None:
    """Django's SMTP default is no timeout: a mail server that accepts and never answers would hold a request (mail
    is sent when its transaction commits) or the worker for ever."""
    script = "import json; from apertur.config import settings as s; print(json.dumps(s.EMAIL_TIMEOUT))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    env.update(APERTUR_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="", EMAIL_HOST="smtp.example.com")

    def timeout(value: str | None) -> float:
        run_env = env if value is None else {**env, "EMAIL_TIMEOUT": value}
        out = subprocess.run([sys.executable, "-c", script], env=run_env, capture_output=True, text=True, check=True)
        return float(json.loads(out.stdout))

    assert timeout(None) == 10
    assert timeout("2.5") == 2.5


HEALTH_SCRIPT = """
import json, time
import django
django.setup()
from apertur.core import health
started = time.monotonic()
answer = health.check()
print(json.dumps({"database": answer.database, "seconds": time.monotonic() - started}))
"""


def test_a_database_that_never_answers_fails_the_health_check_within_a_bound(tmp_path: Path) -> None:
    """libpq's default is to wait for ever for a server that accepts the connection and never answers (a hung
    server or proxy): /healthz (and every request that touches the database) held its thread for ever instead of
    answering 503. The connection attempt is given up after DB_CONNECT_TIMEOUT seconds."""
    with silent_port() as port:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DB_CONNECT_TIMEOUT"}}
        env.update(
            APERTUR_VAR_DIR=str(tmp_path),
            DJANGO_SETTINGS_MODULE="apertur.config.settings",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/apertur_unreachable",
            DB_CONNECT_TIMEOUT="2",
        )
        answer = run_bounded(
            HEALTH_SCRIPT, env=env, timeout=30, waiting="the health check of a database that never answers"
        )
    assert answer["database"] == "OperationalError"
    assert answer["seconds"] < 10


S3_SCRIPT = """
import json, time
import django
django.setup()
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
started = time.monotonic()
try:
    default_storage.save("photo.png", ContentFile(b"x" * 10))
    outcome = "saved"
except Exception as exc:
    outcome = type(exc).__name__
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started}))
"""


def test_an_s3_endpoint_that_never_answers_fails_the_upload_within_a_bound(tmp_path: Path) -> None:
    """botocore waits 60 s for each read and retries: a bucket endpoint that accepts the connection and never
    answers held the guest's upload request (and the session and project rows it locks) for minutes, with no
    request timeout in the app server. UPLOADS_S3_TIMEOUT bounds each wait; one retry."""
    with silent_port(16) as port:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UPLOADS_S3_") and k != "DATABASE_URL"}
        env.update(
            APERTUR_VAR_DIR=str(tmp_path),
            DJANGO_SETTINGS_MODULE="apertur.config.settings",
            UPLOADS_S3_BUCKET="uploads",
            UPLOADS_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            UPLOADS_S3_REGION="us-east-1",
            UPLOADS_S3_ACCESS_KEY_ID="test",
            UPLOADS_S3_SECRET_ACCESS_KEY="test",
            UPLOADS_S3_TIMEOUT="2",
        )
        result = run_bounded(S3_SCRIPT, env=env, timeout=45, waiting="an upload to an S3 endpoint that never answers")
    assert result["outcome"] != "saved"
    assert result["seconds"] < 20


REDIS_SCRIPT = """
import json, time
import django
django.setup()
from django.core.cache import cache
started = time.monotonic()
try:
    cache.get("x")
    outcome = "answered"
except Exception as exc:
    outcome = type(exc).__name__
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started}))
"""


def test_a_redis_that_never_answers_fails_within_redis_timeout(tmp_path: Path) -> None:
    """The bound on a Redis that accepts the connection and never answers was redis-py's default: 5 s since
    redis-py 8, none at all before it (pyproject allows redis>=5.2), and then every rate-limited request (login,
    the token endpoint, every API call, guest uploads) waited for ever. The settings set it: REDIS_TIMEOUT."""
    with silent_port() as port:
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "REDIS_TIMEOUT", "DATABASE_URL"}}
        env.update(
            APERTUR_VAR_DIR=str(tmp_path),
            DJANGO_SETTINGS_MODULE="apertur.config.settings",
            REDIS_URL=f"redis://127.0.0.1:{port}/14",
            REDIS_TIMEOUT="1",
        )
        result = run_bounded(REDIS_SCRIPT, env=env, timeout=30, waiting="a cache read from a Redis that never answers")
    assert result["outcome"] == "TimeoutError"
    assert result["seconds"] < 3
