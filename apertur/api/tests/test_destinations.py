from __future__ import annotations

import pytest

from apertur.api.tests.conftest import Api
from apertur.oauth.tests.conftest import Flow
from apertur.testing import image_file
from apertur.uploads import destinations, services

pytestmark = pytest.mark.django_db


def test_destinations_list_builtin_first_and_never_secrets(api: Api, flow: Flow) -> None:
    s3 = destinations.create_s3_destination(
        project=flow.project, name="Bucket", bucket="photos", access_key_id="AKIA1", secret_access_key="very-secret"
    )
    body = api.get("/destinations").json()
    assert [d["kind"] for d in body["data"]] == ["apertur", "s3"]
    assert body["data"][0]["status"] == "active"
    assert body["data"][1]["id"] == s3.public_id and body["data"][1]["config"]["bucket"] == "photos"
    assert "very-secret" not in str(body)


def test_destinations_need_their_scope(narrow_api: Api) -> None:
    assert narrow_api.get("/destinations").status_code == 403


def test_storage_used_is_counted_in_the_callers_mode(api: Api, test_key_api: Api, flow: Flow) -> None:
    live = services.create_session(project=flow.project, title="live")
    test = services.create_session(project=flow.project, title="test", livemode=False)
    services.accept_upload(session=live, file=image_file())
    services.accept_upload(session=live, file=image_file())
    services.accept_upload(session=test, file=image_file())
    size = len(image_file().read())
    live_builtin = api.get("/destinations").json()["data"][0]
    test_builtin = test_key_api.get("/destinations").json()["data"][0]
    assert live_builtin["config"]["storage_bytes_used"] == 2 * size and live_builtin["livemode"] is True
    assert test_builtin["config"]["storage_bytes_used"] == size and test_builtin["livemode"] is False
