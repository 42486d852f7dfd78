from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from apertur.core import clock
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import JPEG_BYTES, image_file, make_user
from apertur.uploads import services
from apertur.uploads.errors import (
    InvalidSession,
    QuotaExceeded,
    SessionLimitReached,
    SessionNotAccepting,
    UploadRejected,
    WrongPassword,
)
from apertur.uploads.models import Upload, UploadSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():  # type: ignore[no-untyped-def]
    return create_project(owner=make_user(), name="Weddings", plan=plan_by_name("Pro"))


def test_create_and_upload(project) -> None:  # type: ignore[no-untyped-def]
    session = services.create_session(project=project, title="  Ana &  Ben ", max_files=5)
    assert session.title == "Ana & Ben"
    assert session.public_id.startswith("ses_") and len(session.token) == 24
    assert session.accepted_types[0] == "image/jpeg"
    upload = services.accept_upload(session=session, file=image_file(), note="From Carla", ip="10.0.0.1")
    assert upload.public_id.startswith("upl_")
    assert upload.content_type == "image/png" and upload.size == len(image_file().read())
    assert upload.file.name.endswith(f"{upload.public_id}.png")
    assert upload.file.storage.exists(upload.file.name)
    assert upload.note == "From Carla"
    jpeg = services.accept_upload(session=session, file=image_file("IMG 1.JPG", JPEG_BYTES, "image/jpeg"))
    assert jpeg.content_type == "image/jpeg" and jpeg.original_name == "IMG 1.JPG"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"title": "  "}, "title"),
        ({"title": "x", "max_files": 0}, "max_files"),
        ({"title": "x", "accepted_types": ["application/pdf"]}, "accepted_types"),
        ({"title": "x", "password": "abc"}, "password"),
    ],
)
def test_bad_session_input_stores_nothing(project, kwargs: dict, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidSession) as info:
        services.create_session(project=project, **kwargs)
    assert info.value.field == field
    assert UploadSession.objects.count() == 0


def test_expiry_in_the_past_refused(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidSession):
        services.create_session(project=project, title="x", expires_at=clock.now() - dt.timedelta(seconds=1))


def test_active_session_limit_of_the_plan(project) -> None:  # type: ignore[no-untyped-def]
    free = create_project(owner=project.owner, name="Free one")
    services.create_session(project=free, title="one")
    with pytest.raises(SessionLimitReached):
        services.create_session(project=free, title="two")
    services.create_session(project=free, title="test mode does not count", livemode=False)
    services.close_session(session=UploadSession.objects.get(title="one"))
    services.create_session(project=free, title="two")


def test_the_limit_is_the_plan_the_project_has_now_not_the_callers_copy(project) -> None:  # type: ignore[no-untyped-def]
    """The caller's project may be read before a plan change commits (an upgrade paid a moment ago): the locked
    row's plan decides, as it does for the defaults."""
    from apertur.projects.models import Project
    from apertur.projects.services import change_plan

    free = create_project(owner=project.owner, name="Free one")
    services.create_session(project=free, title="one")
    stale = Project.objects.select_related("plan").get(pk=free.pk)
    assert stale.plan.name == "Free"
    change_plan(project=free, plan=plan_by_name("Pro"))
    services.create_session(project=stale, title="two")  # was SessionLimitReached: Free's limit of one


def test_an_expired_session_frees_its_slot(project) -> None:  # type: ignore[no-untyped-def]
    free = create_project(owner=project.owner, name="Free one")
    soon = clock.now() + dt.timedelta(seconds=3)
    first = services.create_session(project=free, title="short", expires_at=soon)
    with pytest.raises(SessionLimitReached):
        services.create_session(project=free, title="second")
    with time_machine.travel(soon + dt.timedelta(seconds=2)):
        assert services.usage(project=free).active_sessions == 0
        assert not first.is_accepting()
        assert first.effective_status == "closed" and first.effective_closed_at == soon
        services.create_session(project=free, title="second")
        # Closing it by hand afterwards keeps the date it stopped at.
        assert services.close_session(session=first).closed_at == soon


def test_closing_before_the_expiry_records_when_it_was_closed(project) -> None:  # type: ignore[no-untyped-def]
    """docs/api.md: a session is open until it is closed or its expiry passes; closed by hand first, its
    closed_at is the moment it was closed, never its (future) expiry."""
    later = clock.now() + dt.timedelta(days=30)
    session = services.create_session(project=project, title="closed early", expires_at=later)
    moment = clock.now() + dt.timedelta(hours=1)
    with time_machine.travel(moment, tick=False):
        closed = services.close_session(session=session)
    assert closed.closed_at == moment
    assert UploadSession.objects.get(pk=session.pk).effective_closed_at == moment


def test_a_new_session_takes_the_project_defaults(project) -> None:  # type: ignore[no-untyped-def]
    from apertur.projects.services import update_settings

    plain = services.create_session(project=project, title="no defaults")
    assert plain.expires_at is None and plain.max_files is None
    update_settings(project=project, default_session_days=7, default_max_files=50)
    session = services.create_session(project=project, title="defaults")
    assert session.max_files == 50
    assert session.expires_at is not None
    assert abs(session.expires_at - (clock.now() + dt.timedelta(days=7))) < dt.timedelta(minutes=1)
    given = services.create_session(
        project=project, title="given", max_files=3, expires_at=clock.now() + dt.timedelta(days=1)
    )
    assert given.max_files == 3 and given.expires_at < clock.now() + dt.timedelta(days=2)


def test_the_owner_is_mailed_about_each_live_upload_when_asked(project, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    from django.core import mail as outbox
    from django_tasks_db.models import DBTaskResult

    from apertur.projects.services import update_settings

    session = services.create_session(project=project, title="Ana & Ben")
    services.accept_upload(session=session, file=image_file())
    assert not DBTaskResult.objects.filter(task_path__endswith="notify_owner").exists()  # off by default
    update_settings(project=project, notify_owner_on_upload=True)
    upload = services.accept_upload(session=session, file=image_file(), note="From Carla")
    test_session = services.create_session(project=project, title="test", livemode=False)
    services.accept_upload(session=test_session, file=image_file())  # test mode: no mail
    queued = DBTaskResult.objects.filter(task_path__endswith="notify_owner")
    assert [r.args_kwargs["args"] for r in queued] == [[upload.pk]]  # queued, not sent in the upload request
    with django_capture_on_commit_callbacks(execute=True):
        services.notify_owner_of_upload(upload_id=upload.pk)
    [message] = outbox.outbox
    assert message.to == [project.owner.email] and "Ana & Ben" in message.subject
    assert "photo.png" in message.body and "From Carla" in message.body
    # Plain text: the session's title as typed, not HTML-escaped ("Ana &amp; Ben").
    assert "to “Ana & Ben” in Weddings." in message.body
    project.name = "Weddings Inc."
    project.save(update_fields=["name"])
    outbox.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.notify_owner_of_upload(upload_id=upload.pk)
    assert "in Weddings Inc.\n" in outbox.outbox[0].body  # one full stop, not "Inc.."


def test_the_upload_mail_links_the_settings_page_that_turns_it_off(  # type: ignore[no-untyped-def]
    project, settings, django_capture_on_commit_callbacks
) -> None:
    """The owner can stop these mails on the project's Settings page: the mail says so and links it, absolute with
    the configured base URL (a mail has no page to be relative to), and the link is the page's."""
    from django.core import mail as outbox
    from django.urls import reverse

    from apertur.projects.services import update_settings

    settings.APERTUR_BASE_URL = "https://apertur.example"
    update_settings(project=project, notify_owner_on_upload=True)
    upload = services.accept_upload(session=services.create_session(project=project, title="Gala"), file=image_file())
    with django_capture_on_commit_callbacks(execute=True):
        services.notify_owner_of_upload(upload_id=upload.pk)
    [message] = outbox.outbox
    settings_path = reverse("projects:settings", kwargs={"public_id": project.public_id})
    assert f"\nhttps://apertur.example{settings_path}\n" in message.body
    assert "“Email me when a guest uploads” is on in the project's settings" in message.body
    assert "notify_owner_on_upload" not in message.body  # the owner's words, not the API's


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("evil.jpg", b"MZ\x90\x00 this is an exe"),
        ("doc.png", b"%PDF-1.7 not an image"),
        ("empty.png", b""),
    ],
)
def test_real_type_is_checked_not_the_name(project, name: str, content: bytes) -> None:  # type: ignore[no-untyped-def]
    session = services.create_session(project=project, title="x")
    with pytest.raises(UploadRejected):
        services.accept_upload(session=session, file=image_file(name, content, "image/jpeg"))
    assert Upload.objects.count() == 0


def test_accepted_types_of_the_session(project) -> None:  # type: ignore[no-untyped-def]
    session = services.create_session(project=project, title="x", accepted_types=["image/jpeg"])
    with pytest.raises(UploadRejected, match="not an accepted photo type"):
        services.accept_upload(session=session, file=image_file())


def test_file_size_limit_of_the_plan(project, settings) -> None:  # type: ignore[no-untyped-def]
    plan = project.plan
    plan.max_file_bytes = 100
    plan.save()
    session = services.create_session(project=project, title="x")
    with pytest.raises(UploadRejected, match="accepts files up to"):
        services.accept_upload(session=session, file=image_file(content=JPEG_BYTES + b"\x00" * 200))


def test_max_files_and_monthly_quota(project) -> None:  # type: ignore[no-untyped-def]
    session = services.create_session(project=project, title="x", max_files=1)
    services.accept_upload(session=session, file=image_file())
    with pytest.raises(QuotaExceeded, match=r"^This link accepts at most 1 file\.$"):  # not "1 files"
        services.accept_upload(session=session, file=image_file())
    plan = project.plan
    plan.uploads_per_month = 2
    plan.save()
    other = services.create_session(project=project, title="y")
    services.accept_upload(session=other, file=image_file())
    with pytest.raises(QuotaExceeded, match="uploads for the month"):
        services.accept_upload(session=other, file=image_file())


def test_monthly_quota_resets_on_the_first_in_toronto(project) -> None:  # type: ignore[no-untyped-def]
    plan = project.plan
    plan.uploads_per_month = 1
    plan.save()
    # 2026-03-31 23:30 in Toronto is already April 1st in UTC.
    with time_machine.travel(dt.datetime(2026, 4, 1, 3, 30, tzinfo=dt.UTC), tick=False):
        session = services.create_session(project=project, title="x")
        services.accept_upload(session=session, file=image_file())
    with (
        time_machine.travel(dt.datetime(2026, 4, 1, 3, 59, tzinfo=dt.UTC), tick=False),
        pytest.raises(QuotaExceeded),
    ):
        services.accept_upload(session=session, file=image_file())
    with time_machine.travel(dt.datetime(2026, 4, 1, 4, 0, tzinfo=dt.UTC), tick=False):  # midnight in Toronto
        services.accept_upload(session=session, file=image_file())


def test_closed_and_expired_sessions_refuse(project) -> None:  # type: ignore[no-untyped-def]
    session = services.create_session(project=project, title="x", expires_at=clock.now() + dt.timedelta(hours=1))
    with time_machine.travel(clock.now() + dt.timedelta(hours=2)), pytest.raises(SessionNotAccepting):
        services.accept_upload(session=session, file=image_file())
    services.close_session(session=session)
    with pytest.raises(SessionNotAccepting):
        services.accept_upload(session=session, file=image_file())


def test_password(project) -> None:  # type: ignore[no-untyped-def]
    session = services.create_session(project=project, title="x", password="open sesame")
    assert session.password_hash and "open sesame" not in session.password_hash
    with pytest.raises(WrongPassword):
        services.check_session_password(session=session, password="nope")
    services.check_session_password(session=session, password="open sesame")


def test_uploads_can_live_in_an_s3_compatible_bucket(project, settings) -> None:  # type: ignore[no-untyped-def]
    """STORAGES["default"] as configured by UPLOADS_S3_BUCKET, against moto's S3 server on loopback."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        options = {"access_key": "AKIATEST", "secret_key": "secret", "region_name": "us-east-1"}
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="AKIATEST",
            aws_secret_access_key="secret",
            region_name="us-east-1",
        ).create_bucket(Bucket="apertur-uploads")
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {"bucket_name": "apertur-uploads", "endpoint_url": endpoint, **options},
            },
        }
        session = services.create_session(project=project, title="Party")
        upload = services.accept_upload(session=session, file=image_file())
        stored = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="AKIATEST",
            aws_secret_access_key="secret",
            region_name="us-east-1",
        ).get_object(Bucket="apertur-uploads", Key=upload.file.name)
        assert stored["Body"].read()[:8] == b"\x89PNG\r\n\x1a\n"
        with upload.file.open("rb") as fh:
            assert fh.read(4) == b"\x89PNG"
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_deleted_upload_leaves_storage_with_its_row_and_a_rolled_back_deletion_keeps_it() -> None:
    """Django never deletes a FileField's file: deleting an account or project took the rows and left every
    guest's photo in storage for ever."""
    from django.db import transaction

    from apertur.accounts.models import User
    from apertur.uploads.models import Upload

    owner = make_user()
    project = create_project(owner=owner, name="Weddings")
    session = services.create_session(project=project, title="Party")
    kept, gone = (services.accept_upload(session=session, file=image_file()) for _ in range(2))
    storage = kept.file.storage
    assert storage.exists(kept.file.name) and storage.exists(gone.file.name)
    try:
        with transaction.atomic():
            Upload.objects.filter(pk=kept.pk).delete()
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert storage.exists(kept.file.name)
    User.objects.filter(pk=owner.pk).delete()  # the cascade: projects, sessions, uploads
    assert not Upload.objects.exists()
    assert not storage.exists(kept.file.name) and not storage.exists(gone.file.name)


def test_a_failure_after_the_file_is_stored_leaves_no_file_without_a_row(project, monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    """The file is written before the row; if anything after the row fails (the audit entry, the webhook
    event, the destinations' copies) the transaction rolls the row back, and the file went with it only when
    the row's own INSERT failed: the rest left a file no row points at, never deleted."""
    from apertur.webhooks import services as webhooks

    session = services.create_session(project=project, title="Ana & Ben")

    def broken(**_: object) -> None:
        raise RuntimeError("webhook table unavailable")

    monkeypatch.setattr(webhooks, "emit", broken)
    with pytest.raises(RuntimeError):
        services.accept_upload(session=session, file=image_file())
    assert Upload.objects.count() == 0
    media = settings.MEDIA_ROOT
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]


@pytest.mark.django_db(transaction=True)
def test_a_storage_that_fails_to_delete_does_not_fail_the_committed_deletion(monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    """Files are deleted once the rows' deletion commits; a storage that refused one (S3 out of reach, a
    permission) raised out of the commit: the deletion had committed yet the admin saw a 500, and the files
    and mails queued after it were never handled. Each is logged and the others still go."""
    import logging

    from django.core.files.storage import FileSystemStorage
    from django.db import transaction

    from apertur.uploads.models import Upload

    project = create_project(owner=make_user(), name="Weddings")
    session = services.create_session(project=project, title="Party")
    first, second = (services.accept_upload(session=session, file=image_file()) for _ in range(2))
    storage = first.file.storage
    real_delete = FileSystemStorage.delete

    def refuse_first(self, name):  # type: ignore[no-untyped-def]
        if name == first.file.name:
            raise PermissionError(13, "Permission denied", name)
        real_delete(self, name)

    monkeypatch.setattr(FileSystemStorage, "delete", refuse_first)
    with caplog.at_level(logging.ERROR), transaction.atomic():
        Upload.objects.filter(pk__in=[first.pk, second.pk]).order_by("pk").delete()
    assert not Upload.objects.exists()
    assert storage.exists(first.file.name) and not storage.exists(second.file.name)
    assert any(r.exc_info and isinstance(r.exc_info[1], PermissionError) for r in caplog.records)


def test_an_upload_to_a_link_deleted_meanwhile_is_not_found_and_stores_nothing(project, settings) -> None:  # type: ignore[no-untyped-def]
    """A guest's file arriving while staff delete the project (the page found the link, the deletion committed
    before the upload locked it): the locked read raised DoesNotExist, a 500 for the guest's page. The link is gone
    (404 ``upload_session_not_found``, as for any unknown link) and no file is kept."""
    from apertur.uploads.errors import SessionNotFound

    session = services.create_session(project=project, title="Party")
    project.delete()
    with pytest.raises(SessionNotFound):
        services.accept_upload(session=session, file=image_file())
    media = settings.MEDIA_ROOT
    assert not media.exists() or not [p for p in media.rglob("*") if p.is_file()]


def test_closing_a_link_deleted_meanwhile_is_not_found(project) -> None:  # type: ignore[no-untyped-def]
    """``POST /upload-sessions/{id}/close`` (or the owner's Close link) while the project is deleted: a 404, not the
    DoesNotExist of the locked read (a 500)."""
    from apertur.uploads.errors import SessionNotFound

    session = services.create_session(project=project, title="Party")
    project.delete()
    with pytest.raises(SessionNotFound):
        services.close_session(session=session)
