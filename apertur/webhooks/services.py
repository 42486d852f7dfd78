"""Project event webhooks: endpoints, events, signed deliveries and their retries.

An event is written in the same transaction as the change it reports, with one delivery row per
subscribed endpoint; the attempt runs after commit in a background task (django-tasks), so no accepted
event is lost and nothing is announced that did not happen. Failed attempts are retried with exponential
backoff; receivers dedupe by ``webhook-id``, which is the event id and stays the same on every retry.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
from django.apps import apps
from django.db import transaction
from django.db.models import Exists, OuterRef

from apertur.core import alerts, audit, clock, housekeeping, outbound, ratelimit
from apertur.core.counts import ensure_room
from apertur.core.rolling import ROLL_OVERLAP_MESSAGE, check_replacing, roll_overlap_is_valid
from apertur.core.validation import check_callback_url
from apertur.oauth.selectors import unusable_app_ids
from apertur.projects.models import Plan, Project
from apertur.webhooks import signing
from apertur.webhooks.errors import EndpointLimitReached, EndpointNotFound, InvalidEndpoint
from apertur.webhooks.models import (
    EVENT_TYPES,
    SUBSCRIBABLE_EVENT_TYPES,
    DeliveryAttempt,
    DeliveryStatus,
    RollingSigningSecret,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

MAX_ATTEMPTS = outbound.MAX_ATTEMPTS
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: The whole attempt, up to the response's status line and headers (the body is never read): httpx's timeouts
#: bound each socket operation, so a receiver dripping a byte every few seconds could hold an attempt forever.
ATTEMPT_SECONDS = 15.0
#: Claimed attempts are looked at again no sooner than this after the claim plus the retry delay: an attempt still
#: running (bounded by ATTEMPT_SECONDS, plus one socket timeout to notice) is never sent a second time meanwhile.
_IN_FLIGHT = dt.timedelta(seconds=ATTEMPT_SECONDS + 15)
USER_AGENT = "Apertur-Webhooks/1"
#: How long an event, its deliveries and their attempts (an endpoint's delivery log) are kept: 30 days, as Stripe
#: keeps its events (:func:`prune_old_events`).
EVENTS_KEPT = dt.timedelta(days=30)
DISABLED_ERROR = "not sent: the endpoint is disabled"
APP_PAUSED_ERROR = "not sent: the app that created this endpoint is deactivated or its partner suspended"
#: Webhook endpoints per project and mode (docs/api.md), disabled ones included: every event is sent to each
#: subscribed one, so the limit also bounds what one event costs to deliver.
MAX_ENDPOINTS_PER_PROJECT = 20
#: New endpoints per project and mode in an hour. The cap above is freed by deleting one, and each creation and
#: deletion stays in the audit log: without a budget, create-delete loops grew it without end. Fifty fills every
#: slot twice over, or gives a test suite that makes its own endpoint each run fifty runs an hour.
ENDPOINTS_CREATED_PER_PROJECT = ratelimit.Limit("webhook-endpoint-create-project", 50, 60 * 60)
#: Changes to a project's endpoints per mode in an hour, each audited. Turning an enabled endpoint off is never
#: counted nor refused (it stops deliveries: what an owner does when something goes wrong); deleting neither.
ENDPOINT_CHANGES_PER_PROJECT = ratelimit.Limit("webhook-endpoint-change-project", 100, 60 * 60)
#: Rolls of one signing secret (a webhook endpoint's or an HTTPS destination's: :func:`roll_and_record`) in an hour,
#: each audited. A leak needs one roll, or two to drop the replaced secret at once; ten leaves room for mistakes.
SECRET_ROLLS_PER_HOLDER = ratelimit.Limit("signing-secret-roll", 10, 60 * 60)


def _clean_events(events: Sequence[str] | None) -> list[str]:
    """Left out (``None``): every event. An empty list is refused rather than read as "all": a partner who
    sends ``[]`` to unsubscribe must not end up subscribed to everything."""
    if events is not None and not events:
        raise InvalidEndpoint('Choose at least one event, or "*" for all.', field="events")
    chosen = list(dict.fromkeys(events if events is not None else ["*"]))
    if "webhook.test" in chosen:
        raise InvalidEndpoint(
            '"webhook.test" cannot be subscribed to: it is sent only by "Send test event", to that one endpoint.',
            field="events",
        )
    unknown = [e for e in chosen if e != "*" and e not in SUBSCRIBABLE_EVENT_TYPES]
    if unknown:
        raise InvalidEndpoint(
            f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(SUBSCRIBABLE_EVENT_TYPES)} or *.",
            field="events",
        )
    return chosen


def _clean_url(url: str) -> str:
    """Well formed, and public by the rule every delivery is checked against (core.outbound)."""
    clean = check_callback_url(url, noun="webhook URL", field="url", error=InvalidEndpoint)
    return outbound.check_public_url(clean, noun="webhook URL", field="url", error=InvalidEndpoint)


def _locked(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """The endpoint's row, locked for a change in the caller's transaction; deleted since it was read (another
    request): :class:`EndpointNotFound` (a 404), not a 500."""
    locked = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
    if locked is None:
        raise EndpointNotFound()
    return locked


@transaction.atomic
def create_endpoint(
    *,
    project: Project,
    url: str,
    events: Sequence[str] | None = None,
    description: str = "",
    livemode: bool = True,
    actor: Any = None,
    ip: str | None = None,
    created_by_app_id: int | None = None,
) -> WebhookEndpoint:
    """``created_by_app_id``: the OAuth app whose access token asks (the API), so that the endpoint stops when
    that app loses the project (:func:`disable_endpoints_of_app`)."""
    clean_url = _clean_url(url)
    if len(description) > 200:
        raise InvalidEndpoint("The description is at most 200 characters.", field="description")
    mode = "" if livemode else "test-mode "
    ensure_room(
        owner=project,
        existing=WebhookEndpoint.objects.filter(project=project, livemode=livemode),
        limit=MAX_ENDPOINTS_PER_PROJECT,
        error=EndpointLimitReached(
            f"A project can have at most {MAX_ENDPOINTS_PER_PROJECT} {mode}webhook endpoints. Delete one you no "
            "longer use, then add the new one."
        ),
    )
    ratelimit.hit(ENDPOINTS_CREATED_PER_PROJECT, ratelimit.per_mode(project.pk, livemode), what="new webhook endpoints")
    endpoint = WebhookEndpoint.objects.create(
        project=project,
        url=clean_url,
        events=_clean_events(events),
        description=description.strip(),
        secret=signing.new_secret(),
        livemode=livemode,
        created_by_app_id=created_by_app_id,
    )
    audit.record(action="webhook_endpoint.created", obj=endpoint, actor=actor, ip=ip, data={"url": clean_url})
    return endpoint


@transaction.atomic
def update_endpoint(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    actor: Any = None,
    ip: str | None = None,
    via: str | None = None,
) -> WebhookEndpoint:
    """Change what is given; audited ``webhook_endpoint.updated`` with the names of the fields given, and
    ``enabled`` as it now is when that was one of them. Disabling ends the endpoint's pending deliveries now,
    failed, so enabling it later does not send them (``pending_stopped`` in the audit event; one being sent
    finishes, and :func:`attempt` stops any that slips past). ``via``: the API caller that asked (its identity),
    recorded in the event, as ``actor`` records the person on the dashboard. Past
    :data:`ENDPOINT_CHANGES_PER_PROJECT`: :class:`RateLimited`, nothing changed (turning an enabled endpoint off
    always goes through)."""
    endpoint = _locked(endpoint)
    turning_off = enabled is False and endpoint.enabled and url is None and events is None and description is None
    if url is not None:
        endpoint.url = _clean_url(url)
    if events is not None:
        endpoint.events = _clean_events(events)
    if description is not None:
        if len(description) > 200:
            raise InvalidEndpoint("The description is at most 200 characters.", field="description")
        endpoint.description = description.strip()
    if enabled is not None:
        endpoint.enabled = enabled
    if not turning_off:  # counted once the input is known good: a refused change spends nothing
        key = ratelimit.per_mode(endpoint.project_id, endpoint.livemode)
        ratelimit.hit(ENDPOINT_CHANGES_PER_PROJECT, key, what="changes to webhook endpoints")
    endpoint.save()
    given = {"url": url, "events": events, "description": description, "enabled": enabled}
    data: dict[str, Any] = {"fields": [name for name, value in given.items() if value is not None]}
    if enabled is not None:
        data["enabled"] = enabled
    if via:
        data["via"] = via
    if enabled is False:
        data["pending_stopped"] = WebhookDelivery.objects.filter(
            endpoint=endpoint, status=DeliveryStatus.PENDING
        ).update(status=DeliveryStatus.FAILED, last_error=DISABLED_ERROR, next_attempt_at=None)
    audit.record(action="webhook_endpoint.updated", obj=endpoint, actor=actor, ip=ip, data=data)
    return endpoint


def disable_endpoints_of_app(*, app_id: int, client_id: str, project_id: int | None, **_: Any) -> int:
    """The receiver of ``oauth.signals.app_lost_project``: the enabled endpoints the app created on the project
    (every project when ``project_id`` is None) are disabled as the owner's Disable does (:func:`update_endpoint`:
    pending deliveries end, audited with ``via`` saying why), in the transaction of the disconnection or deletion.
    The owner may enable one again from the project's page. The number disabled."""
    endpoints = WebhookEndpoint.objects.filter(created_by_app_id=app_id, enabled=True)
    if project_id is not None:
        endpoints = endpoints.filter(project_id=project_id)
    disabled = 0
    for endpoint in endpoints.order_by("pk"):
        update_endpoint(endpoint=endpoint, enabled=False, via=f"app {client_id} lost the project")
        disabled += 1
    return disabled


def emit_plan_changed(*, project: Project, old_plan: Plan, new_plan: Plan, **_: Any) -> WebhookEvent:
    """The receiver of ``projects.signals.plan_changed``: the project's ``plan.changed`` event, in the transaction
    of the change."""
    return emit(
        project=project,
        type="plan.changed",
        data={"plan": {"from": old_plan.name, "to": new_plan.name, **new_plan.as_json()}},
    )


def rotate_secret(
    *,
    endpoint: WebhookEndpoint,
    expire_previous_in: dt.timedelta,
    actor: Any = None,
    ip: str | None = None,
    replacing: str | None = None,
) -> WebhookEndpoint:
    """Give the endpoint a new signing secret; the one it replaces keeps signing too (both signatures in
    ``webhook-signature``) for ``expire_previous_in``: zero stops it at once, at most
    ``core.rolling.MAX_PREVIOUS_SECRET_OVERLAP`` (the rules: ``RollingSigningSecret.roll_secret``). ``replacing``:
    the roll form's name of the secret it replaces (``core.rolling.check_replacing``)."""
    if not roll_overlap_is_valid(expire_previous_in):
        raise InvalidEndpoint(ROLL_OVERLAP_MESSAGE, field="expire_previous_in")
    with transaction.atomic():
        locked = _locked(endpoint)
        check_replacing(current=locked.secret, replacing=replacing)
        roll_and_record(
            locked, expire_previous_in=expire_previous_in, action="webhook_endpoint.secret_rotated", actor=actor, ip=ip
        )
    return locked


def roll_and_record(
    locked: RollingSigningSecret, *, expire_previous_in: dt.timedelta, action: str, actor: Any, ip: str | None
) -> None:
    """Roll the secret of a row locked in the caller's transaction (its overlap checked), save it, and audit it
    under ``action`` with when the replaced secret stops signing — never a secret. Past
    :data:`SECRET_ROLLS_PER_HOLDER` for this row: :class:`RateLimited`, nothing changed."""
    ratelimit.hit(SECRET_ROLLS_PER_HOLDER, f"{locked._meta.label_lower}|{locked.pk}", what="signing secret rolls")
    dropped_older = locked.roll_secret(at=clock.now(), keep_previous_for=expire_previous_in)
    # ``secret`` is each concrete model's own field (the abstract model only names it).
    locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])  # type: ignore[misc]
    expires = locked.previous_secret_expires_at
    data = {
        "previous_secret_expires_at": expires.isoformat() if expires else None,
        "dropped_older_previous_secret": dropped_older,
    }
    audit.record(action=action, obj=locked, actor=actor, ip=ip, data=data)


def clear_expired_previous_secrets(at: dt.datetime) -> int:
    """Forget rolled secrets whose overlap has ended (the worker's housekeeping, hourly): one that signs nothing
    more has no reason to stay in the database. Returns how many rows were cleared. The filter is on the
    expiry, so a roll made meanwhile (a later expiry) is never cleared by mistake. Every model with a rolling
    secret (``RollingSigningSecret``: webhook endpoints, HTTPS destinations) is cleared."""
    cleared = 0
    for model in apps.get_models():
        if issubclass(model, RollingSigningSecret):
            cleared += model._default_manager.filter(previous_secret_expires_at__lte=at).update(
                previous_secret="", previous_secret_expires_at=None
            )
    return cleared


@transaction.atomic
def delete_endpoint(
    *, endpoint: WebhookEndpoint, actor: Any = None, ip: str | None = None, via: str | None = None
) -> None:
    # Locked before its deliveries are collected: an event emitted meanwhile (which locks the endpoint too) has
    # committed its delivery, deleted with it, or waits and finds the endpoint gone.
    locked = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
    if locked is None:
        return  # deleted meanwhile (another request)
    data = {"url": locked.url, **({"via": via} if via else {})}  # via: the API caller (update_endpoint)
    audit.record(action="webhook_endpoint.deleted", obj=locked, actor=actor, ip=ip, data=data)
    locked.delete()


def emit(*, project: Project, type: str, data: dict[str, Any], livemode: bool = True) -> WebhookEvent:
    """Record an event and its deliveries in the caller's transaction. The tasks that attempt them are
    queued in the same transaction (django-tasks' database backend), so a committed event always has its
    attempts queued, and a rolled-back change queues nothing."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type}")
    event = WebhookEvent.objects.create(project=project, type=type, data=data, livemode=livemode)
    # Locked (FOR NO KEY UPDATE) until the caller commits: an endpoint deleted meanwhile is waited for and skipped,
    # where its delivery's foreign key used to fail the caller's whole transaction (a guest's upload) at commit.
    # An endpoint an app created is paused while the app may not be used (deactivated, its partner suspended): its
    # tokens are refused, and the project's events must not reach its partner's server either.
    subscribed = (
        WebhookEndpoint.objects.select_for_update(no_key=True)
        .filter(project=project, livemode=livemode, enabled=True)
        .exclude(created_by_app_id__in=unusable_app_ids())
    )
    endpoints = [e for e in subscribed.order_by("pk") if e.wants(type)]
    deliveries = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(event=event, endpoint=e, next_attempt_at=clock.now()) for e in endpoints]
    )
    _enqueue([d.pk for d in deliveries])
    return event


def _why_not_sent(delivery: WebhookDelivery) -> str:
    """Why a delivery queued earlier must not be sent now, or "". A test event asked for this endpoint alone goes
    anyway (:func:`send_test_event`)."""
    if delivery.event.type == "webhook.test":
        return ""
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        return DISABLED_ERROR  # disabled since it was queued (update_endpoint ends the pending ones it sees)
    if endpoint.created_by_app_id is not None and unusable_app_ids().filter(pk=endpoint.created_by_app_id).exists():
        return APP_PAUSED_ERROR  # its app deactivated or its partner suspended since (emit queues none then)
    return ""


#: Test events per project owner, across their projects and endpoints: each is a POST to an address the owner typed,
#: retried when it fails, so without a budget anyone who signed up could have Apertur's workers flood a third party.
TEST_EVENTS_PER_OWNER = ratelimit.Limit("webhook-test-owner", 30, 60 * 60)


def send_test_event(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """The dashboard's "send test event": one ``webhook.test`` event to this endpoint only, sent even while the
    endpoint is disabled (:func:`attempt`): the owner checks a receiver before enabling it. Past
    :data:`TEST_EVENTS_PER_OWNER`: :class:`RateLimited`, nothing queued."""
    ratelimit.hit(TEST_EVENTS_PER_OWNER, str(endpoint.project.owner_id))
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            project=endpoint.project,
            type="webhook.test",
            data={"message": "This is a test event from Apertur.", "endpoint": endpoint.public_id},
            livemode=endpoint.livemode,
        )
        delivery = WebhookDelivery.objects.create(event=event, endpoint=endpoint, next_attempt_at=clock.now())
        _enqueue([delivery.pk])
    return delivery


def _enqueue(delivery_ids: list[int], run_after: dt.datetime | None = None) -> None:
    from apertur.webhooks.tasks import deliver_webhook

    task = deliver_webhook.using(run_after=run_after) if run_after else deliver_webhook
    for pk in delivery_ids:
        task.enqueue(pk)


def payload(event: WebhookEvent) -> bytes:
    body = {
        "id": event.public_id,
        "type": event.type,
        "timestamp": event.created_at.isoformat(),
        "livemode": event.livemode,
        "data": event.data,
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def attempt(*, delivery_id: int, client: httpx.Client | None = None) -> WebhookDelivery:
    """Make one attempt if the delivery is due and pending; record it; schedule the next on failure."""
    with transaction.atomic():
        # The delivery's row only (``of``): the endpoint's, joined, would be locked after it, the reverse of
        # update_endpoint's order (a deadlock when disabling), and every event of the endpoint would wait.
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("event", "endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return delivery  # type: ignore[return-value]
        if delivery.next_attempt_at and delivery.next_attempt_at > clock.now():
            return delivery
        not_sent = _why_not_sent(delivery)
        if not_sent:
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = not_sent
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
            return delivery
        if delivery.attempts >= MAX_ATTEMPTS:
            # The final check: the last attempt never reported back (its worker died). Give up visibly.
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = delivery.last_error or "the last attempt did not complete"
            delivery.next_attempt_at = None
            delivery.save(update_fields=["status", "last_error", "next_attempt_at"])
            _tell_owner_given_up(delivery)
            return delivery
        # Claim this attempt before the network call, so a second worker does not send it again, and
        # queue the next look at it now: if this worker dies mid-attempt, the delivery is not lost.
        delivery.attempts += 1
        number = delivery.attempts
        delivery.next_attempt_at = clock.now() + _IN_FLIGHT + outbound.delay_after(number)
        delivery.save(update_fields=["attempts", "next_attempt_at"])
        _enqueue([delivery.pk], delivery.next_attempt_at)
    event, endpoint = delivery.event, delivery.endpoint
    body = payload(event)
    now = clock.now()
    timestamp = int(now.timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signing.headers(
            secrets=endpoint.signing_secrets(now), msg_id=event.public_id, timestamp=timestamp, body=body
        ),
    }
    status_code: int | None = None
    error = ""
    started, started_at = time.monotonic(), clock.now()
    try:
        outbound.check_destination(endpoint.url)
        status_code = _post(endpoint.url, body=body, headers=headers, client=client)
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except outbound.BlockedDestination as exc:
        error = f"blocked: {exc}"[:300]  # the host may be long: the log keeps 300 characters
    except outbound.AttemptTimedOut as exc:
        error = str(exc)
    except Exception as exc:  # any failure is a failed attempt, retried on schedule, never a lost delivery
        error = f"{type(exc).__name__}: {exc}"[:300]
    duration = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        # Disabling the endpoint while this was being sent ended the delivery (failed): a failure must not make it
        # pending again, to be sent once the endpoint is enabled.
        locked = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk)
        status = locked.values_list("status", flat=True).first()
        if status is None:
            # Deleted while it was being sent, with its endpoint (or event): nothing is left to record or retry.
            return delivery
        ended = status != DeliveryStatus.PENDING
        DeliveryAttempt.objects.create(  # dated when it was sent (with its duration), as the log reads
            delivery=delivery, number=number, at=started_at, status_code=status_code, error=error, duration_ms=duration
        )
        delivery.last_status_code = status_code
        delivery.last_error = error
        if not error:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.delivered_at = clock.now()
            delivery.next_attempt_at = None
        elif number >= MAX_ATTEMPTS or ended:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            if not ended:  # given up after its last retry (an endpoint disabled meanwhile ended it: no news)
                _tell_owner_given_up(delivery)
        else:  # the retry delay counts from this failure, not from when the attempt started
            delivery.next_attempt_at = clock.now() + outbound.delay_after(number)
            _enqueue([delivery.pk], delivery.next_attempt_at)
        delivery.save(update_fields=["last_status_code", "last_error", "status", "delivered_at", "next_attempt_at"])
    return delivery


def _tell_owner_given_up(delivery: WebhookDelivery) -> None:
    """A delivery failed for good after its last retry, which only the endpoint's log showed: its project's owner
    is emailed (after the commit) which endpoint and event, the last answer and where to look — once a day per
    endpoint however many events it drops (:func:`alerts.notice_once`). Never for a test event: its sender
    watches the log."""
    endpoint, event = delivery.endpoint, delivery.event
    if event.type == "webhook.test":
        return
    project = Project.objects.select_related("owner").get(pk=endpoint.project_id)
    alerts.notice_once(
        action="webhook_endpoint.failing_notice",
        about=endpoint,
        data={"event": event.public_id},
        to=project.owner.email,
        subject=f"Apertur could not deliver a webhook to {endpoint.url}"[:200],
        template="emails/webhook_given_up",
        context={"endpoint": endpoint, "event": event, "delivery": delivery, "project": project},
    )


def _post(url: str, *, body: bytes, headers: dict[str, str], client: httpx.Client | None) -> int:
    """POST and return the status code, within :data:`ATTEMPT_SECONDS` in all: the response body is never read,
    and a watchdog closes our own client at the deadline (the blocked read then fails at its next socket
    operation). A client passed in (tests) is the caller's to bound."""
    if client is not None:
        with client.stream("POST", url, content=body, headers=headers) as response:
            return response.status_code
    sent = outbound.send_bounded("POST", url, content=body, headers=headers, timeout=TIMEOUT, seconds=ATTEMPT_SECONDS)
    return sent[0]


def prune_old_events(at: dt.datetime) -> int:
    """The hourly housekeeping's pass for events: each is deleted with its deliveries and their attempts
    :data:`EVENTS_KEPT` after it happened, once none of its deliveries is still pending (the last retry comes
    about 31 hours after the event; one still pending at 30 days, its worker down for weeks, keeps the event until
    it ends)."""
    pending = WebhookDelivery.objects.filter(event=OuterRef("pk"), status=DeliveryStatus.PENDING)
    return housekeeping.delete_in_batches(
        WebhookEvent.objects.filter(created_at__lt=at - EVENTS_KEPT).exclude(Exists(pending))
    )


def requeue_overdue(at: dt.datetime) -> int:
    """The hourly housekeeping's pass for deliveries whose queued look was lost (:func:`outbound.requeue_overdue`)."""
    return outbound.requeue_overdue(WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING), _enqueue, at)


def run_due(*, client: httpx.Client | None = None, limit: int = 100) -> int:
    """Attempt every pending delivery that is due (the worker's safety net, and what tests drive)."""
    due = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=clock.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        attempt(delivery_id=pk, client=client)
    return len(due)
