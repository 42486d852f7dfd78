"""Settings the README's Configuration table names are read from the environment on every database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
