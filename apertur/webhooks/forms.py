"""The dashboard's roll form of a signing secret, shared by webhook endpoints and HTTPS destinations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest

from apertur.core import clock
from apertur.core.errors import AperturError
from apertur.webhooks.models import DEFAULT_ROLL_OVERLAP, ROLL_OVERLAPS, RollingSigningSecret

Rolled = TypeVar("Rolled", bound=RollingSigningSecret)


def roll_secret_form(
    request: HttpRequest, *, row: RollingSigningSecret, rotate: Callable[[dt.timedelta], Rolled]
) -> tuple[Rolled | None, dict[str, Any]]:
    """Read the roll page's form: on a valid POST, ``rotate(overlap)`` (the row's service) and the rolled row;
    otherwise ``None``, and the template context of ``_roll_secret_form.html`` (the choices, the one chosen —
    24 hours unless posted —, the error, and when the previous secret of the last roll stops signing)."""
    posted = request.method == "POST"
    chosen = request.POST.get("expire_previous_in", "") if posted else DEFAULT_ROLL_OVERLAP
    error = None
    if posted:
        if chosen not in ROLL_OVERLAPS:
            error = "Choose when the current secret stops working."
        else:
            try:
                return rotate(ROLL_OVERLAPS[chosen][1]), {}
            except AperturError as exc:
                error = exc.message
    return None, {
        "choices": [(value, label) for value, (label, _) in ROLL_OVERLAPS.items()],
        "chosen": chosen,
        "error": error,
        "previous_secret_until": row.previous_secret_valid_until(clock.now()),
    }
