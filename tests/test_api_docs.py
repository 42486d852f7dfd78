"""docs/api.md's curl examples run as written: each ```sh block that calls curl is run with the real curl against a
live server, with a real access token (and webhook endpoint), and must print an answer with the fields, and the
JSON types, of the ```json sample that follows it. They run a year from now, so that a date in an example that
is about to pass (an upload link's ``expires_at`` must be in the future) fails here well before partners copy an
example the API refuses."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.projects.services import create_project
from apertur.testing import exchange, get_code, make_app, make_user
from apertur.webhooks import services as webhook_services
from tests.test_oauth_docs import CURL, ensure_plans, run

pytestmark = pytest.mark.django_db(transaction=True)

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
#: How far ahead the examples must keep working.
AHEAD = dt.timedelta(days=365)


def examples() -> list[tuple[str, dict[str, Any]]]:
    """Each curl example with the JSON sample shown right after it."""
    blocks = BLOCK.findall(DOC.read_text())
    pairs = []
    for (lang, body), (next_lang, next_body) in itertools.pairwise(blocks):
        if lang == "sh" and "curl" in body:
            assert next_lang == "json", f"docs/api.md: a curl example without its answer:\n{body}"
            pairs.append((body, json.loads(next_body)))
    return pairs


def test_the_api_guide_has_curl_examples() -> None:
    assert len(examples()) >= 2
    assert os.path.exists(CURL)


def json_type(value: Any) -> str:
    return type(value).__name__


def example_id(value: Any) -> str:
    return re.search(r"/api/v1/\S+", value).group(0).strip('"') if isinstance(value, str) else ""


@pytest.mark.parametrize(("script", "sample"), examples(), ids=example_id)
def test_curl_example_answers_as_its_sample(
    live_server: Any, settings: Any, script: str, sample: dict[str, Any]
) -> None:
    settings.APERTUR_BASE_URL = live_server.url
    with time_machine.travel(dt.datetime.now(dt.UTC) + AHEAD, tick=True):
        ensure_plans()
        created = make_app(name="Snapflow")
        customer = make_user("customer@example.com")
        project = create_project(owner=customer, name="Weddings")
        browser = Client()
        browser.force_login(customer)
        code = get_code(browser, created.app.client_id, scope="upload:create webhooks:manage")
        tokens = exchange(Client(), code, created.app.client_id, created.client_secret).json()
        endpoint = webhook_services.create_endpoint(project=project, url="https://hooks.example.com/apertur")
        env = {
            "APERTUR": live_server.url,
            "ACCESS_TOKEN": tokens["access_token"],
            "ENDPOINT_ID": endpoint.public_id,
        }
        done = run(script, env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert "error" not in answer, f"docs/api.md's example is refused a year from now: {answer}\n{script}"
    assert set(answer) == set(sample), f"fields the server sends: {sorted(answer)}; the sample shows {sorted(sample)}"
    wrong = {key: (json_type(sample[key]), json_type(answer[key])) for key in sample}
    assert all(shown == sent for shown, sent in wrong.values()), f"JSON types differ (sample, server): {wrong}"
