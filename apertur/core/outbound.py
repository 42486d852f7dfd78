"""Rules for every request Apertur sends to an address a customer gave (webhooks, destinations): no
private networks or cloud metadata (SSRF), and one retry schedule.

The rule is applied to the address a request really connects to: :func:`http_client` resolves the host itself
when it opens a connection, checks every address, and connects to a checked one. Checking a name and then
letting the HTTP client resolve it again would let a name that changes its answer in between (DNS rebinding,
a TTL of 0) pass the check with a public address and be connected to a private one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

from apertur.core.errors import ValidationFailed
from apertur.core.validation import ip_literal, is_loopback_host

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


#: A delivery still pending this long after its next look was due has lost the queued task that was to look: one
#: failed inside its claim's transaction (which also rolled back the next look it queued), or the housekeeping gave
#: it up as abandoned. A worker with a backlog is late by far less.
OVERDUE_AFTER = dt.timedelta(minutes=15)
OVERDUE_BATCH = 1_000


def requeue_overdue(pending: Any, enqueue: Callable[[list[int]], None], at: dt.datetime) -> int:
    """Queue a look again for the ``pending`` deliveries (a QuerySet of webhook deliveries or destination copies)
    overdue at ``at``, oldest first, at most :data:`OVERDUE_BATCH` a pass (the hourly housekeeping). Safe beside
    a task still queued: an attempt claims the delivery by moving its next look, and the later task finds it not
    due and does nothing. The number queued."""
    ids = list(
        pending.filter(next_attempt_at__lte=at - OVERDUE_AFTER)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:OVERDUE_BATCH]
    )
    if ids:
        enqueue(ids)
    return len(ids)


class BlockedDestination(Exception):
    pass


def _allowed_addresses(host: str, port: int | None, *, unresolvable_ok: bool = False) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, when every one of them is allowed: public
    (``is_global``), or loopback where the deployment allows it. A name with one forbidden address among public
    ones is refused as a whole (the client could pick either)."""
    loopback_ok = settings.WEBHOOKS_ALLOW_LOOPBACK
    if is_loopback_host(host):
        if not loopback_ok:
            raise BlockedDestination("loopback destinations are not allowed")
        # RFC 6761 §6.3: localhost names are loopback whatever the resolver says (glibc knows no *.localhost).
        literal = ip_literal(host)
        return [str(literal)] if literal is not None else ["127.0.0.1", "::1"]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        if unresolvable_ok:
            return []
        raise BlockedDestination(f"cannot resolve {host}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for text in addresses:
        for address in _meant(ipaddress.ip_address(text)):
            if address.is_loopback and loopback_ok:
                continue
            if not address.is_global:
                raise BlockedDestination(f"{host} resolves to a non-public address")
    return addresses


# IPv6 prefixes that carry an IPv4 address a translator or tunnel delivers to: NAT64's well-known prefix
# (RFC 6052 §2.1, 64:ff9b::/96, the IPv4 address in the last 32 bits) and its local-use prefix (RFC 8215,
# 64:ff9b:1::/48, whose embedding depends on the network: refused whole). Python calls both global.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated (RFC 4291 §2.5.5.1): ::a.b.c.d
_UNSPECIFIED = ipaddress.IPv4Address(0)  # what an unreadable IPv4 target counts as: never allowed


def _meant(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address, and the IPv4 address an IPv6 one leads to (IPv4-mapped, 6to4, Teredo's server and client,
    NAT64): each must pass the rule, or ``64:ff9b::a00:7`` would reach 10.0.0.7 through a NAT64 gateway. An
    address whose IPv4 target cannot be read (NAT64 local use, IPv4-compatible) is refused: an unspecified one
    stands for it."""
    if isinstance(address, ipaddress.IPv4Address):
        return [address]
    if address in _NAT64_LOCAL or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return [address, _UNSPECIFIED]
    inner: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if address.ipv4_mapped is not None:
        inner.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        inner.append(address.sixtofour)
    if address.teredo is not None:
        inner.extend(address.teredo)
    if address in _NAT64:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return inner


def check_destination(url: str, *, unresolvable_ok: bool = False) -> None:
    """Refuse private, link-local, reserved and metadata addresses (anything not ``is_global``), by resolving
    the host. Loopback only when the deployment allows it (``WEBHOOKS_ALLOW_LOOPBACK``, on with ``DEBUG``:
    development, the local demo and tests).

    Applied when a URL is saved (``unresolvable_ok``: a name without DNS yet is not refused there), and before a
    request to say early and clearly why it is not sent; the request itself connects through
    :func:`http_client`, which applies the same rule to the address it connects to."""
    _allowed_addresses(urlsplit(url).hostname or "", None, unresolvable_ok=unresolvable_ok)


class _CheckedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to an address :func:`_allowed_addresses` allows. The TLS
    handshake and the ``Host`` header still use the name (httpcore passes the origin's host as the server name),
    so certificates are verified against it as usual."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _allowed_addresses(host, port)
        failure: Exception | None = None
        for address in addresses:  # as socket.create_connection does: each address in turn
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host}")


def http_client(*, timeout: httpx.Timeout) -> httpx.Client:
    """The HTTP client for customer-given URLs: redirects not followed (each hop would need the check; a
    receiver that redirects gets a failed attempt), no proxy from the environment (the check is of the address
    connected to), and every connection made through :class:`_CheckedBackend`.

    httpx has no public hook for the connection's resolution; its transport's httpcore pool takes a network
    backend, set here. A test connects through it to prove it stays wired (httpx and httpcore are pinned)."""
    transport = httpx.HTTPTransport(trust_env=False)
    pool = transport._pool
    if not isinstance(pool, httpcore.ConnectionPool) or not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpx's transport no longer holds an httpcore pool with a network backend")
    pool._network_backend = _CheckedBackend()
    return httpx.Client(timeout=timeout, follow_redirects=False, transport=transport, trust_env=False)


class AnswerTooLarge(Exception):
    pass


class AttemptTimedOut(Exception):
    """:func:`send_bounded` gave up at its deadline (its message says after how long)."""


def send_bounded(
    method: str,
    url: str,
    *,
    content: bytes,
    headers: Any,
    timeout: httpx.Timeout,
    seconds: float,
    read_limit: int = 0,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request to a customer-given URL through :func:`http_client`, within ``seconds`` in all: httpx's timeouts
    bound each socket operation only, so a receiver dripping its answer would hold the attempt (and the worker)
    for ever; a watchdog closes the client at the deadline and the blocked read fails at its next socket
    operation, told by the time spent, as :class:`AttemptTimedOut`). The status, the headers and the answer's body:
    not read at all with ``read_limit`` 0, else at most ``read_limit`` bytes (more raises :class:`AnswerTooLarge`,
    never read into memory). Webhook deliveries and destination copies both send through it."""
    started = time.monotonic()
    http = http_client(timeout=timeout)
    watchdog = threading.Timer(seconds, http.close)
    watchdog.daemon = True
    watchdog.start()
    try:
        with http.stream(method, url, content=content, headers=headers) as response:
            body = b""
            if read_limit:
                chunks, size = [], 0
                for chunk in response.iter_raw():
                    size += len(chunk)
                    if size > read_limit:
                        raise AnswerTooLarge(f"the answer is over {read_limit} bytes")
                    chunks.append(chunk)
                body = b"".join(chunks)
            return response.status_code, list(response.headers.multi_items()), body
    except Exception as exc:
        if time.monotonic() - started >= seconds:
            raise AttemptTimedOut(f"timed out after {seconds:g} s") from exc
        raise
    finally:
        watchdog.cancel()
        http.close()


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
