from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apertur.accounts.models import User
from apertur.oauth.services import CreatedApp
from apertur.projects.models import Project
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import exchange, get_code, make_app, make_user


@dataclass
class Flow:
    """An app, a customer with two projects, and a logged-in browser for that customer."""

    created: CreatedApp
    customer: User
    project: Project
    other_project: Project
    browser: Client

    @property
    def client_id(self) -> str:
        return self.created.app.client_id

    @property
    def secret(self) -> str:
        return self.created.client_secret

    def code(self, **params: str) -> str:
        params.setdefault("project", self.project.public_id)
        return get_code(self.browser, self.client_id, **params)

    def tokens(self, **params: str) -> dict[str, Any]:
        response = exchange(Client(), self.code(**params), self.client_id, self.secret)
        assert response.status_code == 200, response.content
        return dict(response.json())


@pytest.fixture
def flow(db: None) -> Flow:
    created = make_app(redirect_uris=["https://snapflow.example/callback", "https://snapflow.example/other"])
    customer = make_user("customer@example.com")
    project = create_project(owner=customer, name="Weddings", plan=plan_by_name("Pro"))
    other = create_project(owner=customer, name="Team")
    browser = Client()
    browser.force_login(customer)
    return Flow(created=created, customer=customer, project=project, other_project=other, browser=browser)


def api_get(path: str, token: str) -> Any:
    return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def run_in_other_process(script: str, *, var_dir: Path | str) -> str:
    """Run ``script`` (after ``django.setup()``) in a new Python process on this test's database (its SQLite
    file or its PostgreSQL test database), with the local token cache on and ``var_dir`` as APERTUR_VAR_DIR (the
    test's own: another process of this host; another directory: a process of another host). Returns stdout."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apertur.config.settings",
        "APERTUR_TOKEN_CACHE": "local",
        "DATABASE_URL": url,
        "APERTUR_VAR_DIR": str(var_dir),
    }
    code = "import django\ndjango.setup()\nfrom apertur.oauth import token_cache\n" + script
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
