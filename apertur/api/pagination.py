"""Cursor pagination: stable under inserts (keyset on the creation time and id), opaque to callers."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from django.db.models import Model, Q, QuerySet

from apertur.core.errors import ValidationFailed
from apertur.core.validation import loads_json

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _encode(at: dt.datetime, pk: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), pk]).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, pk = loads_json(raw)
        when = dt.datetime.fromisoformat(at)
        number = int(pk)
        if when.tzinfo is None or not 0 < number < 2**63:
            raise ValueError("out of range")
        # The database compares in UTC: a time near datetime.min/max with an offset does not convert (an
        # OverflowError in the query, a 500) and is no cursor this API issued.
        return when.astimezone(dt.UTC), number
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValidationFailed(
            "The cursor is not valid; use next_cursor from the previous page.", field="cursor"
        ) from exc


def paginate(
    qs: QuerySet[Any],
    *,
    order_field: str,
    cursor: str | None,
    limit: int | None,
    serialize: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """Newest first. Returns ``{"data": [...], "has_more": bool, "next_cursor": str | None}``."""
    size = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= size <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    qs = qs.order_by(f"-{order_field}", "-pk")
    if cursor:
        at, pk = _decode(cursor)
        qs = qs.filter(Q(**{f"{order_field}__lt": at}) | Q(**{order_field: at, "pk__lt": pk}))
    rows: list[Model] = list(qs[: size + 1])
    has_more = len(rows) > size
    rows = rows[:size]
    last = rows[-1] if rows else None
    return {
        "data": [serialize(r) for r in rows],
        "has_more": has_more,
        "next_cursor": _encode(getattr(last, order_field), last.pk) if has_more and last is not None else None,
    }
