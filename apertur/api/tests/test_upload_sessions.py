from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine

from apertur.api.tests.conftest import Api
from apertur.core import clock
from apertur.oauth.tests.conftest import Flow
from apertur.projects.models import Project
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import image_file, make_user
from apertur.uploads import services
from apertur.uploads.models import UploadSession

pytestmark = pytest.mark.django_db


def test_create_get_list_close(api: Api, flow: Flow) -> None:
    created = api.post(
        "/upload-sessions", {"title": "Ana & Ben", "max_files": 50, "expires_at": "2099-01-01T00:00:00Z"}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"].startswith("ses_")
    assert body["url"].startswith("http://localhost:8000/u/")
    assert body["status"] == "open" and body["max_files"] == 50 and body["livemode"] is True
    assert body["password_protected"] is False
    assert api.get(f"/upload-sessions/{body['id']}").json() == body
    listing = api.get("/upload-sessions").json()
    assert [s["id"] for s in listing["data"]] == [body["id"]] and listing["has_more"] is False
    closed = api.post(f"/upload-sessions/{body['id']}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    assert UploadSession.objects.get().project == flow.project


@pytest.mark.parametrize("title", ["", "   ", "x" * 121, " \u202e "])
def test_every_bad_title_answers_one_code_and_message(api: Api, title: str) -> None:
    """The title is measured once, by the service, as it is stored: an empty title was django-ninja's
    ``validation_error`` ("String should have at least 1 character") where spaces alone were the service's
    ``invalid_upload_session``."""
    error = api.post("/upload-sessions", {"title": title}).json()["error"]
    assert (error["code"], error["field"]) == ("invalid_upload_session", "title")
    assert UploadSession.objects.count() == 0


def test_a_title_is_measured_without_the_spaces_around_it(api: Api) -> None:
    response = api.post("/upload-sessions", {"title": f"  {'x' * 120}  "})
    assert response.status_code == 201, response.content
    assert response.json()["title"] == "x" * 120


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x", "max_files": 0}, "max_files"),
        ({"title": "x", "accepted_types": ["text/html"]}, "accepted_types"),
        ({"title": "x", "expires_at": "tomorrow"}, "expires_at"),
        ({"title": "x", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"title": "x", "max_files": "lots"}, "max_files"),
        ({}, "title"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(api: Api, body: dict, field: str) -> None:
    response = api.post("/upload-sessions", body)
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["field"] == field
    assert error["code"] in {"validation_error", "invalid_upload_session"}
    assert UploadSession.objects.count() == 0


def test_an_expired_session_reads_closed_with_its_expiry_and_frees_the_slot(api: Api, flow: Flow) -> None:
    Project.objects.filter(pk=flow.project.pk).update(plan=plan_by_name("Free"))  # one active session
    soon = clock.now() + dt.timedelta(seconds=3)
    created = api.post("/upload-sessions", {"title": "short", "expires_at": soon.isoformat()}).json()
    assert api.post("/upload-sessions", {"title": "blocked"}).json()["error"]["code"] == "session_limit_reached"
    with time_machine.travel(soon + dt.timedelta(seconds=2)):
        body = api.get(f"/upload-sessions/{created['id']}").json()
        assert body["status"] == "closed" and body["closed_at"] == body["expires_at"] == soon.isoformat()
        assert api.post("/upload-sessions", {"title": "second"}).status_code == 201


def test_a_session_left_without_expiry_or_max_files_takes_the_project_defaults(api: Api, flow: Flow) -> None:
    Project.objects.filter(pk=flow.project.pk).update(default_session_days=7, default_max_files=50)
    body = api.post("/upload-sessions", {"title": "defaults"}).json()
    assert body["max_files"] == 50
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert abs(expires - (clock.now() + dt.timedelta(days=7))) < dt.timedelta(minutes=1)
    given = api.post("/upload-sessions", {"title": "given", "max_files": 5}).json()
    assert given["max_files"] == 5


def test_wrong_scope(narrow_api: Api) -> None:
    response = narrow_api.post("/upload-sessions", {"title": "x"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert 'scope="upload:create"' in response["WWW-Authenticate"]
    assert narrow_api.get("/upload-sessions").status_code == 403
    assert UploadSession.objects.count() == 0


def test_alias_sessions_write_creates_sessions(flow: Flow) -> None:
    token = flow.tokens(scope="sessions:write")["access_token"]
    assert Api(token).post("/upload-sessions", {"title": "x"}).status_code == 201


def test_other_projects_sessions_are_404(api: Api) -> None:
    other = create_project(owner=make_user(), name="Not mine")
    session = services.create_session(project=other, title="secret")
    assert api.get(f"/upload-sessions/{session.public_id}").status_code == 404
    assert api.post(f"/upload-sessions/{session.public_id}/close").status_code == 404
    assert api.get("/uploads", session_id=session.public_id).status_code == 404
    session.refresh_from_db()
    assert session.status == "open"


def test_cursor_pagination(api: Api, flow: Flow) -> None:
    ids = [services.create_session(project=flow.project, title=f"s{i}").public_id for i in range(5)]
    page1 = api.get("/upload-sessions", limit=2).json()
    assert [s["id"] for s in page1["data"]] == ids[::-1][:2] and page1["has_more"] is True
    page2 = api.get("/upload-sessions", limit=2, cursor=page1["next_cursor"]).json()
    page3 = api.get("/upload-sessions", limit=2, cursor=page2["next_cursor"]).json()
    assert [s["id"] for s in page2["data"] + page3["data"]] == ids[::-1][2:]
    assert page3["has_more"] is False and page3["next_cursor"] is None
    bad = api.get("/upload-sessions", cursor="garbage")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    assert api.get("/upload-sessions", limit=0).json()["error"]["field"] == "limit"
    assert api.get("/upload-sessions", limit=101).status_code == 422


def test_idempotency_key_replays_and_conflicts(api: Api) -> None:
    first = api.post("/upload-sessions", {"title": "Once"}, key="k-1")
    again = api.post("/upload-sessions", {"title": "Once"}, key="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert UploadSession.objects.count() == 1
    other = api.post("/upload-sessions", {"title": "Different"}, key="k-1")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert api.post("/upload-sessions", {"title": "Once"}, key="k-2").status_code == 201
    assert UploadSession.objects.count() == 2


def test_idempotency_keys_belong_to_their_caller(api: Api, live_key_api: Api) -> None:
    api.post("/upload-sessions", {"title": "Once"}, key="same")
    assert live_key_api.post("/upload-sessions", {"title": "Once"}, key="same").status_code == 201
    assert UploadSession.objects.count() == 2


def test_errors_are_replayed_too(api: Api) -> None:
    first = api.post("/upload-sessions", {"title": ""}, key="bad")
    again = api.post("/upload-sessions", {"title": ""}, key="bad")
    assert first.status_code == again.status_code == 422


def test_uploads_listing(api: Api, flow: Flow) -> None:
    session = services.create_session(project=flow.project, title="x")
    other = services.create_session(project=flow.project, title="y")
    for _ in range(3):
        services.accept_upload(session=session, file=image_file(), note="n")
    services.accept_upload(session=other, file=image_file())
    listing = api.get("/uploads").json()
    assert len(listing["data"]) == 4
    only = api.get("/uploads", session_id=session.public_id).json()
    assert len(only["data"]) == 3
    item = only["data"][0]
    assert set(item) == {"id", "session_id", "file_name", "size", "content_type", "note", "uploaded_at", "livemode"}
    assert item["file_name"] == "photo.png" and item["content_type"] == "image/png"


def test_test_mode_sees_and_creates_only_test_objects(test_key_api: Api, api: Api, flow: Flow) -> None:
    live = services.create_session(project=flow.project, title="live")
    created = test_key_api.post("/upload-sessions", {"title": "test"}).json()
    assert created["livemode"] is False
    assert [s["id"] for s in test_key_api.get("/upload-sessions").json()["data"]] == [created["id"]]
    assert test_key_api.get(f"/upload-sessions/{live.public_id}").status_code == 404
    assert [s["id"] for s in api.get("/upload-sessions").json()["data"]] == [live.public_id]


def test_request_id_and_rate_limit_headers(api: Api) -> None:
    response = api.get("/upload-sessions")
    assert response["X-Request-Id"].startswith("req_")
    assert int(response["RateLimit-Limit"]) >= int(response["RateLimit-Remaining"]) >= 0
    assert int(response["RateLimit-Reset"]) > 0
    from django.test import Client

    echoed = Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {api.token}", HTTP_X_REQUEST_ID="my-trace-1234")
    assert echoed["X-Request-Id"] == "my-trace-1234"
    # Regression: a trailing newline passed the check (``$`` matches before one) and was echoed into a header.
    newline = Client().get(
        "/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {api.token}", HTTP_X_REQUEST_ID="my-trace-1234\n"
    )
    assert newline.status_code == 200 and newline["X-Request-Id"].startswith("req_")


def test_rate_limited(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.api import auth
    from apertur.core.ratelimit import Limit

    monkeypatch.setattr(auth, "PER_CALLER", Limit("t-api", 2, 60 * 60))
    assert api.get("/plan").status_code == 200
    assert api.get("/plan").status_code == 200
    response = api.get("/plan")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) > 0
    assert response["RateLimit-Limit"] == "2" and response["RateLimit-Remaining"] == "0"
    assert response["RateLimit-Reset"] == response["Retry-After"]


def test_a_403_carries_the_rate_limit_headers(narrow_api: Api) -> None:
    response = narrow_api.get("/upload-sessions")
    assert response.status_code == 403
    assert int(response["RateLimit-Limit"]) > int(response["RateLimit-Remaining"])


def test_idempotency_keys_never_cross_modes(flow: Flow) -> None:
    """One app and project, a test-mode and a live token: same caller identity, different modes."""
    from apertur.oauth.models import Token

    live = Api(flow.tokens(scope="upload:create")["access_token"])
    test = Api(flow.tokens(scope="upload:create")["access_token"])
    Token.objects.filter(pk=Token.objects.order_by("-id").first().pk).update(livemode=False)  # type: ignore[union-attr]
    assert test.post("/upload-sessions", {"title": "x"}, key="same").json()["livemode"] is False
    replay = live.post("/upload-sessions", {"title": "x"}, key="same")
    assert replay.json()["livemode"] is True and "Idempotent-Replayed" not in replay


def test_test_mode_has_its_own_plan_budget(test_key_api: Api, flow: Flow) -> None:
    free = flow.project.plan
    free.max_active_sessions = 1
    free.save()
    assert test_key_api.post("/upload-sessions", {"title": "one"}).status_code == 201
    response = test_key_api.post("/upload-sessions", {"title": "two"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "session_limit_reached"
    services.create_session(project=flow.project, title="live one")  # the live budget is separate


def test_test_mode_cannot_change_live_settings_or_see_live_keys(test_key_api: Api, flow: Flow) -> None:
    from django.test import Client

    from apertur.projects.services import create_api_key

    create_api_key(project=flow.project, name="live key")
    response = Client().patch(
        "/api/v1/project/settings",
        {"description": "x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {test_key_api.token}",
    )
    assert response.status_code == 403
    names = [k["name"] for k in test_key_api.get("/keys").json()["data"]]
    assert names == ["CI"]


def test_an_idempotency_key_is_kept_24_hours_then_is_new(live_key_api: Api) -> None:
    start = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        assert live_key_api.post("/upload-sessions", {"title": "Once"}, key="day").status_code == 201
    with time_machine.travel(start + dt.timedelta(hours=23, minutes=59), tick=False):
        again = live_key_api.post("/upload-sessions", {"title": "Once"}, key="day")
        assert again["Idempotent-Replayed"] == "true" and UploadSession.objects.count() == 1
    with time_machine.travel(start + dt.timedelta(hours=24, seconds=1), tick=False):
        later = live_key_api.post("/upload-sessions", {"title": "Once"}, key="day")
    assert later.status_code == 201 and "Idempotent-Replayed" not in later
    assert UploadSession.objects.count() == 2


def test_a_first_request_that_died_frees_its_key_after_ten_minutes(live_key_api: Api) -> None:
    from apertur.core.models import IdempotencyKey

    start = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        live_key_api.post("/upload-sessions", {"title": "Once"}, key="died")
    UploadSession.objects.all().delete()
    IdempotencyKey.objects.update(status=0, response_body=b"")  # as left by a process killed mid-request
    with time_machine.travel(start + dt.timedelta(minutes=9), tick=False):
        running = live_key_api.post("/upload-sessions", {"title": "Once"}, key="died")
    assert running.status_code == 409 and running.json()["error"]["code"] == "idempotency_in_progress"
    with time_machine.travel(start + dt.timedelta(minutes=11), tick=False):
        retried = live_key_api.post("/upload-sessions", {"title": "Once"}, key="died")
    assert retried.status_code == 201 and UploadSession.objects.count() == 1
    assert IdempotencyKey.objects.get().status == 201


def test_a_request_that_outlived_its_key_still_answers(live_key_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its record replaced by a retry while it ran (past ABANDONED_AFTER), the first request's work is done: it
    answers, it does not fail on the missing row."""
    from apertur.api import idempotency
    from apertur.core.models import IdempotencyKey

    real_claim = idempotency._claim

    def claim_then_lose_the_record(**kwargs: Any) -> Any:
        record = real_claim(**kwargs)
        IdempotencyKey.objects.filter(pk=record.pk).delete()  # a retry replaced it meanwhile
        return record

    monkeypatch.setattr(idempotency, "_claim", claim_then_lose_the_record)
    assert live_key_api.post("/upload-sessions", {"title": "Slow"}, key="slow").status_code == 201


def test_a_key_whose_stale_record_is_being_replaced_answers_in_progress(
    live_key_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apertur.api import idempotency

    monkeypatch.setattr(idempotency, "_claim", lambda **kwargs: None)  # lost the race, and no record to read yet
    response = live_key_api.post("/upload-sessions", {"title": "Once"}, key="racing")
    assert response.status_code == 409 and response.json()["error"]["code"] == "idempotency_in_progress"
    assert response["Retry-After"] == "1" and UploadSession.objects.count() == 0


@pytest.mark.parametrize(
    "when",
    # Well-formed, with a timezone, yet outside what a datetime holds once converted to UTC for the database.
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"],
)
def test_a_tampered_cursor_out_of_range_is_a_422_not_a_500(api: Api, when: str) -> None:
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps([when, 1]).encode()).decode().rstrip("=")
    for path in ("/upload-sessions", "/uploads", "/keys", "/webhooks"):
        response = api.get(path, cursor=cursor)
        assert response.status_code == 422, (path, response.content)
        assert response.json()["error"]["field"] == "cursor"


def test_a_refused_request_frees_its_key_so_the_retry_runs(flow: Flow, live_key_api: Api) -> None:
    """Only an answer that did something is kept with its key: a refusal did nothing, so the same key sent again
    (after an upgrade, a closed session, a corrected body) runs, once (docs/api.md, Idempotency)."""
    from apertur.core.models import IdempotencyKey
    from apertur.projects.services import change_plan

    project = flow.project
    change_plan(project=project, plan=plan_by_name("Free"))  # one active session at a time
    assert live_key_api.post("/upload-sessions", {"title": "First"}).status_code == 201
    refused = live_key_api.post("/upload-sessions", {"title": "Second"}, key="second")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "session_limit_reached"
    assert not IdempotencyKey.objects.filter(key="second").exists()
    change_plan(project=project, plan=plan_by_name("Pro"))
    created = live_key_api.post("/upload-sessions", {"title": "Second"}, key="second")
    assert created.status_code == 201 and not created.has_header("Idempotent-Replayed")
    replayed = live_key_api.post("/upload-sessions", {"title": "Second"}, key="second")
    assert replayed["Idempotent-Replayed"] == "true" and UploadSession.objects.count() == 2


def test_expires_at_sent_with_an_offset_is_answered_in_utc(api: Api) -> None:
    """docs/api.md: times are ISO 8601 in UTC; the creation's answer says the same as a later read of it."""
    created = api.post("/upload-sessions", {"title": "offset", "expires_at": "2099-01-01T18:59:00-05:00"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["expires_at"] == "2099-01-01T23:59:00+00:00"
    assert api.get(f"/upload-sessions/{body['id']}").json()["expires_at"] == body["expires_at"]


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-12:00", "9999-12-31T23:00:00-01:00"])
def test_an_expiry_past_the_last_utc_date_is_a_422_not_a_500(api: Api, when: str) -> None:
    """A far-future expiry with a negative offset is a valid ISO 8601 date-time that no longer fits once converted
    to UTC: it was an OverflowError, a 500 ``server_error`` telling the caller to contact support."""
    response = api.post("/upload-sessions", {"title": "far", "expires_at": when})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_upload_session" and error["field"] == "expires_at"
    assert UploadSession.objects.count() == 0


def test_an_idempotency_key_on_an_over_long_path_is_the_paths_404_not_a_500(api: Api) -> None:
    """The key's record keeps the request's path (500 characters at most): a retry-safe client closing a session
    by a garbled, over-long id got a 500 on PostgreSQL (the value does not fit) where the same call without the key
    answers 404. No object has such an id: the answer is the 404, and nothing is kept for the key."""
    from apertur.core.models import IdempotencyKey

    path = f"/upload-sessions/ses_{'x' * 600}/close"
    without_key = api.post(path)
    with_key = api.post(path, key="close-long")
    assert without_key.status_code == with_key.status_code == 404, with_key.content
    assert with_key.json()["error"]["code"] == "not_found"
    assert not IdempotencyKey.objects.filter(key="close-long").exists()


def test_one_apps_idempotency_key_is_two_requests_for_two_projects(flow: Flow) -> None:
    """docs/api.md, Idempotency: for an OAuth token, keys belong to the app's connection to that project: the same
    key and body sent for two projects the app is connected to create a session in each, never a replay of the
    other project's session."""
    from apertur.api.tests.conftest import ALL

    first = Api(flow.tokens(scope=ALL)["access_token"])
    second = Api(flow.tokens(scope=ALL, project=flow.other_project.public_id)["access_token"])
    a = first.post("/upload-sessions", {"title": "Same"}, key="shared-key")
    b = second.post("/upload-sessions", {"title": "Same"}, key="shared-key")
    assert a.status_code == b.status_code == 201, b.content
    assert not b.has_header("Idempotent-Replayed") and a.json()["id"] != b.json()["id"]
    assert UploadSession.objects.get(public_id=b.json()["id"]).project == flow.other_project


def test_closing_a_link_through_the_api_is_audited_with_the_api_key_and_its_address(flow: Flow) -> None:
    """The owner's Close link records who closed it; the API's close recorded neither the caller nor its address."""
    from django.test import Client

    from apertur.core.models import AuditEvent
    from apertur.projects.services import create_api_key

    created = create_api_key(project=flow.project, name="Server")
    session = services.create_session(project=flow.project, title="Party")
    closed = Client().post(
        f"/api/v1/upload-sessions/{session.public_id}/close",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {created.secret}",
        REMOTE_ADDR="203.0.113.9",
    )
    assert closed.status_code == 200, closed.content
    event = AuditEvent.objects.get(action="upload_session.closed")
    assert event.ip == "203.0.113.9" and event.data["via"] == f"key:{created.key.pk}"
