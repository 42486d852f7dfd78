"""Delivering uploads to a project's destinations: an HTTPS endpoint (the file as the request body, signed
like webhooks) or an S3-compatible bucket. Apertur's own storage always keeps the file too.

Deliveries are recorded with the upload, in its transaction, and attempted after commit by a background
task, with the same retry schedule and SSRF guard as webhooks."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import boto3
import httpx
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config as BotoConfig
from django.db import transaction

from apertur.core import alerts, audit, clock, outbound, ratelimit
from apertur.core.counts import ensure_room
from apertur.core.rolling import ROLL_OVERLAP_MESSAGE, check_replacing, roll_overlap_is_valid
from apertur.core.validation import check_callback_url
from apertur.projects.models import Project
from apertur.uploads.errors import DestinationLimitReached, InvalidDestination
from apertur.uploads.models import (
    Destination,
    DestinationDelivery,
    DestinationKind,
    DestinationStatus,
    Upload,
)
from apertur.webhooks import signing
from apertur.webhooks.services import roll_and_record

BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
DISABLED_ERROR = "not sent: the destination is disabled"
FILE_GONE_ERROR = "The photo's file is no longer in Apertur's storage."

logger = logging.getLogger(__name__)
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
#: One copy in all, up to the answer's status line and headers (an HTTPS receiver's body is never read; an S3
#: answer's is read up to MAX_ANSWER_BYTES): httpx's timeouts bound each socket operation only, so a receiver
#: dripping a byte at a time could hold the attempt, and the worker, forever. Longer than a webhook's: the request
#: carries the file.
ATTEMPT_SECONDS = 120.0
#: An S3 answer to a PUT is a short XML document (an error) or nothing: a longer one is not read into memory.
MAX_ANSWER_BYTES = 1_048_576
#: Destinations per project and mode (docs/api.md), disabled ones included: every upload is copied to each one, so
#: the limit bounds what one upload costs to deliver, and ``GET /destinations`` (not paged) stays short.
MAX_DESTINATIONS_PER_PROJECT = 10
#: Destinations created per project and mode in an hour. The cap above is freed by removing one, and each creation
#: and removal stays in the audit log: create-remove loops grew it without end. Fifty fills every slot five times.
CREATED_PER_PROJECT = ratelimit.Limit("destination-create-project", 50, 60 * 60)
#: Disabled destinations enabled again per project and mode in an hour, each audited: a disable-enable loop wrote two
#: audit events a turn without end. Fifty is every slot switched back on five times. Disabling stops copies leaving
#: Apertur (what an owner does when something goes wrong): never counted nor refused; removing neither.
ENABLED_PER_PROJECT = ratelimit.Limit("destination-enable-project", 50, 60 * 60)
#: Access key replacements of one S3 destination in an hour, each audited. As a signing secret's rolls
#: (``webhooks.services.SECRET_ROLLS_PER_HOLDER``): a rotated key needs one; ten leaves room for a mistyped key found
#: by a failing copy and replaced again.
ACCESS_KEY_REPLACEMENTS_PER_DESTINATION = ratelimit.Limit("destination-access-key", 10, 60 * 60)
#: A claimed copy is looked at again no sooner than this after the claim plus the retry delay, so one still being
#: sent (bounded by ATTEMPT_SECONDS, plus a socket timeout to notice) is never sent a second time meanwhile.
_IN_FLIGHT = dt.timedelta(seconds=ATTEMPT_SECONDS + 30)


def _request(
    method: str, url: str, *, body: bytes, headers: Any, read_answer: bool
) -> tuple[int, Sequence[tuple[str, str]], bytes]:
    """:func:`outbound.send_bounded` within :data:`ATTEMPT_SECONDS`; the answer's body, when ``read_answer``, at
    most :data:`MAX_ANSWER_BYTES` of it. Past the deadline, :class:`outbound.AttemptTimedOut`."""
    return outbound.send_bounded(
        method,
        url,
        content=body,
        headers=headers,
        timeout=TIMEOUT,
        seconds=ATTEMPT_SECONDS,
        read_limit=MAX_ANSWER_BYTES if read_answer else 0,
    )


def _check_room(*, project: Project, livemode: bool) -> None:
    """Room for one more destination: under the cap, then within :data:`CREATED_PER_PROJECT` (counted last, so a
    creation the cap refuses spends nothing). Call it after the input is checked, in the creating transaction."""
    ensure_room(
        owner=project,
        existing=Destination.objects.filter(project=project, livemode=livemode),
        limit=MAX_DESTINATIONS_PER_PROJECT,
        error=DestinationLimitReached(
            f"A project can have at most {MAX_DESTINATIONS_PER_PROJECT} {'' if livemode else 'test-mode '}"
            "destinations. Remove one you no longer use, then add the new one."
        ),
    )
    ratelimit.hit(CREATED_PER_PROJECT, ratelimit.per_mode(project.pk, livemode), what="new destinations")


@transaction.atomic
def create_https_destination(
    *, project: Project, name: str, url: str, livemode: bool = True, actor: Any = None, ip: str | None = None
) -> Destination:
    clean_url = check_callback_url(url, noun="destination URL", field="url", error=InvalidDestination)
    clean_url = outbound.check_public_url(clean_url, noun="destination URL", field="url", error=InvalidDestination)
    name = _name(name)
    _check_room(project=project, livemode=livemode)
    destination = Destination.objects.create(
        project=project,
        kind=DestinationKind.HTTPS,
        name=name,
        config={"url": clean_url},
        secret=signing.new_secret(),
        livemode=livemode,
    )
    audit.record(action="destination.created", obj=destination, actor=actor, ip=ip, data={"kind": "https"})
    return destination


@transaction.atomic
def create_s3_destination(
    *,
    project: Project,
    name: str,
    bucket: str,
    access_key_id: str,
    secret_access_key: str,
    region: str = "us-east-1",
    endpoint_url: str = "",
    prefix: str = "",
    livemode: bool = True,
    actor: Any = None,
    ip: str | None = None,
) -> Destination:
    import re

    if not re.match(BUCKET_NAME, bucket.strip()):
        raise InvalidDestination(
            "Enter a valid bucket name (3 to 63 lowercase letters, digits, dots, hyphens).", field="bucket"
        )
    key_id, secret = _s3_credentials(access_key_id, secret_access_key)
    endpoint = endpoint_url.strip()
    if endpoint:
        endpoint = check_callback_url(endpoint, noun="S3 endpoint", field="endpoint_url", error=InvalidDestination)
        endpoint = outbound.check_public_url(
            endpoint, noun="S3 endpoint", field="endpoint_url", error=InvalidDestination
        )
    name = _name(name)
    _check_room(project=project, livemode=livemode)
    destination = Destination.objects.create(
        project=project,
        kind=DestinationKind.S3,
        name=name,
        config={
            "bucket": bucket.strip(),
            "region": region.strip() or "us-east-1",
            "endpoint_url": endpoint,
            "prefix": prefix.strip().strip("/"),
            "access_key_id": key_id,
        },
        secret=secret,
        livemode=livemode,
    )
    audit.record(action="destination.created", obj=destination, actor=actor, ip=ip, data={"kind": "s3"})
    return destination


def _s3_credentials(access_key_id: str, secret_access_key: str) -> tuple[str, str]:
    """An S3 access key as given (trimmed): both parts, and a secret that fits its column (a longer one failed the
    save on PostgreSQL, a 500)."""
    key_id, secret = access_key_id.strip(), secret_access_key.strip()
    if not key_id or not secret:
        raise InvalidDestination("Enter the access key id and the secret access key.", field="access_key_id")
    longest = Destination._meta.get_field("secret").max_length or 0
    if len(secret) > longest:
        raise InvalidDestination(
            f"The secret access key is at most {longest} characters: paste the secret access key alone.",
            field="secret_access_key",
        )
    return key_id, secret


def _name(name: str) -> str:
    clean = " ".join(name.split())
    if not 1 <= len(clean) <= 80:
        raise InvalidDestination("Name the destination (1 to 80 characters).", field="name")
    return clean


def _locked(destination: Destination) -> Destination:
    """The destination's row, locked for a change in the caller's transaction; removed since it was read:
    :class:`InvalidDestination` on no field (the page says it is gone)."""
    locked = Destination.objects.select_for_update().filter(pk=destination.pk).first()
    if locked is None:
        raise InvalidDestination("This destination was removed.")
    return locked


def rotate_secret(
    *,
    destination: Destination,
    expire_previous_in: dt.timedelta,
    actor: Any = None,
    ip: str | None = None,
    replacing: str | None = None,
) -> Destination:
    """Give an HTTPS destination a new signing secret; the one it replaces keeps signing too (both signatures in
    ``webhook-signature``) for ``expire_previous_in``, as a webhook endpoint's roll does (the same rules:
    ``RollingSigningSecret.roll_secret``). An S3 destination has no signing secret: its access key is replaced
    with :func:`replace_s3_credentials`."""
    if destination.kind != DestinationKind.HTTPS:
        raise InvalidDestination("Only an HTTPS destination has a signing secret to roll.")
    if not roll_overlap_is_valid(expire_previous_in):
        raise InvalidDestination(ROLL_OVERLAP_MESSAGE, field="expire_previous_in")
    with transaction.atomic():
        locked = _locked(destination)
        check_replacing(current=locked.secret, replacing=replacing)  # the roll form's (core.rolling)
        roll_and_record(
            locked, expire_previous_in=expire_previous_in, action="destination.secret_rotated", actor=actor, ip=ip
        )
    return locked


def replace_s3_credentials(
    *,
    destination: Destination,
    access_key_id: str,
    secret_access_key: str,
    actor: Any = None,
    ip: str | None = None,
) -> Destination:
    """Put copies to an S3 destination's bucket with another access key (the owner rotated theirs). The next
    attempt of a failing copy uses it; the destination's history stays. Past
    :data:`ACCESS_KEY_REPLACEMENTS_PER_DESTINATION`: :class:`RateLimited`, the key unchanged."""
    if destination.kind != DestinationKind.S3:
        raise InvalidDestination("Only an S3 destination has an access key.")
    key_id, secret = _s3_credentials(access_key_id, secret_access_key)
    with transaction.atomic():
        locked = _locked(destination)
        ratelimit.hit(ACCESS_KEY_REPLACEMENTS_PER_DESTINATION, str(locked.pk), what="access key replacements")
        locked.config = {**locked.config, "access_key_id": key_id}
        locked.secret = secret
        locked.save(update_fields=["config", "secret"])
        audit.record(
            action="destination.credentials_replaced", obj=locked, actor=actor, ip=ip, data={"access_key_id": key_id}
        )
    return locked


@transaction.atomic
def disable_destination(*, destination: Destination, actor: Any = None, ip: str | None = None) -> Destination:
    """Stop copying uploads to the destination, keeping it (and its history) to look at: new uploads are not
    scheduled to it and its pending copies end now, failed, so enabling it later does not send them (a copy
    already being sent finishes; :func:`attempt` stops any that slips past). Audited ``destination.disabled``
    with the number of copies stopped."""
    locked = _locked(destination)
    if locked.status != DestinationStatus.DISABLED:
        locked.status = DestinationStatus.DISABLED
        locked.save(update_fields=["status"])
        stopped = DestinationDelivery.objects.filter(destination=locked, status="pending").update(
            status="failed", last_error=DISABLED_ERROR, next_attempt_at=None
        )
        data = {"name": locked.name, "pending_stopped": stopped}
        audit.record(action="destination.disabled", obj=locked, actor=actor, ip=ip, data=data)
    return locked


@transaction.atomic
def enable_destination(*, destination: Destination, actor: Any = None, ip: str | None = None) -> Destination:
    """Copy new uploads to a disabled destination again (the owner's choice on its page, after an account claim
    turned it off: :func:`~apertur.uploads.services.turn_off_deliveries_of_claimed_account`). Uploads made while
    it was disabled are not copied later: it starts from the next one. Its last error goes with the pause, the
    copies' log keeps each one's. Audited ``destination.enabled``. Past :data:`ENABLED_PER_PROJECT`:
    :class:`RateLimited`, still disabled (one already on spends nothing: nothing is written)."""
    locked = _locked(destination)
    if locked.status == DestinationStatus.DISABLED:
        key = ratelimit.per_mode(locked.project_id, locked.livemode)
        ratelimit.hit(ENABLED_PER_PROJECT, key, what="destinations enabled")
        locked.status = DestinationStatus.ACTIVE
        locked.last_error = ""
        locked.save(update_fields=["status", "last_error"])
        audit.record(action="destination.enabled", obj=locked, actor=actor, ip=ip, data={"name": locked.name})
    return locked


@transaction.atomic
def delete_destination(*, destination: Destination, actor: Any = None, ip: str | None = None) -> None:
    # Locked before its deliveries are collected, as webhooks.services.delete_endpoint (schedule() locks it too).
    locked = Destination.objects.select_for_update().filter(pk=destination.pk).first()
    if locked is None:
        return  # deleted meanwhile (another request)
    audit.record(action="destination.deleted", obj=locked, actor=actor, ip=ip, data={"name": locked.name})
    locked.delete()


def schedule(*, upload: Upload) -> None:
    """Record a delivery to every active destination of the upload's project, in the caller's transaction."""
    # Locked (FOR NO KEY UPDATE) until the upload commits: a destination deleted meanwhile is waited for and
    # skipped, where its delivery's foreign key used to fail the upload at commit (webhooks.services.emit).
    destinations = (
        Destination.objects.select_for_update(no_key=True)
        .filter(project_id=upload.project_id, livemode=upload.livemode)
        .exclude(status=DestinationStatus.DISABLED)
        .order_by("pk")
    )
    rows = DestinationDelivery.objects.bulk_create(
        [DestinationDelivery(upload=upload, destination=d, next_attempt_at=clock.now()) for d in destinations]
    )
    _enqueue([r.pk for r in rows])  # queued in the same transaction (see webhooks.services.emit)


def _enqueue(ids: list[int], run_after: Any = None) -> None:
    from apertur.uploads.tasks import deliver_to_destination

    task = deliver_to_destination.using(run_after=run_after) if run_after else deliver_to_destination
    for pk in ids:
        task.enqueue(pk)


def _send_https(destination: Destination, upload: Upload, body: bytes) -> None:
    outbound.check_destination(destination.config["url"])
    now = clock.now()
    timestamp = int(now.timestamp())
    msg_id = f"{upload.public_id}"
    headers = {
        "content-type": upload.content_type,
        "apertur-upload-id": upload.public_id,
        "apertur-session-id": upload.session.public_id,
        "apertur-file-name": quote(upload.original_name),
        **signing.headers(secrets=destination.signing_secrets(now), msg_id=msg_id, timestamp=timestamp, body=body),
    }
    status_code, _, _ = _request("POST", destination.config["url"], body=body, headers=headers, read_answer=False)
    if not 200 <= status_code < 300:
        raise RuntimeError(f"HTTP {status_code}")


def s3_key(destination: Destination, upload: Upload) -> str:
    extension = (upload.file.name or "").rsplit(".", 1)[-1]
    parts = [
        destination.config.get("prefix", ""),
        upload.project.public_id,
        upload.session.public_id,
        f"{upload.public_id}.{extension}",
    ]
    return "/".join(p for p in parts if p)


class _Body:
    """What botocore reads an HTTP response's body from (``AWSResponse.raw``): the bytes httpx has read."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, *_: Any, **__: Any) -> list[bytes]:
        return [self._content]

    def read(self, *_: Any, **__: Any) -> bytes:
        return self._content


def _send_through_checked_client(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
    """botocore's ``before-send`` hook: the signed request goes out through :func:`outbound.http_client`, which
    connects only to an address it has checked, instead of botocore's own connection pool, which would resolve
    the bucket's host again after the check (DNS rebinding to a private address). A response returned here is
    the one botocore parses (errors included), as if its own pool had received it."""
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    # Expect: 100-continue is not signed (botocore leaves it out of SigV4) and httpx sends the body at once.
    headers = [(k, v) for k, v in request.headers.items() if k.lower() != "expect"]
    status_code, answer_headers, content = _request(
        request.method, request.url, body=body or b"", headers=headers, read_answer=True
    )
    return AWSResponse(request.url, status_code, httpx.Headers(answer_headers), _Body(content))


def _send_s3(destination: Destination, upload: Upload, body: bytes) -> None:
    config = destination.config
    if config.get("endpoint_url"):
        outbound.check_destination(config["endpoint_url"])
    client = boto3.client(
        "s3",
        endpoint_url=config.get("endpoint_url") or None,
        region_name=config.get("region") or "us-east-1",
        aws_access_key_id=config["access_key_id"],
        aws_secret_access_key=destination.secret,
        # No trailing (aws-chunked) checksum: the body is sent whole, with its length, over TLS.
        config=BotoConfig(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 1},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    client.meta.events.register("before-send.s3", _send_through_checked_client)
    client.put_object(
        Bucket=config["bucket"],
        Key=s3_key(destination, upload),
        Body=body,
        ContentType=upload.content_type,
        Metadata={"apertur-upload-id": upload.public_id, "original-name": quote(upload.original_name)},
    )


def attempt(*, delivery_id: int) -> DestinationDelivery | None:
    with transaction.atomic():
        # The copy's row only (``of``): the destination's, joined, would be locked after it, the reverse of
        # disable_destination's order (a deadlock), and locking the upload's session and project held up uploads.
        delivery = (
            DestinationDelivery.objects.select_for_update(of=("self",))
            .select_related("upload__session", "upload__project", "destination")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != "pending":
            return delivery
        if delivery.next_attempt_at and delivery.next_attempt_at > clock.now():
            return delivery
        if delivery.destination.status == DestinationStatus.DISABLED:
            # Disabled since it was queued (disable_destination ends the pending ones it sees).
            delivery.status = "failed"
            delivery.last_error = DISABLED_ERROR
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
            return delivery
        if delivery.attempts >= outbound.MAX_ATTEMPTS:
            delivery.status = "failed"
            delivery.last_error = delivery.last_error or "the last attempt did not complete"
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
            _tell_owner_given_up(delivery, delivery.destination)
            return delivery
        delivery.attempts += 1
        number = delivery.attempts
        delivery.next_attempt_at = clock.now() + _IN_FLIGHT + outbound.delay_after(number)
        delivery.save(update_fields=["attempts", "next_attempt_at"])
        _enqueue([delivery.pk], delivery.next_attempt_at)  # the next look, queued before the transfer
    destination, upload = delivery.destination, delivery.upload
    error = ""
    try:
        with upload.file.open("rb") as fh:
            body = fh.read()
        if destination.kind == DestinationKind.HTTPS:
            _send_https(destination, upload, body)
        else:
            _send_s3(destination, upload, body)
    except outbound.BlockedDestination as exc:
        error = f"blocked: {exc}"[:300]  # the host may be long: the log keeps 300 characters
    except FileNotFoundError:
        # Storage switched without its files, a restore without them: said without the server's path (the owner
        # reads this error), which the log keeps.
        logger.warning(
            "destination copy %s: the file %s of upload %s is not in storage",
            delivery.pk,
            upload.file.name,
            upload.public_id,
        )
        error = FILE_GONE_ERROR
    except Exception as exc:  # any failure is a failed attempt, retried on schedule
        error = f"{type(exc).__name__}: {exc}"[:300]
    with transaction.atomic():
        # The destination's row first, then the copy's, as disable_destination locks them: the other order
        # deadlocked with a disabling (PostgreSQL).
        list(Destination.objects.select_for_update().filter(pk=destination.pk).values_list("pk", flat=True))
        # A disabling while this copy was being sent ended it (failed): a failure must not make it pending again,
        # to go out once the destination is enabled.
        locked = DestinationDelivery.objects.select_for_update().filter(pk=delivery.pk)
        status = locked.values_list("status", flat=True).first()
        if status is None:
            # Deleted while it was being sent, with its upload or its destination: nothing is left to record or
            # retry (and a deleted upload says nothing about whether the destination works).
            return delivery
        ended = status != "pending"
        now = clock.now()
        delivery.last_error = error
        if not error:
            delivery.status = "succeeded"
            delivery.delivered_at = now
            delivery.next_attempt_at = None
        elif number >= outbound.MAX_ATTEMPTS or ended:
            delivery.status = "failed"
            delivery.next_attempt_at = None
            if not ended:  # given up after its last retry (a disabling meanwhile ended it: no news)
                _tell_owner_given_up(delivery, destination)
        else:  # the retry delay counts from this failure (the docs' schedule), not from the claim
            delivery.next_attempt_at = now + outbound.delay_after(number)
            _enqueue([delivery.pk], delivery.next_attempt_at)
        delivery.save(update_fields=["status", "last_error", "delivered_at", "next_attempt_at"])
        # An attempt already under way when the destination was disabled must not turn it back on.
        Destination.objects.filter(pk=destination.pk).exclude(status=DestinationStatus.DISABLED).update(
            status=DestinationStatus.ACTIVE if not error else DestinationStatus.FAILING,
            last_error=error,
            **({"last_delivery_at": now} if not error else {}),
        )
    return delivery


def _tell_owner_given_up(delivery: DestinationDelivery, destination: Destination) -> None:
    """A copy failed for good after its last retry: a guest's photo that never reached the owner's storage. A later
    copy that succeeds sets the destination back to active, so the owner is emailed the destination, the file and
    the last error — once a day per destination (:func:`alerts.notice_once`), after the commit."""
    upload = delivery.upload
    project = Project.objects.select_related("owner").get(pk=destination.project_id)
    alerts.notice_once(
        action="destination.failing_notice",
        about=destination,
        data={"upload": upload.public_id},
        to=project.owner.email,
        subject=f"A photo could not be copied to “{destination.name}”"[:200],
        template="emails/destination_given_up",
        context={"destination": destination, "upload": upload, "delivery": delivery, "project": project},
    )


def requeue_overdue(at: dt.datetime) -> int:
    """The hourly housekeeping's pass for copies whose queued look was lost (:func:`outbound.requeue_overdue`)."""
    return outbound.requeue_overdue(DestinationDelivery.objects.filter(status="pending"), _enqueue, at)


def run_due(*, limit: int = 100) -> int:
    due = list(
        DestinationDelivery.objects.filter(status="pending", next_attempt_at__lte=clock.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        attempt(delivery_id=pk)
    return len(due)
