"""The /api/v1 resources, one router each.

No `from __future__ import annotations` here: django-ninja reads the handlers' annotations at import, and
the idempotency decorator's wrapper would resolve string annotations in the wrong module."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema

from apertur.api.auth import ApiAuth
from apertur.api.idempotency import idempotent
from apertur.api.pagination import paginate
from apertur.core.errors import NotFound
from apertur.projects.models import ApiKey, Plan, Project
from apertur.projects.selectors import api_key_list
from apertur.uploads import selectors as upload_selectors
from apertur.uploads import services as upload_services
from apertur.uploads.models import Upload, UploadSession


def _caller(request: HttpRequest) -> Any:
    from apertur.api.v1 import caller

    return caller(request)


def _json(data: Any, status: int = 200) -> HttpResponse:
    from apertur.api.v1 import json_response

    return json_response(data, status)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


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
def get_plan(request: HttpRequest) -> dict[str, Any]:
    c = _caller(request)
    return plan_json(c.project.plan, c.livemode)


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


# --- upload sessions ----------------------------------------------------------------------------------

sessions_router = Router(tags=["upload sessions"])


class SessionIn(Schema):
    title: str
    expires_at: str | None = None
    max_files: int | None = None
    accepted_types: list[str] | None = None
    password: str | None = None


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


class SessionPage(Schema):
    data: list[SessionOut]
    has_more: bool
    next_cursor: str | None


def session_json(session: UploadSession) -> dict[str, Any]:
    from django.conf import settings

    return {
        "id": session.public_id,
        "title": session.title,
        "url": f"{settings.APERTUR_BASE_URL}/u/{session.token}",
        "status": session.status if session.is_accepting() else "closed",
        "expires_at": _iso(session.expires_at),
        "max_files": session.max_files,
        "accepted_types": session.accepted_types,
        "password_protected": session.has_password,
        "upload_count": getattr(session, "upload_count", None) or session.uploads.count(),
        "created_at": session.created_at.isoformat(),
        "closed_at": _iso(session.closed_at),
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
    import datetime as dt

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
def list_sessions(request: HttpRequest, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
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
    session = upload_services.close_session(session=_session(request, session_id))
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


class UploadPage(Schema):
    data: list[UploadOut]
    has_more: bool
    next_cursor: str | None


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
    request: HttpRequest, session_id: str | None = None, cursor: str | None = None, limit: int | None = None
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


class KeyPage(Schema):
    data: list[KeyOut]
    has_more: bool
    next_cursor: str | None


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
def list_keys(request: HttpRequest, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
    c = _caller(request)
    return paginate(
        api_key_list(project=c.project), order_field="created_at", cursor=cursor, limit=limit, serialize=key_json
    )


ROUTERS = [
    (plan_router, "/plan"),
    (project_router, "/project"),
    (sessions_router, "/upload-sessions"),
    (uploads_router, "/uploads"),
    (keys_router, "/keys"),
]
