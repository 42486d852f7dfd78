from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client

from apertur.projects.services import create_project
from apertur.testing import PNG_BYTES, image_file, make_user
from apertur.uploads import services
from apertur.uploads.models import Upload, UploadSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():  # type: ignore[no-untyped-def]
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    return user, project, browser


def test_owner_creates_a_link_and_a_guest_uploads(owner) -> None:  # type: ignore[no-untyped-def]
    _, project, browser = owner
    response = browser.post(f"/projects/{project.public_id}/sessions", {"title": "Ana & Ben", "max_files": "10"})
    session = UploadSession.objects.get()
    assert response["Location"] == f"/projects/{project.public_id}/sessions/{session.public_id}/"
    page = browser.get(response["Location"]).content.decode()
    assert f"/u/{session.token}" in page
    guest = Client(enforce_csrf_checks=True)
    html = guest.get(f"/u/{session.token}").content.decode()
    assert "Ana &amp; Ben" in html and 'type="file"' in html and "multiple" in html
    token = guest.cookies["csrftoken"].value
    ok = guest.post(f"/u/{session.token}/files", {"file": image_file(), "note": "hi"}, HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 201, ok.content
    assert ok.json()["name"] == "photo.png"
    bad = guest.post(
        f"/u/{session.token}/files", {"file": image_file("x.png", b"not an image")}, HTTP_X_CSRFTOKEN=token
    )
    assert bad.status_code == 422
    assert "not an accepted photo type" in bad.json()["error"]["message"]
    assert guest.post(f"/u/{session.token}/files", {"file": image_file()}).status_code == 403  # no CSRF token
    assert Upload.objects.count() == 1
    listing = browser.get(f"/projects/{project.public_id}/sessions/{session.public_id}/").content.decode()
    assert "photo.png" in listing and "hi" in listing
    upload = Upload.objects.get()
    download = browser.get(f"/uploads/{upload.public_id}/download")
    assert download.status_code == 200
    assert b"".join(download.streaming_content).startswith(b"\x89PNG")
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.get(f"/uploads/{upload.public_id}/download").status_code == 404


def test_password_protected_link(owner) -> None:  # type: ignore[no-untyped-def]
    _, project, _ = owner
    session = services.create_session(project=project, title="Private", password="open sesame")
    guest = Client()
    assert 'name="password"' in guest.get(f"/u/{session.token}").content.decode()
    assert guest.post(f"/u/{session.token}/files", {"file": image_file()}).status_code == 403
    guest.post(f"/u/{session.token}/unlock", {"password": "wrong"})
    assert guest.post(f"/u/{session.token}/files", {"file": image_file()}).status_code == 403
    guest.post(f"/u/{session.token}/unlock", {"password": "open sesame"})
    assert guest.post(f"/u/{session.token}/files", {"file": image_file()}).status_code == 201


def test_closing_a_link(owner) -> None:  # type: ignore[no-untyped-def]
    _, project, browser = owner
    session = services.create_session(project=project, title="Party")
    url = f"/projects/{project.public_id}/sessions/{session.public_id}/close"
    assert "no longer be able to upload" in browser.get(url).content.decode()
    browser.post(url)
    session.refresh_from_db()
    assert session.status == "closed"
    guest = Client()
    assert "This upload link was closed on " in guest.get(f"/u/{session.token}").content.decode()
    assert guest.post(f"/u/{session.token}/files", {"file": image_file()}).status_code == 409


def test_unknown_link_and_other_owners(owner) -> None:  # type: ignore[no-untyped-def]
    _, project, _ = owner
    assert Client().get("/u/nope").status_code == 404
    session = services.create_session(project=project, title="Party")
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.get(f"/projects/{project.public_id}/sessions/{session.public_id}/").status_code == 404
    assert stranger.post(f"/projects/{project.public_id}/sessions/{session.public_id}/close").status_code == 404
    assert stranger.post(f"/projects/{project.public_id}/sessions", {"title": "x"}).status_code == 404


def test_bad_session_form_input(owner) -> None:  # type: ignore[no-untyped-def]
    _, project, browser = owner
    response = browser.post(f"/projects/{project.public_id}/sessions", {"title": "x", "max_files": "ten"}, follow=True)
    assert "Max files is a whole number." in response.content.decode()
    assert UploadSession.objects.count() == 0


def test_owner_adds_and_removes_destinations(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.uploads.models import Destination

    _, project, browser = owner
    base = f"/projects/{project.public_id}/destinations"
    bad = browser.post(f"{base}/new", {"kind": "https", "name": "Archive", "url": "http://archive.example.com/in"})
    assert bad.status_code == 400 and "must use https" in bad.content.decode()
    browser.post(f"{base}/new", {"kind": "https", "name": "Archive", "url": "https://archive.example.com/in"})
    browser.post(
        f"{base}/new",
        {"kind": "s3", "name": "Bucket", "bucket": "photos", "access_key_id": "AKIA", "secret_access_key": "s3cr3t"},
    )
    page = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert "Archive" in page and "Bucket" in page and "s3cr3t" not in page
    s3 = Destination.objects.get(kind="s3")
    assert "Files already delivered" in browser.get(f"{base}/{s3.public_id}/delete").content.decode()
    browser.post(f"{base}/{s3.public_id}/delete")
    assert list(Destination.objects.values_list("name", flat=True)) == ["Archive"]
    stranger = Client()
    stranger.force_login(make_user())
    https = Destination.objects.get()
    assert stranger.post(f"{base}/{https.public_id}/delete").status_code == 404


def test_a_link_made_on_the_page_takes_the_project_defaults(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.projects.services import update_settings

    _, project, browser = owner
    update_settings(project=project, default_session_days=3, default_max_files=25)
    browser.post(f"/projects/{project.public_id}/sessions", {"title": "Party", "max_files": "", "expires_in_days": ""})
    session = UploadSession.objects.get()
    assert session.max_files == 25 and session.expires_at is not None


def test_a_photo_named_like_a_page_is_stored_and_served_as_the_checked_type(owner) -> None:  # type: ignore[no-untyped-def]
    """The guest's file name says .html; the bytes are a PNG: stored and downloaded as image/png, named .png."""
    _, project, browser = owner
    session = services.create_session(project=project, title="Party")
    guest = Client()
    sent = guest.post(f"/u/{session.token}/files", {"file": image_file("page.html", content_type="text/html")})
    assert sent.status_code == 201, sent.content
    upload = Upload.objects.get()
    assert upload.content_type == "image/png" and upload.file.name.endswith(".png")
    download = browser.get(f"/uploads/{upload.public_id}/download")
    assert download["Content-Type"] == "image/png"
    assert 'filename="page.html.png"' in download["Content-Disposition"]


def test_upload_links_list_newest_first_and_page_so_every_link_is_reachable(owner) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    import time_machine

    from apertur.core import clock

    _, project, browser = owner
    project.plan.max_active_sessions = 100
    project.plan.save()
    start = clock.now()
    for i in range(27):
        with time_machine.travel(start + dt.timedelta(minutes=i), tick=False):
            services.create_session(project=project, title=f"Link {i:02d}")
    first = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert first.index("Link 26") < first.index("Link 25") and "Link 01" not in first
    assert "Page 1 of 2 (27 upload links)" in first
    second = browser.get(f"/projects/{project.public_id}/?page=2").content.decode()
    assert "Link 01" in second and "Link 00" in second


def test_the_close_confirmation_is_not_offered_for_a_closed_link(owner) -> None:  # type: ignore[no-untyped-def]
    _, project, browser = owner
    session = services.create_session(project=project, title="Party")
    services.close_session(session=session, actor=None)
    url = f"/projects/{project.public_id}/sessions/{session.public_id}/close"
    response = browser.get(url, follow=True)
    assert "is already closed" in response.content.decode() and "Close link" not in response.content.decode()


def test_a_new_https_destinations_signing_secret_is_shown_once_on_its_page(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.uploads.models import Destination

    _, project, browser = owner
    base = f"/projects/{project.public_id}/destinations"
    created = browser.post(f"{base}/new", {"kind": "https", "name": "Archive", "url": "https://archive.example.com/in"})
    destination = Destination.objects.get()
    assert created["Location"] == f"{base}/{destination.public_id}/"
    first = browser.get(created["Location"]).content.decode()
    assert destination.secret in first and "it is not shown again" in first
    assert "https://archive.example.com/in" in first and "No copies yet" in first
    again = browser.get(created["Location"]).content.decode()
    assert destination.secret not in again and "Shown once, when created or rolled." in again
    project_page = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert f'href="{base}/{destination.public_id}/"' in project_page
    assert browser.head(created["Location"]).status_code == 405  # a HEAD must not consume the secret


def test_the_owner_rolls_an_https_destinations_secret_from_its_page(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.uploads import destinations
    from apertur.uploads.models import Destination

    _, project, browser = owner
    destination = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    old = destination.secret
    roll = f"/projects/{project.public_id}/destinations/{destination.public_id}/roll-secret"
    form = browser.get(roll).content.decode()
    assert "Roll the signing secret?" in form and 'value="86400" checked' in form
    refused = browser.post(roll, {"expire_previous_in": "31536000"})
    assert refused.status_code == 400 and "Choose when the current secret stops working." in refused.content.decode()
    assert Destination.objects.get().secret == old
    done = browser.post(roll, {"expire_previous_in": "3600"}, follow=True).content.decode()
    stored = Destination.objects.get()
    assert stored.secret != old and stored.previous_secret == old
    assert stored.secret in done and "New signing secret" in done and old not in done
    assert 'data-testid="previous-secret-until"' in browser.get(f"{roll[: -len('roll-secret')]}").content.decode()


def test_a_roll_form_sent_a_second_time_rolls_nothing_more(owner) -> None:  # type: ignore[no-untyped-def]
    """A double click sends the roll form twice, one after the other: the second roll ended at once the secret the
    receiver holds, whatever overlap was chosen (rolling during an overlap drops the older secret). The form
    names the secret it replaces; the second finds it replaced and rolls nothing (races: webhooks' tests)."""
    import re

    from apertur.uploads import destinations
    from apertur.uploads.models import Destination

    _, project, browser = owner
    destination = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    old = destination.secret
    roll = f"/projects/{project.public_id}/destinations/{destination.public_id}/roll-secret"
    page = browser.get(roll).content.decode()
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    form = {**hidden, "expire_previous_in": "86400"}
    assert browser.post(roll, form).status_code == 302
    new = Destination.objects.get().secret
    again = browser.post(roll, form)
    # The browser shows the second answer: the object's page, which says so and shows the first roll's secret once.
    assert again.status_code == 302 and again["Location"] == roll.removesuffix("roll-secret")
    shown = browser.get(again["Location"]).content.decode()
    assert "already rolled" in shown and new in shown
    stored = Destination.objects.get()
    assert (stored.secret, stored.previous_secret) == (new, old)  # was: a third secret, and old dropped at once
    assert stored.previous_secret_expires_at is not None
    assert browser.post(roll, {"expire_previous_in": "0"}).status_code == 302  # posting no form field: no check


def test_the_owner_replaces_an_s3_destinations_access_key(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.uploads import destinations
    from apertur.uploads.models import Destination

    _, project, browser = owner
    s3 = destinations.create_s3_destination(
        project=project, name="Bucket", bucket="photos", access_key_id="AKIAOLD", secret_access_key="old-secret"
    )
    page = f"/projects/{project.public_id}/destinations/{s3.public_id}/"
    detail = browser.get(page).content.decode()
    assert "AKIAOLD" in detail and "old-secret" not in detail and "Replace access key" in detail
    assert browser.get(f"{page}roll-secret").status_code == 404  # no signing secret on S3
    bad = browser.post(f"{page}access-key", {"access_key_id": "AKIANEW", "secret_access_key": ""})
    assert bad.status_code == 400 and 'value="AKIANEW"' in bad.content.decode()
    assert Destination.objects.get().secret == "old-secret"
    done = browser.post(f"{page}access-key", {"access_key_id": "AKIANEW", "secret_access_key": "new-secret"})
    assert done["Location"] == page
    stored = Destination.objects.get()
    assert (stored.config["access_key_id"], stored.secret) == ("AKIANEW", "new-secret")
    assert browser.get(f"/projects/{project.public_id}/destinations/{s3.public_id}/access-key").status_code == 200
    https = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    assert browser.get(f"/projects/{project.public_id}/destinations/{https.public_id}/access-key").status_code == 404


def test_a_destinations_pages_belong_to_the_projects_owner(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.uploads import destinations

    _, project, _ = owner
    https = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    stranger = Client()
    stranger.force_login(make_user())
    page = f"/projects/{project.public_id}/destinations/{https.public_id}/"
    assert stranger.get(page).status_code == 404
    assert stranger.post(f"{page}roll-secret", {"expire_previous_in": "0"}).status_code == 404
    assert stranger.post(f"{page}access-key", {"access_key_id": "a", "secret_access_key": "b"}).status_code == 404
    assert Client().get(page).status_code == 302  # signed out: to the login page


def test_the_owner_disables_and_enables_a_destination_after_a_page_that_says_where_copies_go(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.core.models import AuditEvent
    from apertur.uploads import destinations
    from apertur.uploads.models import Destination

    user, project, browser = owner
    s3 = destinations.create_s3_destination(
        project=project,
        name="Bucket",
        bucket="photos",
        region="ca-central-1",
        endpoint_url="https://minio.example.com",
        prefix="weddings",
        access_key_id="AKIAEXAMPLE",
        secret_access_key="s3cr3t",
    )
    page = f"/projects/{project.public_id}/destinations/{s3.public_id}/"
    detail = browser.get(page).content.decode()
    assert f'href="{page}disable"' in detail and f"{page}enable" not in detail
    confirm = browser.get(f"{page}disable").content.decode()
    assert "Disable “Bucket”?" in confirm and "copies waiting for a retry are not sent" in confirm
    assert Destination.objects.get().status == "active"  # looking at the page changes nothing
    careful = Client(enforce_csrf_checks=True)
    careful.force_login(user)
    assert careful.post(f"{page}disable").status_code == 403 and Destination.objects.get().status == "active"
    done = browser.post(f"{page}disable", follow=True)
    assert done.redirect_chain == [(page, 302)] and "Destination “Bucket” disabled." in done.content.decode()
    assert Destination.objects.get().status == "disabled"
    disabled = AuditEvent.objects.get(action="destination.disabled")
    assert (disabled.actor_id, disabled.ip) == (user.pk, "127.0.0.1")
    detail = done.content.decode()
    assert f'href="{page}enable"' in detail and f"{page}disable" not in detail
    assert "the destination is disabled, so new uploads are not copied here" in detail
    assert browser.get(f"{page}disable")["Location"] == page  # already disabled: nothing to confirm
    confirm = browser.get(f"{page}enable").content.decode()
    for shown in (
        "Enable “Bucket”?",
        "<code>photos</code>",
        "<code>weddings/</code>",
        "minio.example.com",
        "AKIAEXAMPLE",
    ):
        assert shown in confirm
    assert "s3cr3t" not in confirm and "Uploads made while it was disabled are not copied" in confirm
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.post(f"{page}enable").status_code == 404 and Destination.objects.get().status == "disabled"
    browser.post(f"{page}enable")
    assert Destination.objects.get().status == "active"
    assert AuditEvent.objects.get(action="destination.enabled").actor_id == user.pk
    assert browser.get(f"{page}enable")["Location"] == page


def test_a_destinations_page_lists_its_copies_in_pages(owner, settings) -> None:  # type: ignore[no-untyped-def]
    from apertur.core import pages
    from apertur.uploads import destinations

    _, project, browser = owner
    destination = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    session = services.create_session(project=project, title="Party")
    names = [f"photo{n}.png" for n in range(pages.PAGE_SIZE + 2)]
    for name in names:
        services.accept_upload(session=session, file=image_file(name))
    page = f"/projects/{project.public_id}/destinations/{destination.public_id}/"
    first = browser.get(page).content.decode()
    second = browser.get(f"{page}?page=2").content.decode()
    assert names[-1] in first and names[0] not in first  # newest first
    assert names[0] in second and names[1] in second and names[-1] not in second
    assert "Pending" in first


def test_a_link_with_many_uploads_counts_them_all_and_pages_them(owner) -> None:  # type: ignore[no-untyped-def]
    """A Business project takes 50,000 uploads a month: the link's page counts every one and reaches the oldest."""
    _, project, browser = owner
    session = services.create_session(project=project, title="Gala")
    start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    Upload.objects.bulk_create(
        Upload(
            session=session,
            project=project,
            file=f"uploads/photo-{i}.png",
            original_name=f"photo-{i:03}.png",
            size=10,
            content_type="image/png",
            uploaded_at=start + dt.timedelta(minutes=i),
        )
        for i in range(501)
    )
    url = f"/projects/{project.public_id}/sessions/{session.public_id}/"
    first = browser.get(url).content.decode()
    assert "<dt>Uploads</dt><dd>501</dd>" in first
    assert "photo-500.png" in first and "photo-000.png" not in first  # newest first
    assert "Page 1 of 21 (501 uploads)" in first
    last = browser.get(f"{url}?page=21").content.decode()
    assert "photo-000.png" in last and "photo-500.png" not in last


def test_a_refused_upload_link_keeps_what_was_typed_beside_the_error(owner) -> None:  # type: ignore[no-untyped-def]
    """The form lives on the project page: after the redirect back, it is filled in again (not the password)
    and the reason is shown in the Upload links card."""
    _, project, browser = owner
    page = browser.post(
        f"/projects/{project.public_id}/sessions",
        {"title": "Gala & Ball", "expires_in_days": "a week", "max_files": "40", "password": "open sesame"},
        follow=True,
    ).content.decode()
    assert UploadSession.objects.count() == 0
    assert 'name="title" value="Gala &amp; Ball"' in page
    assert 'name="expires_in_days" value="a week"' in page
    assert 'name="max_files" value="40"' in page
    assert "open sesame" not in page
    alert = (
        '<div class="alert error" role="alert" id="form-error"><p>Expiry is a number of days from 1 to 3,650.</p></div>'
    )
    assert alert in page
    again = browser.get(f"/projects/{project.public_id}/").content.decode()  # shown once
    assert "Gala &amp; Ball" not in again and "Expiry is a number" not in again


def test_a_new_destination_secret_waits_for_its_own_page_and_is_never_cached(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.uploads import destinations
    from apertur.uploads.models import Destination

    _, project, browser = owner
    other = destinations.create_https_destination(project=project, name="Other", url="https://b.example.com/in")
    base = f"/projects/{project.public_id}/destinations"
    created = browser.post(f"{base}/new", {"kind": "https", "name": "Archive", "url": "https://a.example.com/in"})
    secret = Destination.objects.get(name="Archive").secret
    assert secret not in browser.get(f"{base}/{other.public_id}/").content.decode()  # a second tab
    assert browser.head(created["Location"]).status_code == 405  # a link checker
    page = browser.get(created["Location"])
    assert secret in page.content.decode()
    assert "no-store" in page["Cache-Control"]


def test_a_destinations_page_costs_the_same_queries_for_one_copy_or_many(owner) -> None:  # type: ignore[no-untyped-def]
    # Issue 10: each dashboard page constant in the number of rows (the copies' uploads come in the same query).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apertur.uploads import destinations

    _, project, browser = owner
    destination = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    session = services.create_session(project=project, title="Party")
    page = f"/projects/{project.public_id}/destinations/{destination.public_id}/"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert browser.get(page).status_code == 200
        return len(captured)

    services.accept_upload(session=session, file=image_file("first.png"))
    one = queries()
    for n in range(12):
        services.accept_upload(session=session, file=image_file(f"more{n}.png"))
    assert queries() == one


def test_without_javascript_the_form_uploads_every_file_and_comes_back_to_the_page(owner) -> None:  # type: ignore[no-untyped-def]
    # The browser posts the form itself: every chosen file is kept (not only one of them), and the guest gets
    # the page back with what happened, not the JSON meant for the page's script.
    _, project, _ = owner
    session = services.create_session(project=project, title="Party", password="open sesame")
    guest = Client()
    html = "text/html,application/xhtml+xml,*/*;q=0.8"
    locked = guest.post(f"/u/{session.token}/files", {"file": image_file()}, HTTP_ACCEPT=html, follow=True)
    assert "Enter the password first." in locked.content.decode() and Upload.objects.count() == 0
    guest.post(f"/u/{session.token}/unlock", {"password": "open sesame"})
    files = [image_file("one.png"), image_file("two.png"), image_file("bad.png", b"not an image")]
    response = guest.post(f"/u/{session.token}/files", {"file": files, "note": "hi"}, HTTP_ACCEPT=html)
    assert response.status_code == 302 and response["Location"] == f"/u/{session.token}"
    assert sorted(Upload.objects.values_list("original_name", flat=True)) == ["one.png", "two.png"]
    page = guest.get(response["Location"]).content.decode()
    assert "2 photos uploaded." in page
    assert "bad.png is not an accepted photo type" in page
    # The refusal is the photos field's: marked, and described by the alert as well as its help.
    assert 'aria-invalid="true" aria-describedby="files-help messages-error"' in page
    assert 'aria-invalid="true"' not in guest.get(response["Location"]).content.decode()  # only while said


def test_without_javascript_the_guest_rate_limit_is_said_once_for_the_files_left(  # type: ignore[no-untyped-def]
    owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apertur.core import ratelimit
    from apertur.uploads import views

    _, project, _ = owner
    session = services.create_session(project=project, title="Party")
    monkeypatch.setattr(views, "GUEST_UPLOADS_PER_IP", ratelimit.Limit("guest-upload-ip-test", 1, 3600))
    guest = Client()
    files = [image_file("one.png"), image_file("two.png"), image_file("three.png")]
    response = guest.post(f"/u/{session.token}/files", {"file": files}, HTTP_ACCEPT="text/html", follow=True)
    page = response.content.decode()
    assert list(Upload.objects.values_list("original_name", flat=True)) == ["one.png"]
    assert "1 photo uploaded." in page and page.count("not uploaded.") == 1 and "2 photos not uploaded." in page


def test_a_link_that_has_all_its_files_says_so_instead_of_offering_the_form(owner) -> None:  # type: ignore[no-untyped-def]
    # The guest was offered the form, chose photos, and only then got "accepts at most 1 files" for each.
    _, project, _ = owner
    session = services.create_session(project=project, title="Party", max_files=1)
    guest = Client()
    offered = guest.get(f"/u/{session.token}").content.decode()
    assert 'id="upload-form"' in offered
    assert "MB each, 1 file in all." in offered  # not "1 files"
    assert guest.post(f"/u/{session.token}/files", {"file": image_file()}).status_code == 201
    page = guest.get(f"/u/{session.token}").content.decode()
    assert 'id="upload-form"' not in page
    assert "This upload link has received all the photos it accepts." in page


def test_guests_hopping_ipv6_addresses_in_one_network_share_the_upload_budget(  # type: ignore[no-untyped-def]
    owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apertur.core import ratelimit
    from apertur.uploads import views

    _, project, _ = owner
    session = services.create_session(project=project, title="Party")
    monkeypatch.setattr(views, "GUEST_UPLOADS_PER_IP", ratelimit.Limit("guest-upload-ip6-test", 2, 3600))
    codes = [
        Client(REMOTE_ADDR=f"2001:db8:5:6::{n}").post(f"/u/{session.token}/files", {"file": image_file()}).status_code
        for n in (1, 2, 3)
    ]
    assert codes == [201, 201, 429] and Upload.objects.count() == 2


def _marked(html: str) -> list[str]:
    """The ids of the fields marked invalid, each described by the form's one alert."""
    marked = re.findall(r'<input id="([\w-]+)"[^>]* aria-invalid="true" aria-describedby="form-error"', html)
    assert not marked or '<div class="alert error" role="alert" id="form-error">' in html
    return marked


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expires_in_days", "\u00b2", "Expiry is a number of days from 1 to 3,650."),  # "²": isdigit(), not int()
        ("expires_in_days", "\u0663", "Expiry is a number of days from 1 to 3,650."),  # an Arabic-Indic 3
        ("max_files", "\u00b2", "Max files is a whole number."),
    ],
)
def test_a_number_typed_in_another_script_is_refused_beside_its_field(owner, field, value, message) -> None:  # type: ignore[no-untyped-def]
    """str.isdigit() is true for superscripts, which int() refuses: the expiry and max files fields answered
    a 500 for "²" instead of the form's own error."""
    _, project, browser = owner
    response = browser.post(f"/projects/{project.public_id}/sessions", {"title": "Gala", field: value}, follow=True)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert UploadSession.objects.count() == 0


def test_a_refused_hand_written_form_marks_the_field_its_error_names(owner) -> None:  # type: ignore[no-untyped-def]
    """These forms are not Django forms: without this, the error was an alert above them that no field pointed to
    (WCAG 1.3.1, 3.3.1, as _field.html does for Django's)."""
    from apertur.uploads import destinations

    _, project, browser = owner
    base = f"/projects/{project.public_id}"
    drafted = browser.post(f"{base}/sessions", {"title": "Picnic", "expires_in_days": "0"}, follow=True)
    assert _marked(drafted.content.decode()) == ["session-days"]
    assert _marked(browser.get(f"{base}/").content.decode()) == []  # the draft is shown once
    https = browser.post(f"{base}/destinations/new", {"kind": "https", "name": "Archive", "url": "ftp://a.example"})
    assert _marked(https.content.decode()) == ["url"]
    s3 = browser.post(f"{base}/destinations/new", {"kind": "s3", "name": "B", "bucket": "x", "access_key_id": "A"})
    assert _marked(s3.content.decode()) == ["bucket"]
    bucket = destinations.create_s3_destination(
        project=project, name="Bucket", bucket="photos", access_key_id="AKIAOLD", secret_access_key="old-secret"
    )
    key = browser.post(f"{base}/destinations/{bucket.public_id}/access-key", {"access_key_id": "AKIANEW"})
    assert _marked(key.content.decode()) == ["access_key_id"]
    assert _marked(browser.get(f"{base}/destinations/new?kind=s3").content.decode()) == []


def test_a_failing_storage_gives_the_guest_a_clear_error_and_no_row(owner, monkeypatch, settings, caplog) -> None:  # type: ignore[no-untyped-def]
    """A full disk (or an S3 endpoint out of reach) answered the page's script with the HTML 500 page, which it
    cannot read: now a JSON 503 saying to try again later, the failure logged, and no upload row without its
    file. The form posted without JavaScript says the same on the page."""
    import errno
    import logging

    from django.core.files.storage import FileSystemStorage

    _, project, _ = owner
    session = services.create_session(project=project, title="Ana & Ben")

    def full(self, name, content):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", full)
    guest = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR):
        response = guest.post(f"/u/{session.token}/files", {"file": image_file()})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert "try again" in response.json()["error"]["message"].lower()
    assert any("No space left on device" in (r.exc_text or str(r.exc_info)) for r in caplog.records)
    page = guest.post(f"/u/{session.token}/files", {"file": image_file()}, HTTP_ACCEPT="text/html", follow=True)
    assert page.status_code == 200
    assert "could not be stored" in page.content.decode()
    assert Upload.objects.count() == 0
    media = settings.MEDIA_ROOT
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]


@pytest.fixture
def open_link(owner) -> UploadSession:  # type: ignore[no-untyped-def]
    """A link opened while Redis answers (opening one is counted in Redis too: SESSIONS_PER_PROJECT)."""
    return services.create_session(project=owner[1], title="Ana & Ben")


def test_redis_down_gives_the_guest_a_clear_error_not_the_html_500_page(open_link, redis_down) -> None:  # type: ignore[no-untyped-def]
    """Guest uploads are rate limited in Redis: with Redis down the page's script got Django's HTML 500 page and
    showed only "Failed". Now a JSON 503 saying to try again; nothing stored."""
    session = open_link
    response = Client(raise_request_exception=False).post(f"/u/{session.token}/files", {"file": image_file()})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "try again" in response.json()["error"]["message"].lower()
    assert Upload.objects.count() == 0


def test_a_secret_access_key_too_long_to_store_is_marked_on_the_form_not_a_server_error(owner) -> None:  # type: ignore[no-untyped-def]
    from apertur.uploads import destinations

    _, project, browser = owner
    base = f"/projects/{project.public_id}"
    too_long = "k" * 201
    form = {"kind": "s3", "name": "B", "bucket": "photos", "access_key_id": "A", "secret_access_key": too_long}
    added = browser.post(f"{base}/destinations/new", form)
    assert added.status_code == 400 and _marked(added.content.decode()) == ["secret_access_key"]
    assert too_long not in added.content.decode()  # never shown back
    bucket = destinations.create_s3_destination(
        project=project, name="Bucket", bucket="photos", access_key_id="AKIAOLD", secret_access_key="old-secret"
    )
    key = browser.post(
        f"{base}/destinations/{bucket.public_id}/access-key",
        {"access_key_id": "AKIANEW", "secret_access_key": too_long},
    )
    assert key.status_code == 400 and _marked(key.content.decode()) == ["secret_access_key"]


def test_a_file_over_the_plans_limit_is_refused_without_being_kept_whole(  # type: ignore[no-untyped-def]
    owner, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guest's file larger than the plan accepts was written whole to a temporary file (any size: the disk could
    be filled) before the size was even looked at. Now no more than the limit is kept of it, and the guest still
    reads its real size beside the plan's limit; the other files of the form are kept."""
    from django.core.files import uploadhandler

    _, project, _ = owner
    project.plan.max_file_bytes = 1_048_576
    project.plan.save(update_fields=["max_file_bytes"])
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # larger files go to a temporary file, as in production
    session = services.create_session(project=project, title="Party")
    kept = {"bytes": 0}
    real = uploadhandler.TemporaryFileUploadHandler.receive_data_chunk

    def counting(self, raw_data, start):  # type: ignore[no-untyped-def]
        kept["bytes"] += len(raw_data)
        return real(self, raw_data, start)

    monkeypatch.setattr(uploadhandler.TemporaryFileUploadHandler, "receive_data_chunk", counting)
    huge = image_file("huge.png", PNG_BYTES + b"\x00" * (3 * 1_048_576))
    guest = Client()
    response = guest.post(f"/u/{session.token}/files", {"file": huge})
    assert response.status_code == 422, response.content
    assert response.json()["error"]["message"] == "huge.png is 3.0 MB; the Free plan accepts files up to 1 MB."
    assert kept["bytes"] <= 1_048_576 + 64 * 1024  # at most one chunk past the limit, never the whole file
    assert Upload.objects.count() == 0

    # Without JavaScript the form posts every file at once: the large one is refused, the others kept.
    huge.seek(0)
    files = [image_file("one.png"), huge, image_file("two.png")]
    page = guest.post(f"/u/{session.token}/files", {"file": files}, HTTP_ACCEPT="text/html", follow=True)
    html = page.content.decode()
    assert "2 photos uploaded." in html and "huge.png is 3.0 MB" in html
    assert sorted(Upload.objects.values_list("original_name", flat=True)) == ["one.png", "two.png"]


def test_a_closed_or_expired_link_says_which_and_when_not_open_until(owner) -> None:  # type: ignore[no-untyped-def]
    """A link its owner closed before its expiry told the guest "open until <the expiry>" right above "closed or
    has expired"; now the page says which happened, and when."""
    import time_machine

    from apertur.core import clock

    _, project, _ = owner
    expiry = dt.datetime(2030, 6, 1, 16, 0, tzinfo=dt.UTC)
    closed = services.create_session(project=project, title="Party", expires_at=expiry)
    with time_machine.travel(dt.datetime(2030, 5, 2, 14, 30, tzinfo=dt.UTC)):
        services.close_session(session=closed)
    expired = services.create_session(project=project, title="Picnic", expires_at=expiry)
    with time_machine.travel(expiry + dt.timedelta(days=1)):
        closed_page = Client().get(f"/u/{closed.token}").content.decode()
        expired_page = Client().get(f"/u/{expired.token}").content.decode()
    assert clock.now() < expiry
    open_page = Client().get(f"/u/{expired.token}").content.decode()
    assert "open until 2030-06-01 12:00 EDT" in open_page
    assert "open until" not in closed_page and "open until" not in expired_page
    assert "This upload link was closed on 2030-05-02 10:30 EDT." in closed_page
    assert "This upload link expired on 2030-06-01 12:00 EDT." in expired_page


def test_an_upload_whose_file_is_gone_from_storage_is_a_page_saying_so_not_an_error(owner, caplog) -> None:  # type: ignore[no-untyped-def]
    """A stored file missing (storage switched without moving var/media, a restored database): the owner's download
    was a 500 error page; now a 404 that says the file is no longer stored, logged for the operator."""
    _, project, browser = owner
    session = services.create_session(project=project, title="Party")
    upload = services.accept_upload(session=session, file=image_file())
    upload.file.storage.delete(upload.file.name)
    response = browser.get(f"/uploads/{upload.public_id}/download")
    assert response.status_code == 404
    assert "The file of this upload is no longer in storage." in response.content.decode()
    assert any(upload.public_id in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_without_javascript_more_files_than_a_form_takes_says_so_not_form_expired(owner, settings) -> None:  # type: ignore[no-untyped-def]
    """The form posted with more files than Django reads from one request (DATA_UPLOAD_MAX_NUMBER_FILES): the
    form's CSRF token went unread with them, and the guest got "This form expired — reload the page and try
    again", which only failed again. Now a 400 that says how many files one sending takes."""
    _, project, _ = owner
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    session = services.create_session(project=project, title="Party")
    guest = Client(enforce_csrf_checks=True)
    guest.get(f"/u/{session.token}")
    token = guest.cookies["csrftoken"].value
    files = [image_file(f"p{i}.png") for i in range(4)]
    response = guest.post(
        f"/u/{session.token}/files", {"file": files, "csrfmiddlewaretoken": token}, HTTP_ACCEPT="text/html"
    )
    assert response.status_code == 400
    assert "At most 3 files can be sent at once" in response.content.decode()
    assert Upload.objects.count() == 0


def test_a_webp_named_like_a_page_keeps_the_checked_types_extension_on_a_host_without_mime_types(  # type: ignore[no-untyped-def]
    owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checked type's extension came from the host's /etc/mime.types: without it (a slim container image),
    Python knows no extension for WebP, so a WebP sent as invoice.html was stored as .html and downloaded as
    invoice.html, a page the owner's browser opens as one. The extensions of the accepted types are Apertur's."""
    import mimetypes

    bare = mimetypes.MimeTypes(filenames=())
    if bare.guess_extension("image/webp"):  # a Python that knows WebP itself: nothing to show here
        bare.types_map_inv[True].pop("image/webp", None)
    monkeypatch.setattr(mimetypes, "guess_extension", bare.guess_extension)
    monkeypatch.setattr(mimetypes, "guess_all_extensions", bare.guess_all_extensions)
    assert mimetypes.guess_extension("image/webp") is None
    _, project, browser = owner
    session = services.create_session(project=project, title="Party")
    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
    sent = Client().post(f"/u/{session.token}/files", {"file": image_file("invoice.html", webp, "text/html")})
    assert sent.status_code == 201, sent.content
    upload = Upload.objects.get()
    assert upload.content_type == "image/webp" and upload.file.name.endswith(".webp")
    download = browser.get(f"/uploads/{upload.public_id}/download")
    assert download["Content-Type"] == "image/webp"
    assert 'filename="invoice.html.webp"' in download["Content-Disposition"]


def test_the_guest_page_is_never_kept_by_a_cache(owner) -> None:  # type: ignore[no-untyped-def]
    """The guest page's address is the link's secret and its content the link's state (open, full, closed): a shared
    cache must not keep it, nor the browser serve a stale "open" page after the owner closed the link."""
    _, project, _ = owner
    session = services.create_session(project=project, title="Party")
    response = Client().get(f"/u/{session.token}")
    assert response.status_code == 200
    cache_control = response["Cache-Control"]
    assert "no-store" in cache_control and "private" in cache_control, cache_control


def test_removing_a_destination_twice_says_it_is_gone_instead_of_not_found(owner) -> None:  # type: ignore[no-untyped-def]
    """A double click on Remove destination (or a second tab): the second request answered the 404 page, as if the
    removal had failed. It goes back to the project's page saying the destination no longer exists."""
    from apertur.core.models import AuditEvent
    from apertur.uploads.models import Destination

    _, project, browser = owner
    base = f"/projects/{project.public_id}/destinations"
    browser.post(f"{base}/new", {"kind": "https", "name": "Archive", "url": "https://archive.example.com/in"})
    url = f"{base}/{Destination.objects.get().public_id}/delete"
    assert browser.post(url).status_code == 302
    again = browser.post(url, follow=True)
    assert again.status_code == 200 and again.redirect_chain[-1][0] == f"/projects/{project.public_id}/"
    assert "This destination no longer exists" in again.content.decode()
    assert AuditEvent.objects.filter(action="destination.deleted").count() == 1
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.post(url).status_code == 404


def test_closing_a_link_deleted_meanwhile_says_so_instead_of_a_server_error(owner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Close link while staff delete the link's project: the page found the link, the close's locked read did not
    (a DoesNotExist, then SessionNotFound: the 500 page). The owner is told the link no longer exists."""
    from apertur.uploads import views

    _, project, browser = owner
    session = services.create_session(project=project, title="Party")
    real_close = services.close_session

    def deleted_first(**kwargs):  # type: ignore[no-untyped-def]
        UploadSession.objects.filter(pk=session.pk).delete()  # committed by the other request meanwhile
        return real_close(**kwargs)

    monkeypatch.setattr(views.services, "close_session", deleted_first)
    response = browser.post(f"/projects/{project.public_id}/sessions/{session.public_id}/close", follow=True)
    assert response.status_code == 200 and response.redirect_chain[-1][0] == "/projects/"
    assert "This upload link no longer exists" in response.content.decode()


def _unlocks(guest: Client, session: UploadSession, password: str) -> bool:
    guest.post(f"/u/{session.token}/unlock", {"password": password})
    return guest.post(f"/u/{session.token}/files", {"file": image_file()}).status_code == 201


def test_guessing_a_links_password_is_limited_per_link_and_network(owner) -> None:  # type: ignore[no-untyped-def]
    """A link's password (4 characters at least) was limited only by the guest upload budget (600 an hour per
    network): a 4-digit code fell within a day from one address. Wrong guesses now have budgets like logins: per
    link and network (tight), and per link (loose, across networks); a right password gives its hit back."""
    _, project, _ = owner
    session = services.create_session(project=project, title="Private", password="4821")
    guesser = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(10):
        assert not _unlocks(guesser, session, f"{n:04d}")
    assert not _unlocks(guesser, session, "4821")  # spent: even the right one is not checked
    assert _unlocks(Client(REMOTE_ADDR="198.51.100.9"), session, "4821")  # another network still gets in
    for n in range(100):
        _unlocks(Client(REMOTE_ADDR=f"10.1.{n}.1"), session, f"{n:04d}")
    assert not _unlocks(Client(REMOTE_ADDR="198.51.100.10"), session, "4821")  # the link's own budget is spent


def test_right_passwords_do_not_use_the_guessing_budget(owner) -> None:  # type: ignore[no-untyped-def]
    _, project, _ = owner
    session = services.create_session(project=project, title="Party", password="open sesame")
    for _ in range(15):  # one office behind one address, each guest typing the password once
        assert _unlocks(Client(REMOTE_ADDR="203.0.113.8"), session, "open sesame")


def test_the_guest_link_on_the_links_page_is_on_the_configured_address_whatever_host_the_owner_used(  # type: ignore[no-untyped-def]
    owner, settings
) -> None:
    """The owner copies this link into an email to their guests: it is the site's public address
    (``APERTUR_BASE_URL``), as the API's ``url`` says, never the Host the owner's request came in on (an internal
    name, ``127.0.0.1``, or plain http behind a proxy), which a guest could not open."""
    settings.APERTUR_BASE_URL = "https://apertur.example"
    _, project, browser = owner
    session = services.create_session(project=project, title="Ana & Ben")
    page = browser.get(
        f"/projects/{project.public_id}/sessions/{session.public_id}/", HTTP_HOST="127.0.0.1"
    ).content.decode()
    shown = re.search(r'data-testid="guest-link">([^<]*)<', page)
    assert shown is not None
    assert shown.group(1) == f"https://apertur.example/u/{session.token}"


@pytest.mark.parametrize("title", ["Ana & Ben\u202e sotohp ruoy dnes", "Ana\x1b[31m & Ben"])
def test_a_link_title_with_controls_or_text_direction_characters_is_refused(owner, title: str) -> None:  # type: ignore[no-untyped-def]
    """The title is what guests read on the public upload page: U+202E would reverse the page's words after it."""
    _, project, browser = owner
    response = browser.post(f"/projects/{project.public_id}/sessions", {"title": title, "max_files": "10"}, follow=True)
    assert "text-direction marks" in response.content.decode()  # the project page's form, the reason beside it
    assert not UploadSession.objects.exists()
