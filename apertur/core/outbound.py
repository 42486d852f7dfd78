"""Rules for every request Apertur sends to an address a customer gave (webhooks, destinations): no
private networks or cloud metadata (SSRF), and one retry schedule."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from apertur.core.errors import ValidationFailed
from apertur.core.validation import is_loopback_host

# Attempt n (1-based) failed → wait BACKOFF[n-1] before the next; after the last one, give up.
BACKOFF = [
    dt.timedelta(seconds=30),
    dt.timedelta(minutes=2),
    dt.timedelta(minutes=10),
    dt.timedelta(hours=1),
    dt.timedelta(hours=6),
    dt.timedelta(hours=24),
]
MAX_ATTEMPTS = len(BACKOFF) + 1


# After the last attempt, a final check this much later marks a delivery whose attempt never reported back
# (the worker died mid-attempt) as failed instead of leaving it pending forever.
LAST_CHECK = dt.timedelta(hours=1)


def delay_after(attempt: int) -> dt.timedelta:
    """When to look at a delivery again after claiming attempt ``attempt``: the retry time, or, after the
    last attempt, the final check."""
    return BACKOFF[attempt - 1] if attempt <= len(BACKOFF) else LAST_CHECK


class BlockedDestination(Exception):
    pass


def check_destination(url: str, *, unresolvable_ok: bool = False) -> None:
    """Refuse private, link-local, reserved and metadata addresses (anything not ``is_global``), by resolving
    the host as the HTTP client will. Loopback only when the deployment allows it (``WEBHOOKS_ALLOW_LOOPBACK``,
    on with ``DEBUG``: development, the local demo and tests).

    Applied when a URL is saved (``unresolvable_ok``: a name without DNS yet is not refused there) and again
    before every request, since what a name resolves to can change after it was accepted."""
    host = urlsplit(url).hostname or ""
    loopback_ok = settings.WEBHOOKS_ALLOW_LOOPBACK
    if is_loopback_host(host):
        if not loopback_ok:
            raise BlockedDestination("loopback destinations are not allowed")
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        if unresolvable_ok:
            return
        raise BlockedDestination(f"cannot resolve {host}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_loopback and loopback_ok:
            continue
        if not address.is_global:
            raise BlockedDestination(f"{host} resolves to a non-public address")


def check_public_url(url: str, *, noun: str, field: str, error: type[ValidationFailed]) -> str:
    """:func:`check_destination` for a URL being saved: the same rule, as a validation error on ``field``."""
    try:
        check_destination(url, unresolvable_ok=True)
    except BlockedDestination as exc:
        raise error(
            f"{url}: {noun}s must be public; private, loopback, link-local and reserved addresses are refused ({exc}).",
            field=field,
        ) from exc
    return url
