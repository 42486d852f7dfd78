"""The /api/v1 resources, one router each.

No `from __future__ import annotations` here: django-ninja reads the handlers' annotations at import, and
the idempotency decorator's wrapper would resolve string annotations in the wrong module."""

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema
from pydantic import ConfigDict, create_model, field_validator

from apertur.api.auth import ApiAuth
from apertur.api.idempotency import idempotent
from apertur.api.pagination import paginate
from apertur.core import clock
from apertur.core.errors import NotFound
from apertur.core.http import client_ip
from apertur.projects.models import ApiKey, Plan, Project
from apertur.projects.selectors import api_key_list
from apertur.uploads import selectors as upload_selectors
from apertur.uploads import services as upload_services
from apertur.uploads.models import Upload, UploadSession
from apertur.webhooks import selectors as webhook_selectors
from apertur.webhooks import services as webhook_services
from apertur.webhooks.models import WebhookDelivery, WebhookEndpoint


def _caller(request: HttpRequest) -> Any:
    from apertur.api.v1 import caller

    return caller(request)


def _json(data: Any, status: int = 200) -> HttpResponse:
    from apertur.api.v1 import json_response

    return json_response(data, status)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def _refuse_null(value: Any) -> Any:
    """A PATCH field sent as ``null`` that has no empty value: a 422 naming it (a field left out is not
    validated, so it is still kept). Applied as a model's ``_not_null`` field validator."""
    if value is None:
        raise ValueError("this field cannot be null; leave it out to keep it")
    return value


def _schema_without_refused_nulls(schema: dict[str, Any], model: type[Any]) -> None:
    """The JSON schema of a body whose ``_not_null`` validator refuses null for some fields: those fields are
    optional (typed ``X | None`` with the default None, so that a field left out is kept) but not nullable, and
    the schema says so, instead of offering null to a client that would then be refused with a 422."""
    validator = model.__pydantic_decorators__.field_validators.get("_not_null")
    for name in validator.info.fields if validator else ():
        field = schema["properties"][name]
        options = [option for option in field.pop("anyOf", [field]) if option.get("type") != "null"]
        field.update(options[0])


class BodyIn(Schema):
    """A JSON request body: strict types, so ``"12"`` is not an integer nor ``"yes"`` a boolean (the schema
    says what it takes), and no member the operation does not take: a misspelt ``max_file`` would otherwise
    create a session without the limit its caller asked for (the schema says ``additionalProperties: false``).
    Query parameters stay lax: in a URL everything is a string."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_schema_without_refused_nulls)


# ?limit= on every list: the bounds apertur.api.pagination enforces, stated in the schema.
Limit = Query(None, ge=1, le=100, description="Page size, 1 to 100 (default 20).")


def page_of(item: type[Schema]) -> Any:
    """The schema of a cursor-paginated list of ``item`` (see apertur.api.pagination)."""
    return create_model(
        f"{item.__name__.removesuffix('Out')}Page",
        __base__=Schema,
        data=(list[item], ...),  # type: ignore[valid-type]
        has_more=(bool, ...),
        next_cursor=(str | None, ...),
    )


# --- plan & project ---------------------------------------------------------------------------------

plan_router = Router(tags=["plan"])
project_router = Router(tags=["project"])


class PlanLimits(Schema):
    uploads_per_month: int
    storage_bytes: int
    active_sessions: int
    file_bytes: int


class PlanOut(Schema):
    name: str
    price_cents: int
    currency: str
    interval: str
    limits: PlanLimits
    livemode: bool


def plan_json(plan: Plan, livemode: bool) -> dict[str, Any]:
    return {**plan.as_json(), "livemode": livemode}


@plan_router.get(
    "",
    response=PlanOut,
    auth=ApiAuth("plan:read"),
    summary="The project's plan",
    description="Scope: `plan:read` (always granted).",
)
def get_plan(request: HttpRequest) -> HttpResponse:
    # The hottest read of the API (issue 10, W3): the dict already has PlanOut's shape, so it is written out
    # directly rather than validated field by field on every call (PlanOut still documents it).
    c = _caller(request)
    return _json(plan_json(c.project.plan, c.livemode))


class ProjectOut(Schema):
    id: str
    name: str
    plan: PlanOut
    created_at: str
    livemode: bool


def project_json(project: Project, livemode: bool) -> dict[str, Any]:
    return {
        "id": project.public_id,
        "name": project.name,
        "plan": plan_json(project.plan, livemode),
        "created_at": project.created_at.isoformat(),
        "livemode": livemode,
    }


@project_router.get(
    "",
    response=ProjectOut,
    auth=ApiAuth("project:read"),
    summary="The connected project",
    description="Scope: `project:read`.",
)
def get_project(request: HttpRequest) -> dict[str, Any]:
    c = _caller(request)
    return project_json(c.project, c.livemode)


class SettingsOut(Schema):
    name: str
    description: str
    default_session_days: int | None
    default_max_files: int | None
    notify_owner_on_upload: bool


class SettingsPatch(BodyIn):
    # Lengths documented, not checked here: the service measures the name as it stores it (spaces around it taken
    # off), so "" and "   " answer one code, invalid_project_name, as the owner's settings page does.
    name: str | None = Field(None, json_schema_extra={"minLength": 1, "maxLength": 100})
    description: str | None = Field(None, max_length=500)
    default_session_days: int | None = Field(None, ge=1, le=3650)
    default_max_files: int | None = Field(None, ge=1, le=100_000)
    notify_owner_on_upload: bool | None = None

    # Left out, a field is kept (its default is not validated); only the two upload defaults take null (it
    # clears them). The others have no empty value: null was ignored, a 200 that changed nothing.
    _not_null = field_validator("name", "description", "notify_owner_on_upload")(_refuse_null)


@project_router.get(
    "/settings",
    response=SettingsOut,
    auth=ApiAuth("project:read"),
    summary="Project settings",
    description="Scope: `project:read`.",
)
def get_settings(request: HttpRequest) -> dict[str, Any]:
    return _caller(request).project.settings_json()


@project_router.patch(
    "/settings",
    response=SettingsOut,
    auth=ApiAuth("project:settings"),
    summary="Change project settings",
    description="Scope: `project:settings`, live mode only. Send only the fields to change; `null` clears "
    "`default_session_days` and `default_max_files`. The settings belong to the project, not to a mode, so "
    "test-mode credentials get `403 livemode_required`.",
)
def patch_settings(request: HttpRequest, payload: SettingsPatch) -> dict[str, Any]:
    from apertur.oauth.bearer import BearerError
    from apertur.projects.services import update_settings

    c = _caller(request)
    if not c.livemode:
        # The settings are the project's (name, description, live upload defaults), with no test-mode copy:
        # test credentials changing them would reach live mode. A 403 about the credential, so with a challenge.
        raise BearerError(
            "livemode_required", "Test-mode credentials cannot change the project's settings.", status=403
        )
    given = payload.model_dump(exclude_unset=True)
    project = update_settings(project=c.project, **given, ip=client_ip(request), via=c.identity)
    return project.settings_json()


# --- upload sessions ----------------------------------------------------------------------------------

sessions_router = Router(tags=["upload sessions"])


class SessionIn(BodyIn):
    title: str = Field(..., json_schema_extra={"minLength": 1, "maxLength": 120})  # measured by the service, as name
    expires_at: str | None = Field(
        None, description="With a timezone, in the future. Left out: the project's default_session_days, if set."
    )
    max_files: int | None = Field(
        None, ge=1, le=100_000, description="Left out: the project's default_max_files, if set."
    )
    accepted_types: list[str] | None = None
    password: str | None = Field(None, max_length=128, description="4 to 128 characters; empty for none.")


class SessionOut(Schema):
    id: str
    title: str
    url: str
    status: str
    expires_at: str | None
    max_files: int | None
    accepted_types: list[str]
    password_protected: bool
    upload_count: int
    created_at: str
    closed_at: str | None
    livemode: bool


SessionPage = page_of(SessionOut)


def session_json(session: UploadSession) -> dict[str, Any]:
    return {
        "id": session.public_id,
        "title": session.title,
        "url": session.url,
        "status": session.effective_status,
        "expires_at": _iso(session.expires_at),
        "max_files": session.max_files,
        "accepted_types": session.accepted_types,
        "password_protected": session.has_password,
        # The lists' selector counts uploads in its own query: 0 is an answer too, not a reason to count again
        # (one COUNT per empty session of a page, up to 100 a request, before).
        "upload_count": session.upload_count if hasattr(session, "upload_count") else session.uploads.count(),
        "created_at": session.created_at.isoformat(),
        "closed_at": _iso(session.effective_closed_at),
        "livemode": session.livemode,
    }


def _session(request: HttpRequest, session_id: str) -> UploadSession:
    c = _caller(request)
    session = upload_selectors.session_for_project(project=c.project, public_id=session_id, livemode=c.livemode)
    if session is None:
        raise NotFound("There is no such upload session.")
    return session


@sessions_router.post(
    "",
    response={201: SessionOut},
    auth=ApiAuth("upload:create"),
    summary="Create an upload session",
    description="Scope: `upload:create` (alias `sessions:write`). Send `Idempotency-Key` to retry safely.",
)
@idempotent
def create_session(request: HttpRequest, payload: SessionIn) -> HttpResponse:
    from apertur.core.errors import ValidationFailed

    c = _caller(request)
    expires_at = None
    if payload.expires_at:
        try:
            expires_at = dt.datetime.fromisoformat(payload.expires_at.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationFailed("expires_at must be an ISO 8601 date-time.", field="expires_at") from exc
        if expires_at.tzinfo is None:
            raise ValidationFailed("expires_at needs a timezone, e.g. 2026-12-31T23:59:00Z.", field="expires_at")
    session = upload_services.create_session(
        project=c.project,
        title=payload.title,
        expires_at=expires_at,
        max_files=payload.max_files,
        accepted_types=payload.accepted_types,
        password=payload.password,
        livemode=c.livemode,
    )
    return _json(session_json(session), 201)


@sessions_router.get(
    "",
    response=SessionPage,
    auth=ApiAuth("upload:read"),
    summary="List upload sessions",
    description="Scope: `upload:read`. Newest first; pass `cursor` from `next_cursor`.",
)
def list_sessions(request: HttpRequest, cursor: str | None = None, limit: int | None = Limit) -> dict[str, Any]:
    c = _caller(request)
    qs = upload_selectors.session_list(project=c.project, livemode=c.livemode)
    return paginate(qs, order_field="created_at", cursor=cursor, limit=limit, serialize=session_json)


@sessions_router.get(
    "/{session_id}",
    response=SessionOut,
    auth=ApiAuth("upload:read"),
    summary="One upload session",
    description="Scope: `upload:read`.",
)
def get_session(request: HttpRequest, session_id: str) -> dict[str, Any]:
    return session_json(_session(request, session_id))


@sessions_router.post(
    "/{session_id}/close",
    response=SessionOut,
    auth=ApiAuth("upload:create"),
    summary="Close an upload session",
    description="Scope: `upload:create`. Guests can no longer upload; idempotent.",
)
@idempotent
def close_session(request: HttpRequest, session_id: str) -> HttpResponse:
    session = upload_services.close_session(
        session=_session(request, session_id), ip=client_ip(request), via=_caller(request).identity
    )
    session = _session(request, session.public_id)
    return _json(session_json(session))


# --- uploads ------------------------------------------------------------------------------------------

uploads_router = Router(tags=["uploads"])


class UploadOut(Schema):
    id: str
    session_id: str
    file_name: str
    size: int
    content_type: str
    note: str
    uploaded_at: str
    livemode: bool


UploadPage = page_of(UploadOut)


def upload_json(upload: Upload) -> dict[str, Any]:
    return {
        "id": upload.public_id,
        "session_id": upload.session.public_id,
        "file_name": upload.original_name,
        "size": upload.size,
        "content_type": upload.content_type,
        "note": upload.note,
        "uploaded_at": upload.uploaded_at.isoformat(),
        "livemode": upload.livemode,
    }


@uploads_router.get(
    "",
    response=UploadPage,
    auth=ApiAuth("upload:read"),
    summary="List uploads",
    description="Scope: `upload:read`. Newest first; filter by `session_id`.",
)
def list_uploads(
    request: HttpRequest, session_id: str | None = None, cursor: str | None = None, limit: int | None = Limit
) -> dict[str, Any]:
    c = _caller(request)
    session = _session(request, session_id) if session_id else None
    qs = upload_selectors.upload_list(project=c.project, livemode=c.livemode, session=session)
    return paginate(qs, order_field="uploaded_at", cursor=cursor, limit=limit, serialize=upload_json)


# --- API keys (metadata only) -----------------------------------------------------------------------------

keys_router = Router(tags=["keys"])


class KeyOut(Schema):
    id: int
    name: str
    key: str
    created_at: str
    revoked_at: str | None
    livemode: bool


KeyPage = page_of(KeyOut)


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.pk,
        "name": key.name,
        "key": key.masked,  # never the secret
        "created_at": key.created_at.isoformat(),
        "revoked_at": _iso(key.revoked_at),
        "livemode": key.livemode,
    }


@keys_router.get(
    "",
    response=KeyPage,
    auth=ApiAuth("keys:read"),
    summary="List the project's API keys",
    description="Scope: `keys:read`. Metadata only: secrets are never returned.",
)
def list_keys(request: HttpRequest, cursor: str | None = None, limit: int | None = Limit) -> dict[str, Any]:
    c = _caller(request)
    return paginate(
        api_key_list(project=c.project).filter(livemode=c.livemode),
        order_field="created_at",
        cursor=cursor,
        limit=limit,
        serialize=key_json,
    )


# --- webhooks -------------------------------------------------------------------------------------------

webhooks_router = Router(tags=["webhooks"])


class EndpointIn(BodyIn):
    url: str = Field(..., min_length=1, max_length=2000, description="HTTPS, public.")
    events: list[str] | None = Field(
        None,
        min_length=1,
        description='Left out: every event ("*"). `webhook.test` is not subscribable: only the test action sends it.',
    )
    description: str = Field("", max_length=200)


class EndpointPatch(BodyIn):
    url: str | None = Field(None, min_length=1, max_length=2000)
    events: list[str] | None = Field(None, min_length=1)
    description: str | None = Field(None, max_length=200)
    enabled: bool | None = None

    # Left out, a field is kept; none takes null (``{"enabled": null}`` was a 200 that changed nothing).
    _not_null = field_validator("url", "events", "description", "enabled")(_refuse_null)


class EndpointOut(Schema):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: str
    livemode: bool
    previous_secret_expires_at: str | None = Field(
        ...,
        description="After a roll: until when the replaced secret also signs deliveries. Null when only the "
        "current secret signs.",
    )


class EndpointWithSecretOut(EndpointOut):
    """The answers to create and to rotate-secret: the only ones that carry the signing secret."""

    secret: str = Field(..., description="The signing secret (Standard Webhooks `whsec_…`), returned this once.")


class RotateSecretIn(BodyIn):
    expire_previous_in_seconds: int = Field(
        86400,
        ge=0,
        le=604800,
        description="How long the current secret keeps signing beside the new one: 0 (it stops now) to 604800 "
        "(7 days). Default 86400 (24 hours).",
    )


# The body of rotate-secret may be left out: its defaults.
_NO_ROTATE_BODY = RotateSecretIn.model_validate({})

EndpointPage = page_of(EndpointOut)


class AttemptOut(Schema):
    number: int
    at: str
    status_code: int | None
    error: str
    duration_ms: int


class DeliveryOut(Schema):
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: str | None
    delivered_at: str | None
    attempt_log: list[AttemptOut]


DeliveryPage = page_of(DeliveryOut)


def endpoint_json(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": endpoint.public_id,
        "url": endpoint.url,
        "events": endpoint.events,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "created_at": endpoint.created_at.isoformat(),
        "livemode": endpoint.livemode,
        "previous_secret_expires_at": _iso(endpoint.previous_secret_valid_until(clock.now())),
    }
    if with_secret:
        body["secret"] = endpoint.secret
    return body


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "event_id": delivery.event.public_id,
        "event_type": delivery.event.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": _iso(delivery.next_attempt_at),
        "delivered_at": _iso(delivery.delivered_at),
        "attempt_log": [
            {
                "number": a.number,
                "at": a.at.isoformat(),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in delivery.attempt_log.all()
        ],
    }


def _endpoint(request: HttpRequest, endpoint_id: str) -> WebhookEndpoint:
    c = _caller(request)
    endpoint = webhook_selectors.endpoint_for_project(project=c.project, public_id=endpoint_id, livemode=c.livemode)
    if endpoint is None:
        raise NotFound("There is no such webhook endpoint.")
    return endpoint


@webhooks_router.get(
    "",
    response=EndpointPage,
    auth=ApiAuth("webhooks:manage"),
    summary="List webhook endpoints",
    description="Scope: `webhooks:manage`.",
)
def list_endpoints(request: HttpRequest, cursor: str | None = None, limit: int | None = Limit) -> dict[str, Any]:
    c = _caller(request)
    qs = webhook_selectors.endpoint_list(project=c.project, livemode=c.livemode)
    return paginate(qs, order_field="created_at", cursor=cursor, limit=limit, serialize=endpoint_json)


@webhooks_router.post(
    "",
    response={201: EndpointWithSecretOut},
    auth=ApiAuth("webhooks:manage"),
    summary="Create a webhook endpoint",
    description="Scope: `webhooks:manage`. The response carries the signing `secret` "
    "(Standard Webhooks `whsec_…`) this once.",
)
@idempotent
def create_endpoint(request: HttpRequest, payload: EndpointIn) -> HttpResponse:
    c = _caller(request)
    endpoint = webhook_services.create_endpoint(
        project=c.project,
        url=payload.url,
        events=payload.events,
        description=payload.description,
        livemode=c.livemode,
        created_by_app_id=c.app_id,
    )
    return _json(endpoint_json(endpoint, with_secret=True), 201)


@webhooks_router.get(
    "/{endpoint_id}",
    response=EndpointOut,
    auth=ApiAuth("webhooks:manage"),
    summary="One webhook endpoint",
    description="Scope: `webhooks:manage`.",
)
def get_endpoint(request: HttpRequest, endpoint_id: str) -> dict[str, Any]:
    return endpoint_json(_endpoint(request, endpoint_id))


@webhooks_router.patch(
    "/{endpoint_id}",
    response=EndpointOut,
    auth=ApiAuth("webhooks:manage"),
    summary="Change a webhook endpoint",
    description="Scope: `webhooks:manage`.",
)
def update_endpoint(request: HttpRequest, endpoint_id: str, payload: EndpointPatch) -> dict[str, Any]:
    endpoint = webhook_services.update_endpoint(
        endpoint=_endpoint(request, endpoint_id),
        url=payload.url,
        events=payload.events,
        description=payload.description,
        enabled=payload.enabled,
        ip=client_ip(request),
        via=_caller(request).identity,
    )
    return endpoint_json(endpoint)


@webhooks_router.delete(
    "/{endpoint_id}",
    response={204: None},
    auth=ApiAuth("webhooks:manage"),
    summary="Delete a webhook endpoint",
    description="Scope: `webhooks:manage`.",
)
def delete_endpoint(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    webhook_services.delete_endpoint(
        endpoint=_endpoint(request, endpoint_id), ip=client_ip(request), via=_caller(request).identity
    )
    return HttpResponse(status=204)


@webhooks_router.get(
    "/{endpoint_id}/deliveries",
    response=DeliveryPage,
    auth=ApiAuth("webhooks:manage"),
    summary="The endpoint's delivery log",
    description="Scope: `webhooks:manage`. Newest first.",
)
def list_deliveries(
    request: HttpRequest, endpoint_id: str, cursor: str | None = None, limit: int | None = Limit
) -> dict[str, Any]:
    qs = webhook_selectors.delivery_log(endpoint=_endpoint(request, endpoint_id))
    return paginate(qs, order_field="created_at", cursor=cursor, limit=limit, serialize=delivery_json)


@webhooks_router.post(
    "/{endpoint_id}/test",
    response={202: DeliveryOut},
    auth=ApiAuth("webhooks:manage"),
    summary="Send a test event",
    description="Scope: `webhooks:manage`. Sends `webhook.test`.",
)
@idempotent
def test_endpoint(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    delivery = webhook_services.send_test_event(endpoint=_endpoint(request, endpoint_id))
    return _json(delivery_json(delivery), 202)


@webhooks_router.post(
    "/{endpoint_id}/rotate-secret",
    response={200: EndpointWithSecretOut},
    auth=ApiAuth("webhooks:manage"),
    summary="Roll the signing secret",
    description="Scope: `webhooks:manage`. Gives the endpoint a new signing `secret`, returned this once. The "
    "secret it replaces keeps signing deliveries for `expire_previous_in_seconds` (the body may be left out: "
    "24 hours), until `previous_secret_expires_at`: meanwhile `webhook-signature` carries both signatures, "
    "space-separated (`v1,<new> v1,<previous>`), so a receiver holding either secret verifies. Rolling again "
    "during an overlap drops the older secret at once: only the secret being replaced overlaps.",
)
@idempotent
def rotate_secret(request: HttpRequest, endpoint_id: str, payload: RotateSecretIn = _NO_ROTATE_BODY) -> HttpResponse:
    endpoint = webhook_services.rotate_secret(
        endpoint=_endpoint(request, endpoint_id),
        expire_previous_in=dt.timedelta(seconds=payload.expire_previous_in_seconds),
        ip=client_ip(request),
    )
    return _json(endpoint_json(endpoint, with_secret=True))


# --- destinations -----------------------------------------------------------------------------------------

destinations_router = Router(tags=["destinations"])


class DestinationOut(Schema):
    id: str
    kind: str
    name: str
    status: str
    config: dict[str, Any]
    last_delivery_at: str | None
    last_error: str
    livemode: bool


class DestinationList(Schema):
    data: list[DestinationOut]


@destinations_router.get(
    "",
    response=DestinationList,
    auth=ApiAuth("destinations:read"),
    summary="Where uploads are delivered",
    description="Scope: `destinations:read`. Apertur's own storage always comes first; then "
    "the project's HTTPS and S3-compatible destinations with their status. Secrets are never "
    "returned.",
)
def list_destinations(request: HttpRequest) -> dict[str, Any]:
    from apertur.uploads.models import Destination
    from apertur.uploads.services import usage

    c = _caller(request)
    used = usage(project=c.project, livemode=c.livemode)  # test mode has its own storage budget, never the live one
    builtin = {
        "id": "dst_apertur",
        "kind": "apertur",
        "name": "Apertur storage",
        "status": "active",
        "config": {"storage_bytes_used": used.storage_bytes, "storage_bytes_limit": c.project.plan.storage_bytes},
        "last_delivery_at": None,
        "last_error": "",
        "livemode": c.livemode,
    }
    rows = Destination.objects.filter(project=c.project, livemode=c.livemode)
    return {
        "data": [builtin]
        + [
            {
                "id": d.public_id,
                "kind": d.kind,
                "name": d.name,
                "status": d.status,
                "config": d.config,
                "last_delivery_at": _iso(d.last_delivery_at),
                "last_error": d.last_error,
                "livemode": d.livemode,
            }
            for d in rows
        ]
    }


# --- billing ------------------------------------------------------------------------------------------------

billing_router = Router(tags=["billing"])


class SubscriptionOut(Schema):
    id: str
    plan: str
    status: str
    started_at: str
    current_period_end: str | None


class PaymentOut(Schema):
    id: str
    amount_cents: int
    currency: str
    refunded_cents: int
    description: str
    paid_at: str


class BillingOut(Schema):
    plan: PlanOut
    subscription: SubscriptionOut | None
    payments: list[PaymentOut]
    livemode: bool


@billing_router.get(
    "",
    response=BillingOut,
    auth=ApiAuth("billing:read"),
    summary="Plan, subscription and payments",
    description="Scope: `billing:read`. The latest 20 payments, with what was refunded of each. "
    "Test-mode callers see no payments: test mode never touches billing.",
)
def get_billing(request: HttpRequest) -> dict[str, Any]:
    from apertur.projects.selectors import current_subscription, payment_list

    c = _caller(request)
    subscription = current_subscription(project=c.project) if c.livemode else None
    payments = list(payment_list(project=c.project)[:20]) if c.livemode else []
    return {
        "plan": plan_json(c.project.plan, c.livemode),
        "subscription": None
        if subscription is None
        else {
            "id": subscription.external_id,
            "plan": subscription.plan.name,
            "status": subscription.status,
            "started_at": subscription.started_at.isoformat(),
            "current_period_end": _iso(subscription.current_period_end),
        },
        "payments": [
            {
                "id": p.external_id,
                "amount_cents": p.amount_cents,
                "currency": p.currency,
                "refunded_cents": p.refunded_cents,  # type: ignore[attr-defined]  # annotated by payment_list
                "description": p.description,
                "paid_at": p.paid_at.isoformat(),
            }
            for p in payments
        ],
        "livemode": c.livemode,
    }


ROUTERS = [
    (plan_router, "/plan"),
    (project_router, "/project"),
    (sessions_router, "/upload-sessions"),
    (uploads_router, "/uploads"),
    (keys_router, "/keys"),
    (webhooks_router, "/webhooks"),
    (destinations_router, "/destinations"),
    (billing_router, "/billing"),
]
