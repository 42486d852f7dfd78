"""Factories shared by the tests of every domain (imported by tests only)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count
from typing import Any

from django.http import HttpResponseBase
from django.test import Client

from apertur.accounts.models import User
from apertur.accounts.services import create_user
from apertur.oauth.services import CreatedApp, create_app
from apertur.partners import services as partner_services
from apertur.partners.models import Partner

_seq = count(1)
PASSWORD = "correct-horse-battery"


def make_user(email: str | None = None, *, password: str = PASSWORD, **kwargs: Any) -> User:
    return create_user(
        email=email or f"user{next(_seq)}@example.com", password=password, email_confirmed=True, **kwargs
    )


def make_staff(email: str | None = None) -> User:
    user = make_user(email or f"staff{next(_seq)}@example.com", is_staff=True)
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


APPLICATION: dict[str, Any] = {
    "company_name": "Snapflow Inc.",
    "website": "https://snapflow.example",
    "use_case": "Event software that lets organisers collect guest photos into Apertur projects.",
    "expected_customers": "11-100",
}


def make_partner(*, user: User | None = None, approved: bool = True) -> Partner:
    partner = partner_services.apply(user=user or make_user(), **APPLICATION)
    if approved:
        partner = partner_services.approve(partner=partner, reviewer=None)
    return partner


def make_app(partner: Partner | None = None, **kwargs: Any) -> CreatedApp:
    kwargs.setdefault("name", "Snapflow")
    kwargs.setdefault("redirect_uris", ["https://snapflow.example/callback"])
    return create_app(partner=partner or make_partner(), **kwargs)


# --- OAuth flows ----------------------------------------------------------------------------------------

REDIRECT_URI = "https://snapflow.example/callback"


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) per RFC 7636 §4.1-4.2."""
    import base64
    import hashlib
    import secrets

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(client_id: str, **params: str) -> str:
    from urllib.parse import urlencode

    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "state": "st4te"}
    query.update(params)
    return "/oauth/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})


def get_code(browser: Any, client_id: str, *, project: str | None = None, **params: str) -> str:
    """Drive consent with a logged-in Django test client and return the code from the redirect."""
    from urllib.parse import parse_qs, urlsplit

    url = authorize_url(client_id, **params)
    data = {"decision": "allow"}
    if project:
        data["project"] = project
    response = browser.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    query = parse_qs(urlsplit(response["Location"]).query)
    assert "code" in query, response["Location"]
    return query["code"][0]


def exchange(http: Any, code: str, app_client_id: str, secret: str, *, as_json: bool = True, **extra: str) -> Any:
    body = {
        "grant_type": "authorization_code",
        "client_id": app_client_id,
        "client_secret": secret,
        "code": code,
        "redirect_uri": REDIRECT_URI,
        **extra,
    }
    if as_json:
        return http.post("/api/v1/oauth/token", body, content_type="application/json")
    return http.post("/oauth/token", body)


# --- uploads ------------------------------------------------------------------------------------------

PNG_BYTES = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa75\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)
JPEG_BYTES = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"


def image_file(name: str = "photo.png", content: bytes = PNG_BYTES, content_type: str = "image/png") -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


# --- HTTP -----------------------------------------------------------------------------------------------

# Stamped with the clock (never_cache): equal only within the same second.
_TIME_HEADERS = {"Date", "Expires"}


def assert_head_like_get(client: Client, path: str) -> HttpResponseBase:
    """RFC 9110 §9.3.2: HEAD answers what GET would — same status and header fields — without content."""
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code, (head.status_code, get.status_code)
    assert {k: v for k, v in head.headers.items() if k not in _TIME_HEADERS} == {
        k: v for k, v in get.headers.items() if k not in _TIME_HEADERS
    }
    assert head.content == b""
    return head


def fake_dns(monkeypatch: Any, answers: dict[str, list[list[str]]]) -> list[str]:
    """``socket.getaddrinfo`` (the one the standard library's ``create_connection`` uses too) answering each name
    with the next of its answers (the last one repeats): a name that changes what it resolves to."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        turn = answers[host][min(asked.count(host), len(answers[host])) - 1]
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port or 0))
            for ip in turn
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def record_outcome(outcome: dict[str, Any], label: str, action: Callable[[], Any]) -> None:
    """A PostgreSQL race test's actor, as a thread's target: ``outcome[label]`` is what ``action`` returned or the
    exception it raised, and the thread's own database connection is closed at the end."""
    from django.db import connection

    try:
        outcome[label] = action()
    except Exception as exc:
        outcome[label] = exc
    finally:
        connection.close()


def wait_until_blocked(thread: threading.Thread | None = None, *, timeout: float = 5) -> bool:
    """PostgreSQL race tests: wait (at most ``timeout`` seconds) until a session of this test database waits for a
    lock — the other actor has reached the row the first one holds, so the order is certain — or ``thread`` ended
    (the old behaviour: it did not wait). True when one waits."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while (thread is None or thread.is_alive()) and time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0] >= 1:
                return True
            time.sleep(0.02)
    return False


def while_paused(
    first: Callable[[], Any], second: Callable[[], Any], *, paused: threading.Event, go: threading.Event
) -> dict[str, Any]:
    """PostgreSQL race tests: start ``first``, which sets ``paused`` once it holds what it locked and then waits for
        ``go``; start ``second`` beside it, wait until it waits on a lock (:func:`wait_until_blocked`: the order is then
        certain), let ``first`` go, join both. Returns each one's result or exception under "first" and "second", and
    under "second_waited" whether ``second`` was seen waiting on a lock."""
    outcome: dict[str, Any] = {}
    one = threading.Thread(target=record_outcome, args=(outcome, "first", first))
    two = threading.Thread(target=record_outcome, args=(outcome, "second", second))
    one.start()
    try:
        assert paused.wait(timeout=10), outcome
        two.start()
        outcome["second_waited"] = wait_until_blocked(two, timeout=10)
    finally:
        go.set()
        one.join(timeout=30)
        if two.ident is not None:  # started
            two.join(timeout=30)
    return outcome


def lower_budget(monkeypatch: Any, module: Any, name: str, hits: int) -> None:
    """Budget tests: ``module.name`` (a :class:`apertur.core.ratelimit.Limit`) becomes ``hits`` an hour, under a
    key of its own (a test's counts never meet the real limit's)."""
    from apertur.core import ratelimit

    monkeypatch.setattr(module, name, ratelimit.Limit(f"t-{name}", hits, 60 * 60))


def refused_by_budget(attempt: Callable[[], Any], what: str) -> None:
    """Budget tests: ``attempt`` is refused past its budget (RateLimited, with a wait and "Too many {what}") and
    writes no audit event: nothing was done."""
    import pytest

    from apertur.core.errors import RateLimited
    from apertur.core.models import AuditEvent

    audits = AuditEvent.objects.count()
    with pytest.raises(RateLimited) as refused:
        attempt()
    assert refused.value.retry_after > 0 and f"Too many {what}" in refused.value.message
    assert AuditEvent.objects.count() == audits


@contextmanager
def paypal_emulator(settings: Any) -> Iterator[Any]:
    """The project's PayPal emulator on loopback, and the settings every PayPal client is built from
    (``client_from_settings``: the worker, the admin, the CLI, the webhook's verification) pointing at it."""
    from apertur.integrations.paypal.emulator import running

    with running() as emulator:
        settings.PAYPAL_API_BASE = emulator.base_url
        settings.PAYPAL_CLIENT_ID = emulator.client_id
        settings.PAYPAL_CLIENT_SECRET = emulator.client_secret
        yield emulator


def plan_with_indexes(queryset: Any) -> str:
    """PostgreSQL plan tests: ``EXPLAIN`` of ``queryset`` with sequential scans and sorts off, so that on a test's tiny
    table the plan says whether an index serves the query and its order (a "Seq Scan" or "Sort" left in the plan
    means none can). Compiled inside a transaction, where ``FOR UPDATE`` is compiled."""
    from django.db import connections, transaction

    with transaction.atomic(using=queryset.db):
        sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")
        try:
            cursor.execute(f"EXPLAIN {sql}", params)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_sort")
