"""``Idempotency-Key`` on every POST (as Stripe does): a retry with the same key and body gets the first
response again (``Idempotent-Replayed: true``); the same key with a different body is a 409. Keys are kept 24
hours (core.housekeeping)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse

from apertur.api.auth import Caller
from apertur.core import clock, housekeeping
from apertur.core.models import IdempotencyKey

MAX_KEY_LENGTH = 255
# The column the path is kept in: a longer path names no object of the API.
PATH_MAX_LENGTH = cast(int, IdempotencyKey._meta.get_field("path").max_length)


#: A first request still marked running after this long died with its process (the app server answers or gives
#: up well before): its key is free again, instead of answering ``idempotency_in_progress`` forever.
ABANDONED_AFTER = dt.timedelta(minutes=10)


def _claim(*, owner: str, key: str, method: str, path: str, body_hash: str) -> IdempotencyKey | None:
    """The new record for this key, or None when a live one exists (its answer, or its request, comes first).
    A record past :data:`housekeeping.IDEMPOTENCY_TTL` (as Stripe: 24 hours) or abandoned is replaced, whether
    or not the housekeeping pass has deleted it yet."""
    for _ in range(2):
        try:
            with transaction.atomic():
                return IdempotencyKey.objects.create(
                    owner=owner, key=key, method=method, path=path, body_hash=body_hash
                )
        except IntegrityError:
            now = clock.now()
            stale = IdempotencyKey.objects.filter(owner=owner, key=key).filter(
                Q(created_at__lt=now - housekeeping.IDEMPOTENCY_TTL) | Q(status=0, created_at__lt=now - ABANDONED_AFTER)
            )
            if not stale.delete()[0]:
                return None
    return None


def idempotent(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    from apertur.api.v1 import error_response

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view(request, *args, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            return error_response(request, 400, "invalid_idempotency_key", "Idempotency-Key is at most 255 characters.")
        if len(request.path) > PATH_MAX_LENGTH:
            # No object has an id this long: the view refuses it (a 404), and a refusal keeps nothing for the key.
            return view(request, *args, **kwargs)
        caller: Caller = request.auth  # type: ignore[attr-defined]
        body_hash = hashlib.sha256(request.body).hexdigest()
        # Keys belong to the caller and its mode: a test-mode key never replays into live mode.
        owner = f"{caller.identity}:{'live' if caller.livemode else 'test'}"
        record = _claim(owner=owner, key=key, method=request.method or "POST", path=request.path, body_hash=body_hash)
        first = None if record is not None else IdempotencyKey.objects.filter(owner=owner, key=key).first()
        if record is None and first is None:
            # Another request with this key is replacing its stale record at this moment: it comes first.
            return _in_progress(request)
        if first is not None:
            if first.body_hash != body_hash or first.path != request.path:
                return error_response(
                    request, 409, "idempotency_key_reused", "This Idempotency-Key was used with a different request."
                )
            if first.status == 0:
                return _in_progress(request)
            replay = HttpResponse(bytes(first.response_body), status=first.status, content_type="application/json")
            replay["Idempotent-Replayed"] = "true"
            return replay
        assert record is not None
        try:
            response = view(request, *args, **kwargs)
        except Exception:
            record.delete()
            raise
        if response.status_code >= 400:
            # Only what was done is kept: a refusal did nothing (like a refusal raised above), a server error is not
            # an answer. The retry runs again (after a fix, an upgrade, a closed session), still at most once.
            record.delete()
        else:
            # An update, not save(): a request that ran past ABANDONED_AFTER may find its record replaced, and its
            # answer (its work is done) must not become a 500.
            IdempotencyKey.objects.filter(pk=record.pk).update(
                status=response.status_code, response_body=response.content
            )
        return response

    return wrapper


def _in_progress(request: HttpRequest) -> HttpResponse:
    from apertur.api.v1 import error_response

    response = error_response(
        request, 409, "idempotency_in_progress", "The first request with this key is still running."
    )
    response["Retry-After"] = "1"
    return response
