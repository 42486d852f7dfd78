"""Rolling a secret with an overlap, as Stripe's "Roll secret": the secret a roll replaces keeps working beside the
new one for a while the owner chooses, so the servers holding it can switch without failing meanwhile. Shared by
webhook endpoints' and HTTPS destinations' signing secrets and by OAuth apps' client secrets: the choices, the
limit and the dashboard's form are one rule here; each kind keeps its own storage and service."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from django.contrib import messages
from django.http import HttpRequest

from apertur.core import clock
from apertur.core.errors import AperturError, Conflict

#: The longest a rolled secret keeps working beside its replacement (as Stripe's "Roll secret").
MAX_PREVIOUS_SECRET_OVERLAP = dt.timedelta(days=7)

#: How long the secret a roll replaces keeps working beside the new one: the choices of the dashboard's roll
#: pages, by the value their form posts (seconds); the default gives the servers holding it a day to switch.
ROLL_OVERLAPS = {
    "0": ("Now", dt.timedelta(0)),
    "3600": ("In 1 hour", dt.timedelta(hours=1)),
    "86400": ("In 24 hours", dt.timedelta(hours=24)),
    "259200": ("In 3 days", dt.timedelta(days=3)),
    "604800": ("In 7 days", dt.timedelta(days=7)),
}
DEFAULT_ROLL_OVERLAP = "86400"

#: Why an overlap was refused.
ROLL_OVERLAP_MESSAGE = "The previous secret can keep working from 0 seconds (it stops now) up to 7 days."


def roll_overlap_is_valid(keep_previous_for: object) -> bool:
    """A roll's overlap is a duration from zero (the current secret stops now) to
    :data:`MAX_PREVIOUS_SECRET_OVERLAP`."""
    return isinstance(keep_previous_for, dt.timedelta) and dt.timedelta(0) <= keep_previous_for <= (
        MAX_PREVIOUS_SECRET_OVERLAP
    )


class SecretRolledMeanwhile(Conflict):
    default_message = (
        "This secret was already rolled a moment ago (was the form sent twice?): nothing more was rolled, and the "
        "secret it replaced keeps its overlap."
    )


def fingerprint(secret: str) -> str:
    """A short one-way name of a secret (or of its hash): what the roll form says it replaces, never the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def check_replacing(*, current: str, replacing: str | None) -> None:
    """Under the row's lock, before a roll: the roll form (``replacing``: its :func:`fingerprint`) was shown for
    the ``current`` secret, or :class:`SecretRolledMeanwhile`. A double click sends the form twice; the second roll
    would end at once the secret the servers hold (rolling during an overlap drops the older secret) and replace
    the first new one. ``None`` (the API, the CLI, a script posting no such field): no check."""
    # As bytes: the posted value is anything a browser sends, and compare_digest refuses non-ASCII strings.
    if replacing is not None and not hmac.compare_digest(fingerprint(current).encode(), replacing.encode()):
        raise SecretRolledMeanwhile()


def overlap_ends(*, previous: str, expires: dt.datetime | None, at: dt.datetime) -> dt.datetime | None:
    """When the secret a roll replaced stops working, if it still works at ``at`` (``previous``: that secret or
    its hash, empty once forgotten); otherwise None. Every kind's ``previous_secret_valid_until``."""
    return expires if previous and expires is not None and at < expires else None


Rolled = TypeVar("Rolled")


class Rolling(Protocol):
    """What has a rolling secret (webhook endpoints, HTTPS destinations, OAuth apps)."""

    def previous_secret_valid_until(self, at: dt.datetime) -> dt.datetime | None: ...


def roll_secret_form(
    request: HttpRequest,
    *,
    row: Rolling,
    current: str,
    rotate: Callable[[dt.timedelta, str | None], Rolled],
    initial: str = DEFAULT_ROLL_OVERLAP,
    unposted: str = "",
) -> tuple[Rolled | None, dict[str, Any]]:
    """Read a roll page's form: on a valid POST, ``rotate(overlap)`` (the kind's service) and what it returns;
    otherwise ``None``, and the template context of ``_roll_secret_form.html`` (the choices, the one chosen —
    ``initial`` unless posted, 24 hours by default —, the error, and when the secret the ``row``'s last roll replaced
    stops working, if it still works, which a new roll ends at once). A POST without a choice
    takes ``unposted`` (a key of :data:`ROLL_OVERLAPS`; by default none, and the page asks for one). The form
    names the ``current`` secret (or hash) it replaces, which ``rotate`` gets to check (:func:`check_replacing`).
    When it was rolled meanwhile (the form sent twice: the browser shows the second answer), the context is only
    ``{"rolled_meanwhile": True}`` and a message says so: the view sends the person to the object's page, where the
    first roll's new secret is shown once."""
    posted = request.method == "POST"
    chosen = request.POST.get("expire_previous_in", unposted) if posted else initial
    error = None
    if posted:
        if chosen not in ROLL_OVERLAPS:
            error = "Choose when the current secret stops working."
        else:
            try:
                return rotate(ROLL_OVERLAPS[chosen][1], request.POST.get("replacing")), {}
            except SecretRolledMeanwhile as exc:
                messages.info(request, exc.message)
                return None, {"rolled_meanwhile": True}
            except AperturError as exc:
                error = exc.message
    return None, {
        "choices": [(value, label) for value, (label, _) in ROLL_OVERLAPS.items()],
        "chosen": chosen,
        "error": error,
        "replacing": fingerprint(current),
        "previous_secret_until": row.previous_secret_valid_until(clock.now()),
    }
