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


def test_a_release_keeps_every_earlier_pinned_version_byte_for_byte() -> None:
    """A page that pinned v1.0.0 with its integrity hash (the one docs/sdk.md gave then) keeps working after
    later releases: the browser would refuse any other bytes, and a 404 would break the page."""
    import base64
    import hashlib

    first = Client().get("/sdk/v1.0.0/aptr-connect.js")
    assert first.status_code == 200 and "immutable" in first["Cache-Control"]
    assert first.content.startswith(b"/*! aptr-connect v1.0.0 ")
    digest = "sha384-" + base64.b64encode(hashlib.sha384(first.content).digest()).decode()
    assert digest == "sha384-U0PT+pxg+l/HIzFYYpSViL8PLpOoCYzW1e5TodFXd6LxwvkPukNFxw0CdCPlzFo7"
    current = bundle()
    assert (
        current.version != "1.0.0" and Client().get(f"/sdk/v{current.version}/aptr-connect.js").content == current.body
    )


@pytest.mark.parametrize("version", ["1.0", "1.0.0.0", "01x.0.0", "9.9.9"])
def test_versions_not_released_or_not_versions_are_not_found(version: str) -> None:
    response = Client().get(f"/sdk/v{version}/aptr-connect.js")
    assert response.status_code == 404
