"""Typed, immutable views of Apertur's JSON: tokens and every /api/v1 resource.

Times are timezone-aware ``datetime`` objects. Fields Apertur adds later are ignored, so an older SDK keeps
working against a newer server.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if kind is dt.datetime:
        return parse_time(value)
    if origin is tuple:
        (item, _) = typing.get_args(kind)
        return tuple(_convert(item, v) for v in value)
    if origin is list:
        (item,) = typing.get_args(kind)
        return [_convert(item, v) for v in value]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return build(kind, value)
    return value


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """``cls`` (a dataclass) from JSON: nested dataclasses, lists, tuples and times converted."""
    hints = _hints(cls)  # type: ignore[arg-type]
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs[f.name] = None
    return cls(**kwargs)


# --- tokens ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanLimits:
    uploads_per_month: int
    storage_bytes: int
    active_sessions: int
    file_bytes: int


@dataclass(frozen=True)
class Plan:
    name: str
    price_cents: int
    currency: str
    interval: str
    limits: PlanLimits
    livemode: bool | None = None


@dataclass(frozen=True)
class TokenSet:
    """What a connection's store keeps. ``expires_at`` is a Unix time (seconds)."""

    access_token: str
    refresh_token: str
    expires_at: float
    scopes: tuple[str, ...]
    project_id: str
    livemode: bool = True
    plan_name: str | None = None

    @classmethod
    def from_token_response(cls, data: Mapping[str, Any], *, now: float | None = None) -> TokenSet:
        issued = time.time() if now is None else now
        scopes = data.get("scopes") or str(data.get("scope") or "").split()
        plan = data.get("plan")
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires_at=issued + float(data.get("expires_in") or 3600),
            scopes=tuple(scopes),
            project_id=str(data.get("project_id") or ""),
            livemode=bool(data.get("livemode", True)),
            plan_name=str(plan["name"]) if isinstance(plan, Mapping) and "name" in plan else None,
        )

    def expires_within(self, seconds: float, *, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at - seconds

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scopes"] = list(self.scopes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenSet:
        return build(cls, data)

    def __repr__(self) -> str:  # never print secrets into logs
        return (
            f"TokenSet(access_token='{self.access_token[:8]}…', refresh_token='{self.refresh_token[:8]}…', "
            f"expires_at={self.expires_at!r}, scopes={self.scopes!r}, project_id={self.project_id!r}, "
            f"livemode={self.livemode!r})"
        )


# --- API resources --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a cursor-paginated list, newest first. Pass ``next_cursor`` to get the next."""

    data: list[T]
    has_more: bool
    next_cursor: str | None


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    plan: Plan
    created_at: dt.datetime
    livemode: bool


@dataclass(frozen=True)
class ProjectSettings:
    name: str
    description: str
    default_session_days: int | None
    default_max_files: int | None
    notify_owner_on_upload: bool


@dataclass(frozen=True)
class UploadSession:
    id: str
    title: str
    url: str
    status: str
    expires_at: dt.datetime | None
    max_files: int | None
    accepted_types: tuple[str, ...]
    password_protected: bool
    upload_count: int
    created_at: dt.datetime
    closed_at: dt.datetime | None
    livemode: bool


@dataclass(frozen=True)
class Upload:
    id: str
    session_id: str
    file_name: str
    size: int
    content_type: str
    note: str
    uploaded_at: dt.datetime
    livemode: bool | None = None


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    key: str  # masked: the secret is never returned
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    livemode: bool


@dataclass(frozen=True)
class WebhookEndpoint:
    id: str
    url: str
    events: tuple[str, ...]
    description: str
    enabled: bool
    created_at: dt.datetime
    livemode: bool
    secret: str | None = field(default=None, repr=False)  # only in the answers to create and rotate
    previous_secret_expires_at: dt.datetime | None = None  # until then the previous secret signs too


@dataclass(frozen=True)
class DeliveryAttempt:
    number: int
    at: dt.datetime
    status_code: int | None
    error: str
    duration_ms: int


@dataclass(frozen=True)
class WebhookDelivery:
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    attempt_log: list[DeliveryAttempt]


@dataclass(frozen=True)
class Destination:
    id: str
    kind: str
    name: str
    status: str
    config: dict[str, Any]
    last_delivery_at: dt.datetime | None
    last_error: str
    livemode: bool


@dataclass(frozen=True)
class Subscription:
    id: str
    plan: str
    status: str
    started_at: dt.datetime
    current_period_end: dt.datetime | None


@dataclass(frozen=True)
class Payment:
    id: str
    amount_cents: int
    currency: str
    refunded_cents: int
    description: str
    paid_at: dt.datetime


@dataclass(frozen=True)
class Billing:
    plan: Plan
    subscription: Subscription | None
    payments: list[Payment]
    livemode: bool
