from __future__ import annotations

import pytest
from django.test import Client

from apertur.oauth.sdk import bundle
from apertur.testing import assert_head_like_get


def test_latest_is_short_cached_and_loadable_cross_origin() -> None:
    response = Client().get("/sdk/aptr-connect.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Cache-Control"] == "public, max-age=300"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert b"AptrConnect" in response.content


def test_versioned_path_is_immutable() -> None:
    version = bundle().version
    response = Client().get(f"/sdk/v{version}/aptr-connect.js")
    assert response.status_code == 200
    assert "immutable" in response["Cache-Control"]
    assert response.content == Client().get("/sdk/aptr-connect.js").content
    assert Client().get("/sdk/v0.0.1/aptr-connect.js").status_code == 404


def test_head_answers_like_get() -> None:
    """Link checkers and CDNs probe the script with HEAD; require_GET answered 405."""
    assert assert_head_like_get(Client(), "/sdk/aptr-connect.js").status_code == 200
    assert assert_head_like_get(Client(), f"/sdk/v{bundle().version}/aptr-connect.js").status_code == 200
    assert assert_head_like_get(Client(), "/sdk/v0.0.1/aptr-connect.js").status_code == 404


@pytest.mark.parametrize("doc", ["docs/sdk.md"])
def test_docs_give_the_current_sri_hash(doc: str) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / doc).read_text()
    current = bundle()
    assert f"/sdk/v{current.version}/aptr-connect.js" in text
    assert current.integrity in text, f"{doc} must give integrity={current.integrity}"
