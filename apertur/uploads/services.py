"""Upload sessions and the uploads guests make to them, within the project's plan limits."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum

from apertur.accounts.models import User
from apertur.accounts.signals import TurnedOff
from apertur.core import audit, clock, mail, ratelimit
from apertur.core.http import rate_limit_ip
from apertur.core.validation import clean_text
from apertur.projects.models import Project
from apertur.uploads import destinations, sniff
from apertur.uploads.errors import (
    InvalidSession,
    QuotaExceeded,
    SessionLimitReached,
    SessionNotAccepting,
    SessionNotFound,
    StorageUnavailable,
    UploadRejected,
    WrongPassword,
)
from apertur.uploads.models import (
    IMAGE_TYPES,
    Destination,
    DestinationStatus,
    SessionStatus,
    Upload,
    UploadSession,
)
from apertur.webhooks import services as webhooks

logger = logging.getLogger(__name__)

MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class Usage:
    uploads_this_month: int
    storage_bytes: int
    active_sessions: int


def month_start(at: dt.datetime | None = None) -> dt.datetime:
    """The first instant of the current calendar month in America/Toronto."""
    local = (at or clock.now()).astimezone(clock.BUSINESS_TZ)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage(*, project: Project, livemode: bool = True) -> Usage:
    """What a project has used of its plan, counted per mode: test mode has its own budget of the same
    size, so it cannot be used to get unlimited storage, and never eats into the live one."""
    uploads = Upload.objects.filter(project=project, livemode=livemode)
    return Usage(
        uploads_this_month=uploads.filter(uploaded_at__gte=month_start()).count(),
        storage_bytes=uploads.aggregate(total=Sum("size"))["total"] or 0,
        # Expired sessions read "closed" and take no uploads: they do not hold a slot either.
        active_sessions=UploadSession.objects.filter(project=project, livemode=livemode).active().count(),
    )


def _clean_types(accepted_types: Sequence[str] | None) -> list[str]:
    if not accepted_types:
        return list(IMAGE_TYPES)
    unknown = [t for t in accepted_types if t not in IMAGE_TYPES]
    if unknown:
        raise InvalidSession(
            f"Unsupported type(s): {', '.join(unknown)}. Accepted types are {', '.join(IMAGE_TYPES)}.",
            field="accepted_types",
        )
    return list(dict.fromkeys(accepted_types))


#: Upload sessions a project may open in a day, per mode (test mode has its own, as it has its own plan budget).
#: The plan caps the sessions *open* at once, not how many are opened: open-then-close loops wrote a session row,
#: two audit events and two webhook events each, every event a POST to each of the project's (up to 20) endpoints.
#: A thousand is a link every minute and a half around the clock, ten times what a busy studio opens by hand.
SESSIONS_PER_PROJECT = ratelimit.Limit("upload-session-project", 1000, 24 * 60 * 60)


@transaction.atomic
def create_session(
    *,
    project: Project,
    title: str,
    expires_at: dt.datetime | None = None,
    max_files: int | None = None,
    accepted_types: Sequence[str] | None = None,
    password: str | None = None,
    livemode: bool = True,
    actor: object = None,
    ip: str | None = None,
) -> UploadSession:
    """Open an upload link. ``expires_at`` and ``max_files`` left out (``None``) take the project's
    ``default_session_days`` and ``default_max_files``, if it has them. Past :data:`SESSIONS_PER_PROJECT`:
    :class:`RateLimited`, nothing written."""
    # Guests read it on the upload page: core's rule for names shown to other people (no control or text-direction
    # character), spaces folded.
    clean_title = clean_text(
        title,
        low=1,
        high=120,
        message="Enter a title (1 to 120 characters).",
        field="title",
        error=InvalidSession,
        collapse_spaces=True,
    )
    if expires_at is not None:
        try:
            # Kept in UTC as read back from the database: the creation's answer must not echo the caller's offset.
            expires_at = expires_at.astimezone(dt.UTC)
        except OverflowError as exc:  # 9999-12-31T23:59:59-12:00 is past the last date a datetime holds in UTC
            raise InvalidSession("The expiry is too far in the future.", field="expires_at") from exc
    if expires_at is not None and expires_at <= clock.now():
        raise InvalidSession("The expiry must be in the future.", field="expires_at")
    if max_files is not None and not 1 <= max_files <= 100_000:
        raise InvalidSession("max_files must be between 1 and 100,000.", field="max_files")
    if password is not None and password != "" and not 4 <= len(password) <= 128:
        raise InvalidSession("A session password has 4 to 128 characters.", field="password")
    types = _clean_types(accepted_types)
    # Lock the project row: two creations at once cannot both take the last free session slot. The locked row
    # is also the current one for the defaults.
    locked = Project.objects.select_for_update().filter(pk=project.pk).first() or project
    if expires_at is None and locked.default_session_days:
        expires_at = clock.now() + dt.timedelta(days=locked.default_session_days)
    if max_files is None and locked.default_max_files:
        max_files = locked.default_max_files
    # The locked row's plan (a change may have committed since the caller read ``project``); the caller's copy when
    # it is the same plan, which costs no query.
    plan = project.plan if locked.plan_id == project.plan_id else locked.plan
    if usage(project=project, livemode=livemode).active_sessions >= plan.max_active_sessions:
        raise SessionLimitReached()
    # Counted once every other reason to refuse has passed: a refused creation spends nothing.
    ratelimit.hit(SESSIONS_PER_PROJECT, ratelimit.per_mode(project.pk, livemode), what="upload links")
    session = UploadSession.objects.create(
        project=project,
        title=clean_title,
        expires_at=expires_at,
        max_files=max_files,
        accepted_types=types,
        password_hash=make_password(password) if password else "",
        livemode=livemode,
    )
    audit.record(action="upload_session.created", obj=session, actor=actor, ip=ip, data={"livemode": livemode})
    webhooks.emit(project=project, type="session.created", data=session_event(session), livemode=livemode)
    return session


@transaction.atomic
def close_session(
    *, session: UploadSession, actor: object = None, ip: str | None = None, via: str | None = None
) -> UploadSession:
    """Close the link (once: closing a closed one changes nothing). ``via``: the API caller that asked (its
    identity), recorded in the audit event, as ``actor`` records the person on the dashboard."""
    locked = UploadSession.objects.select_for_update().filter(pk=session.pk).first()
    if locked is None:
        raise SessionNotFound()  # deleted meanwhile, with its project or account
    session = locked
    if session.status != SessionStatus.CLOSED:
        # An expired session already stopped at its expiry (and said so): keep that date. Read it while the
        # session is still open: once it reads closed, a future expiry would pass for the closing time.
        session.closed_at = session.effective_closed_at or clock.now()
        session.status = SessionStatus.CLOSED
        session.save(update_fields=["status", "closed_at"])
        audit.record(
            action="upload_session.closed", obj=session, actor=actor, ip=ip, data={"via": via} if via else None
        )
        webhooks.emit(
            project=session.project, type="session.closed", data=session_event(session), livemode=session.livemode
        )
    return session


#: Wrong guesses of a link's password, as for logins (accounts.login): per link and network (tight: stops guessing
#: from one place) and per link (loose: stops guessing from many, without letting one network lock guests out).
PASSWORD_GUESSES_PER_LINK_NETWORK = ratelimit.Limit("upload-password-link-ip", 10, 15 * 60)
PASSWORD_GUESSES_PER_LINK = ratelimit.Limit("upload-password-link", 100, 60 * 60)


def check_session_password(*, session: UploadSession, password: str, ip: str | None = None) -> None:
    """The link's password, within its budgets of failed guesses: counted before the check (parallel guesses cannot
    outrun it), given back when it is right, so only failures use them. Past one: :class:`RateLimited`, unchecked."""
    if not session.has_password:
        return
    network = rate_limit_ip(ip) if ip else "-"
    counted = ratelimit.hit_all(
        (PASSWORD_GUESSES_PER_LINK_NETWORK, f"{session.pk}|{network}"), (PASSWORD_GUESSES_PER_LINK, str(session.pk))
    )
    if not check_password(password, session.password_hash):
        raise WrongPassword()
    ratelimit.give_back(*counted)


@transaction.atomic
def accept_upload(*, session: UploadSession, file: UploadedFile, note: str = "", ip: str | None = None) -> Upload:
    """Store one guest file after checking the session, the file's real type and the plan's limits."""
    # The session and its project, not the plan row joined to them (``of``): every project on that plan shares it.
    locked = (
        UploadSession.objects.select_for_update(of=("self", "project"))
        .select_related("project__plan")
        .filter(pk=session.pk)
        .first()
    )
    if locked is None:
        # Deleted since the page found it (its project or account deleted meanwhile): gone, as an unknown link is.
        raise SessionNotFound()
    session = locked
    if not session.is_accepting():
        raise SessionNotAccepting()
    plan = session.project.plan
    name = (file.name or "photo").rsplit("/", 1)[-1][:255]
    size = file.size or 0
    if size <= 0:
        raise UploadRejected(f"{name} is empty.", field="file")
    if size > plan.max_file_bytes:
        raise UploadRejected(
            f"{name} is {size / 1_048_576:.1f} MB; the {plan.name} plan accepts files up to "
            f"{plan.max_file_bytes // 1_048_576} MB.",
            field="file",
        )
    head = file.read(32)
    file.seek(0)
    kind = sniff.detect(head)
    if kind is None or kind not in session.accepted_types:
        accepted = ", ".join(t.split("/")[1].upper() for t in session.accepted_types)
        raise UploadRejected(f"{name} is not an accepted photo type ({accepted}).", field="file")
    if session.max_files is not None and session.uploads.count() >= session.max_files:
        files = "file" if session.max_files == 1 else "files"
        raise QuotaExceeded(f"This link accepts at most {session.max_files} {files}.")
    # Lock the project: parallel uploads to different sessions of one project take turns on its quota.
    Project.objects.select_for_update().filter(pk=session.project_id).first()
    current = usage(project=session.project, livemode=session.livemode)
    if current.uploads_this_month >= plan.uploads_per_month:
        raise QuotaExceeded(f"This project has used its {plan.uploads_per_month} uploads for the month.")
    if current.storage_bytes + size > plan.storage_bytes:
        raise QuotaExceeded("This project's storage is full.")
    upload = Upload(
        session=session,
        project=session.project,
        original_name=name,
        size=size,
        content_type=kind,
        note=note.strip()[:MAX_NOTE],
        uploader_ip=ip,
        livemode=session.livemode,
    )
    try:
        upload.file.save(name, file, save=False)
    except Exception as exc:
        # Disk full, a permission, an S3 endpoint out of reach: the guest is told to try again (a JSON 503 for
        # the page's script), the cause logged for us. No row was written.
        logger.exception("upload to %s could not be stored", session.public_id)
        raise StorageUnavailable() from exc
    try:
        upload.save()
        audit_data = {"session": session.public_id, "size": size, "content_type": kind}
        audit.record(action="upload.created", obj=upload, ip=ip, data=audit_data)
        webhooks.emit(
            project=session.project, type="upload.created", data=upload_event(upload), livemode=upload.livemode
        )
        destinations.schedule(upload=upload)
        if session.project.notify_owner_on_upload and upload.livemode:
            # Queued in this transaction like the webhook attempts; the worker sends the mail, so the guest's
            # upload never waits on the mail server.
            from apertur.uploads.tasks import notify_owner

            notify_owner.enqueue(upload.pk)
    except Exception:
        # Any failure here rolls the row back with the transaction: the file goes too (no file without a row).
        upload.file.delete(save=False)
        raise
    return upload


def notify_owner_of_upload(*, upload_id: int) -> None:
    """One mail to the project's owner per live upload (the ``notify_owner_on_upload`` setting)."""
    upload = Upload.objects.select_related("session", "project__owner").filter(pk=upload_id).first()
    if upload is None or not upload.project.notify_owner_on_upload:
        return  # deleted since, or the owner turned notices off before the worker got to it
    mail.send(
        to=upload.project.owner.email,
        subject=f"New upload to “{upload.session.title}”",
        template="emails/upload_received",
        context={"upload": upload, "session": upload.session, "project": upload.project},
    )


def session_event(session: UploadSession) -> dict[str, object]:
    return {"session": {"id": session.public_id, "title": session.title, "status": session.status}}


def upload_event(upload: Upload) -> dict[str, object]:
    return {
        "upload": {
            "id": upload.public_id,
            "session_id": upload.session.public_id,
            "file_name": upload.original_name,
            "size": upload.size,
            "content_type": upload.content_type,
            "note": upload.note,
            "uploaded_at": upload.uploaded_at.isoformat(),
        }
    }


def turn_off_deliveries_of_claimed_account(*, user: User) -> list[TurnedOff]:
    """An account claimed from whoever signed up with its address (``accounts.signals.claimed_from_signup``):
    where its projects send uploads and events was chosen by someone who may not own it (every guest's photo
    copied to their bucket). Kept for the owner to look at, but turned off, each through its own service:

    - destinations disabled (:func:`~apertur.uploads.destinations.disable_destination`);
    - webhook endpoints disabled (``webhooks.update_endpoint(enabled=False)``, audited
      ``webhook_endpoint.updated``); their pending deliveries stop;
    - open upload links of a project that delivered somewhere (an enabled destination or endpoint) closed
      (:func:`close_session`): whoever made them handed them out for that delivery. Closed after the endpoints
      are disabled, so ``session.closed`` goes nowhere."""
    from apertur.webhooks.models import WebhookEndpoint

    found = list(Destination.objects.filter(project__owner=user).exclude(status=DestinationStatus.DISABLED))
    endpoints = list(WebhookEndpoint.objects.filter(project__owner=user, enabled=True).order_by("pk"))
    delivering = {d.project_id for d in found} | {e.project_id for e in endpoints}
    for destination in found:
        destinations.disable_destination(destination=destination, actor=user)
    for endpoint in endpoints:
        webhooks.update_endpoint(endpoint=endpoint, enabled=False, actor=user)
    sessions = list(UploadSession.objects.active().filter(project_id__in=delivering).order_by("pk"))
    for session in sessions:
        close_session(session=session, actor=user)
    return [
        TurnedOff.of(
            "destinations_disabled", len(found), one="upload destination disabled", many="upload destinations disabled"
        ),
        TurnedOff.of(
            "webhook_endpoints_disabled",
            len(endpoints),
            one="webhook endpoint disabled",
            many="webhook endpoints disabled",
        ),
        TurnedOff.of("upload_links_closed", len(sessions), one="upload link closed", many="upload links closed"),
    ]


def delete_stored_file(*, instance: Upload, **_: Any) -> None:
    """``post_delete`` of an :class:`Upload` (apps.py): its file is removed from storage once the deletion commits
    (a rolled-back deletion keeps its file). A file already gone is not an error. A storage that refuses (S3 out of
    reach, a permission) is logged by Django (``robust``): the deletion has committed, and the other files and the
    mails queued after this one must still go."""
    name, storage = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: storage.delete(name), robust=True)
