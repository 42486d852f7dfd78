"""SQL per bearer-protected request (issue 10): at most two, whatever the endpoint's data, and no token
query once the shared token cache is warm."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apertur.api.tests.conftest import Api
from apertur.oauth.tests.conftest import Flow
from apertur.uploads.models import UploadSession


def count(api: Api, path: str) -> list[str]:
    api.get(path)  # warm
    with CaptureQueriesContext(connection) as ctx:
        response = api.get(path)
    assert response.status_code == 200, response.content
    return [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]


@pytest.mark.parametrize("path", ["/plan", "/project"])
def test_bearer_get_is_at_most_two_queries(api: Api, path: str) -> None:
    assert len(count(api, path)) <= 2


def test_secret_key_get_is_at_most_two_queries(live_key_api: Api) -> None:
    assert len(count(live_key_api, "/plan")) <= 2


@pytest.mark.parametrize("path", ["/plan", "/project"])
def test_no_token_query_with_the_cache_warm(api: Api, path: str, settings: Any) -> None:
    from django.core.cache import cache

    settings.APERTUR_TOKEN_CACHE = True
    cache.clear()
    sql = count(api, path)
    assert len(sql) <= 2, sql
    assert not any("oauth_token" in q for q in sql), sql


def test_a_page_of_upload_sessions_costs_the_same_queries_for_2_empty_sessions_as_for_20(api: Api, flow: Flow) -> None:
    """Each session carries its upload count from the list's own query: a session without uploads (a count of
    0) costs no COUNT of its own."""
    from apertur.uploads.services import create_session

    def sessions(n: int) -> int:
        for i in range(n):
            create_session(project=flow.project, title=f"Event {i}")
        sql = count(api, "/upload-sessions?limit=100")
        assert len(api.get("/upload-sessions?limit=100").json()["data"]) == UploadSession.objects.count()
        return len(sql)

    few = sessions(2)
    assert sessions(18) == few
