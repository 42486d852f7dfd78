"""The 404 page says what our views mean by it, and nothing of Django's internals."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.testing import make_user

pytestmark = pytest.mark.django_db


def test_a_views_own_not_found_message_is_shown() -> None:
    browser = Client()
    browser.force_login(make_user())
    response = browser.get("/projects/prj_doesnotexist/")
    assert response.status_code == 404
    assert b"No such project." in response.content


def test_an_unmatched_url_gets_the_generic_text_not_the_resolvers_name() -> None:
    response = Client().get("/no/such/page")
    assert response.status_code == 404
    assert b"This page does not exist, or you do not have access to it." in response.content
    assert b"Resolver404" not in response.content


def test_the_api_still_answers_json_for_unknown_paths() -> None:
    response = Client().get("/api/v1/no-such-endpoint")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "path",
    [
        "/u/abc%00def",  # a guest's upload link: public
        "/u/abc%00def/files",
        "/projects/prj_%00/",
        "/projects/prj_x/sessions/ses_%00/",
        "/uploads/upl_%00/download",
        "/projects/prj_x/webhooks/we_%00/",
        "/partners/apps/aptr_ci_%00/",
    ],
)
def test_a_nul_in_the_path_is_not_found_before_any_lookup(path: str) -> None:
    # On PostgreSQL each of these reached a query with the NUL (a 500): make test runs this there too.
    browser = Client(raise_request_exception=False)
    browser.force_login(make_user())
    for client in (browser, Client(raise_request_exception=False)):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert b"its address contains a NUL character" in response.content


def test_a_nul_in_the_query_string_is_a_bad_request_page() -> None:
    browser = Client(raise_request_exception=False)
    browser.force_login(make_user())
    response = browser.get("/projects/?page=%00")
    assert response.status_code == 400
    page = response.content.decode()
    assert "This address cannot be opened" in page and "contains a NUL character (%00)" in page
    assert 'href="/"' in page  # a way back


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/login", {"email": "a\x00@example.com", "password": "x"}),
        ("/projects/new", {"name": "Wed\x00dings"}),
        ("/password-reset", {"email\x00": "a@example.com"}),
    ],
)
def test_a_form_holding_a_nul_is_refused_with_a_page_and_changes_nothing(path: str, fields: dict[str, str]) -> None:
    from apertur.core.models import AuditEvent
    from apertur.projects.models import Project

    browser = Client(raise_request_exception=False)
    browser.force_login(make_user())
    before = (Project.objects.count(), AuditEvent.objects.count())
    response = browser.post(path, fields)
    assert response.status_code == 400
    assert "The form contains a NUL character" in response.content.decode()
    assert (Project.objects.count(), AuditEvent.objects.count()) == before


def test_a_multipart_form_holding_a_nul_is_refused_too() -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    browser = Client(raise_request_exception=False)
    browser.force_login(make_user())
    response = browser.post("/projects/new", {"name": "a\x00b", "file": SimpleUploadedFile("a.txt", b"\x00\x01")})
    assert response.status_code == 400


def test_a_file_holding_nul_bytes_is_not_a_field_holding_one() -> None:
    # Files are the views' business (an image is full of NUL bytes): only field names and values are looked at.
    from django.core.files.uploadedfile import SimpleUploadedFile

    browser = Client(raise_request_exception=False)
    browser.force_login(make_user())
    response = browser.post("/projects/new", {"name": "Weddings", "file": SimpleUploadedFile("a.bin", b"\x00\x00")})
    assert response.status_code != 400


def test_a_script_that_asks_for_json_gets_the_refusal_as_json() -> None:
    # The guest upload page posts each file with a script that shows error.message (static/uploads/upload.js).
    from apertur.projects.services import create_project
    from apertur.testing import image_file
    from apertur.uploads import services
    from apertur.uploads.models import Upload

    session = services.create_session(project=create_project(owner=make_user(), name="Party"), title="Party")
    response = Client(raise_request_exception=False).post(
        f"/u/{session.token}/files", {"file": image_file(), "note": "hi\x00"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "NUL character" in response.json()["error"]["message"]
    assert not Upload.objects.exists()
