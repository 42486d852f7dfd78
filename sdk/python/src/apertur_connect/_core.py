"""What the sync and async clients share: the description of every /api/v1 call (so both expose exactly
the same surface), the retry policy and the token-endpoint bodies."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import httpx

from apertur_connect import models as m
from apertur_connect.models import build

T = TypeVar("T")

DEFAULT_BASE_URL = "https://apertur.ca"
USER_AGENT = "apertur-connect-python/0.2.0"


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Marks an argument that was not given (``None`` is a value: it clears a setting)."""


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotency_key: str | None = None

    @property
    def retryable(self) -> bool:
        """Idempotent calls only: a GET, or a POST the server will deduplicate by its Idempotency-Key."""
        return self.method == "GET" or (self.method == "POST" and self.idempotency_key is not None)


def _page(item: type[T]) -> Callable[[Any], m.Page[T]]:
    def parse(data: Any) -> m.Page[T]:
        return m.Page(
            data=[build(item, row) for row in data["data"]],
            has_more=bool(data["has_more"]),
            next_cursor=data.get("next_cursor"),
        )

    return parse


def _one(item: type[T]) -> Callable[[Any], T]:
    return lambda data: build(item, data)


def _none(_: Any) -> None:
    return None


def _query(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not UNSET}


def _key(given: str | None) -> str:
    return given or f"aptr-py-{uuid.uuid4()}"


def _time(value: dt.datetime | str | None) -> str | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("expires_at needs a timezone (use datetime.timezone.utc)")
        return value.isoformat()
    return value


class Calls:
    """Every /api/v1 operation, with the scope it needs (see docs/api.md)."""

    @staticmethod
    def plan() -> Call[m.Plan]:
        return Call("GET", "/api/v1/plan", _one(m.Plan))  # plan:read

    @staticmethod
    def project() -> Call[m.Project]:
        return Call("GET", "/api/v1/project", _one(m.Project))  # project:read

    @staticmethod
    def settings() -> Call[m.ProjectSettings]:
        return Call("GET", "/api/v1/project/settings", _one(m.ProjectSettings))  # project:read

    @staticmethod
    def update_settings(**fields: Any) -> Call[m.ProjectSettings]:  # project:settings
        return Call("PATCH", "/api/v1/project/settings", _one(m.ProjectSettings), json=_body(**fields))

    @staticmethod
    def list_upload_sessions(cursor: str | None, limit: int | None) -> Call[m.Page[m.UploadSession]]:
        return Call("GET", "/api/v1/upload-sessions", _page(m.UploadSession), _query(cursor=cursor, limit=limit))

    @staticmethod
    def get_upload_session(session_id: str) -> Call[m.UploadSession]:
        return Call("GET", f"/api/v1/upload-sessions/{session_id}", _one(m.UploadSession))

    @staticmethod
    def create_upload_session(
        title: str,
        expires_at: dt.datetime | str | None,
        max_files: int | None,
        accepted_types: list[str] | None,
        password: str | None,
        idempotency_key: str | None,
    ) -> Call[m.UploadSession]:  # upload:create
        body = _query(
            title=title,
            expires_at=_time(expires_at),
            max_files=max_files,
            accepted_types=accepted_types,
            password=password,
        )
        return Call(
            "POST", "/api/v1/upload-sessions", _one(m.UploadSession), json=body, idempotency_key=_key(idempotency_key)
        )

    @staticmethod
    def close_upload_session(session_id: str, idempotency_key: str | None) -> Call[m.UploadSession]:
        path = f"/api/v1/upload-sessions/{session_id}/close"
        return Call("POST", path, _one(m.UploadSession), idempotency_key=_key(idempotency_key))

    @staticmethod
    def list_uploads(session_id: str | None, cursor: str | None, limit: int | None) -> Call[m.Page[m.Upload]]:
        params = _query(session_id=session_id, cursor=cursor, limit=limit)
        return Call("GET", "/api/v1/uploads", _page(m.Upload), params)  # upload:read

    @staticmethod
    def list_keys(cursor: str | None, limit: int | None) -> Call[m.Page[m.ApiKey]]:
        return Call("GET", "/api/v1/keys", _page(m.ApiKey), _query(cursor=cursor, limit=limit))  # keys:read

    @staticmethod
    def list_webhooks(cursor: str | None, limit: int | None) -> Call[m.Page[m.WebhookEndpoint]]:
        return Call("GET", "/api/v1/webhooks", _page(m.WebhookEndpoint), _query(cursor=cursor, limit=limit))

    @staticmethod
    def create_webhook(
        url: str, events: list[str] | None, description: str, idempotency_key: str | None
    ) -> Call[m.WebhookEndpoint]:  # webhooks:manage
        body = _query(url=url, events=events, description=description)
        return Call(
            "POST", "/api/v1/webhooks", _one(m.WebhookEndpoint), json=body, idempotency_key=_key(idempotency_key)
        )

    @staticmethod
    def get_webhook(endpoint_id: str) -> Call[m.WebhookEndpoint]:
        return Call("GET", f"/api/v1/webhooks/{endpoint_id}", _one(m.WebhookEndpoint))

    @staticmethod
    def update_webhook(endpoint_id: str, **fields: Any) -> Call[m.WebhookEndpoint]:
        body = {k: v for k, v in _body(**fields).items() if v is not None}
        return Call("PATCH", f"/api/v1/webhooks/{endpoint_id}", _one(m.WebhookEndpoint), json=body)

    @staticmethod
    def delete_webhook(endpoint_id: str) -> Call[None]:
        return Call("DELETE", f"/api/v1/webhooks/{endpoint_id}", _none)

    @staticmethod
    def list_webhook_deliveries(
        endpoint_id: str, cursor: str | None, limit: int | None
    ) -> Call[m.Page[m.WebhookDelivery]]:
        path = f"/api/v1/webhooks/{endpoint_id}/deliveries"
        return Call("GET", path, _page(m.WebhookDelivery), _query(cursor=cursor, limit=limit))

    @staticmethod
    def send_test_webhook(endpoint_id: str, idempotency_key: str | None) -> Call[m.WebhookDelivery]:
        path = f"/api/v1/webhooks/{endpoint_id}/test"
        return Call("POST", path, _one(m.WebhookDelivery), idempotency_key=_key(idempotency_key))

    @staticmethod
    def rotate_webhook_secret(
        endpoint_id: str, expire_previous_in_seconds: int, idempotency_key: str | None
    ) -> Call[m.WebhookEndpoint]:  # webhooks:manage
        path = f"/api/v1/webhooks/{endpoint_id}/rotate-secret"
        body = {"expire_previous_in_seconds": expire_previous_in_seconds}
        return Call("POST", path, _one(m.WebhookEndpoint), json=body, idempotency_key=_key(idempotency_key))

    @staticmethod
    def list_destinations() -> Call[list[m.Destination]]:  # destinations:read
        return Call("GET", "/api/v1/destinations", lambda d: [build(m.Destination, row) for row in d["data"]])

    @staticmethod
    def billing() -> Call[m.Billing]:  # billing:read
        return Call("GET", "/api/v1/billing", _one(m.Billing))


# --- retries ---------------------------------------------------------------------------------------------

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter (``random(0, min(cap, base * 2**attempt))``), never shorter than
    the server's ``Retry-After``; a ``Retry-After`` longer than ``max_retry_after`` is not waited for (the
    caller gets :class:`RateLimited` and its ``retry_after`` at once)."""

    max_retries: int = 2
    base: float = 0.25
    cap: float = 4.0
    max_retry_after: float = 10.0

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap, self.base * 2**attempt))  # noqa: S311 - jitter, not crypto

    def wait_for(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry ``attempt + 1``, or None to give up."""
        if attempt >= self.max_retries:
            return None
        if response is None:
            return self.backoff(attempt)
        retry_in_progress = response.status_code == 409 and b"idempotency_in_progress" in response.content
        if response.status_code not in RETRY_STATUSES and not retry_in_progress:
            return None
        from apertur_connect.errors import retry_after_seconds

        wait = self.backoff(attempt)
        if "Retry-After" in response.headers:
            after = retry_after_seconds(response)
            if after > self.max_retry_after:
                return None
            wait = max(wait, after)
        return wait


def token_body(grant_type: str, **fields: str | None) -> dict[str, str]:
    return {"grant_type": grant_type, **{k: v for k, v in fields.items() if v is not None}}
