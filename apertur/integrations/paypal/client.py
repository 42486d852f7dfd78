"""A typed httpx client for PayPal's Payouts REST API (v1), the parts Apertur uses.

Endpoints (PayPal's ``payments_payouts_batch_v1`` and ``notifications_webhooks_v1`` OpenAPI documents):

- ``POST /v1/oauth2/token`` — client credentials in HTTP Basic auth, form body
  ``grant_type=client_credentials`` → ``{scope, access_token, token_type: "Bearer", app_id, expires_in, nonce}``.
- ``POST /v1/payments/payouts`` — ``{sender_batch_header: {sender_batch_id, email_subject, email_message},
  items: [{recipient_type: "EMAIL", amount: {value: "70.00", currency: "CAD"}, receiver, note,
  sender_item_id}]}`` → 201 ``{batch_header: {payout_batch_id, batch_status: "PENDING", sender_batch_header},
  links}``. A ``sender_batch_id`` seen in the last 30 days → 400 ``USER_BUSINESS_ERROR``
  (:class:`~apertur.integrations.paypal.errors.DuplicateBatch`).
- ``GET /v1/payments/payouts/{payout_batch_id}`` → ``{batch_header, items: [...], links}`` (paged).
- ``GET /v1/payments/payouts-item/{payout_item_id}`` → one item with its ``transaction_status``.
- ``POST /v1/payments/payouts-item/{payout_item_id}/cancel`` → the item, ``RETURNED`` (only an ``UNCLAIMED`` item
  can be cancelled; anything else → 400 ``ITEM_ALREADY_PROCESSED``-style error).
- ``POST /v1/notifications/verify-webhook-signature`` → ``{verification_status: "SUCCESS" | "FAILURE"}``.

**No retries here.** Every method makes its HTTP call(s) once and raises on failure; the caller owns
retrying (with the same ``sender_batch_id``, saved before the first call), because only the caller can
record each attempt in the database. The one exception is not a retry of a payout: a request answered 401
(an expired or revoked access token: PayPal processed nothing) is made once more with a new token.

Money goes in as integer cents and is sent as PayPal's decimal string (7000 → ``"70.00"``) with exact
integer arithmetic; amounts read back are parsed with :class:`~decimal.Decimal`, never floats.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from apertur.core.validation import loads_json
from apertur.integrations.paypal.errors import (
    DUPLICATE_BATCH_ISSUE,
    DUPLICATE_BATCH_NAME,
    DuplicateBatch,
    PayPalError,
    Retryable,
)

CAD = "CAD"
#: Every ``transaction_status`` PayPal documents for a payout item (``transaction_enum``).
TRANSACTION_STATUSES = (
    "SUCCESS",
    "FAILED",
    "PENDING",
    "UNCLAIMED",
    "RETURNED",
    "ONHOLD",
    "BLOCKED",
    "REFUNDED",
    "REVERSED",
)
#: Every ``batch_status`` PayPal documents for a payout batch (``batch_enum``).
BATCH_STATUSES = ("DENIED", "PENDING", "PROCESSING", "SUCCESS", "CANCELED")
#: The headers PayPal sends with each webhook delivery, needed to verify it.
WEBHOOK_HEADERS = {
    "auth_algo": "PAYPAL-AUTH-ALGO",
    "cert_url": "PAYPAL-CERT-URL",
    "transmission_id": "PAYPAL-TRANSMISSION-ID",
    "transmission_sig": "PAYPAL-TRANSMISSION-SIG",
    "transmission_time": "PAYPAL-TRANSMISSION-TIME",
}
#: PayPal's limit on the items of one batch (``POST /v1/payments/payouts``).
MAX_BATCH_ITEMS = 15_000
_PAGE_SIZE = 1000
_MAX_PAGES = MAX_BATCH_ITEMS // _PAGE_SIZE  # 1,000 items per page


# --- money ----------------------------------------------------------------------------------------


def cents_to_value(cents: int) -> str:
    """7000 → ``"70.00"``, exactly. Payout amounts are positive integer cents."""
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise ValueError(f"Payout amounts are integer cents, not {cents!r}.")
    if cents <= 0:
        raise ValueError(f"A payout amount must be positive, not {cents} cents.")
    whole, part = divmod(cents, 100)
    return f"{whole}.{part:02d}"


def value_to_cents(value: str) -> int:
    """PayPal's decimal string → integer cents, exactly (``"70.00"`` → 7000, ``"1.0"`` → 100). Raises
    :class:`ValueError` for anything that is not a whole number of cents."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal amount.") from None
    cents = amount * 100
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of cents.")
    return int(cents)


# --- results --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayoutItem:
    """One payment to one PayPal account, identified by email (``recipient_type`` ``EMAIL``)."""

    receiver: str
    amount_cents: int
    sender_item_id: str
    currency: str = CAD
    note: str = ""

    def as_wire(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "recipient_type": "EMAIL",
            "amount": {"value": cents_to_value(self.amount_cents), "currency": self.currency},
            "receiver": self.receiver,
            "sender_item_id": self.sender_item_id,
        }
        if self.note:
            item["note"] = self.note
        return item


@dataclass(frozen=True, slots=True)
class BatchCreated:
    payout_batch_id: str
    batch_status: str
    sender_batch_id: str
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Item:
    payout_item_id: str
    payout_batch_id: str
    transaction_status: str
    receiver: str
    amount_cents: int
    currency: str
    sender_item_id: str
    transaction_id: str | None
    error_name: str | None
    time_processed: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Item:
        try:
            payout_item = data["payout_item"]
            amount = payout_item["amount"]
            errors = data.get("errors") or {}
            return cls(
                payout_item_id=str(data["payout_item_id"]),
                payout_batch_id=str(data.get("payout_batch_id", "")),
                # PayPal may omit the status while an item is still being set up.
                transaction_status=str(data.get("transaction_status") or "PENDING"),
                receiver=str(payout_item.get("receiver", "")),
                amount_cents=value_to_cents(amount["value"]),
                currency=str(amount["currency"]),
                sender_item_id=str(payout_item.get("sender_item_id", "")),
                transaction_id=data.get("transaction_id") or None,
                error_name=(errors.get("name") or None) if isinstance(errors, dict) else None,
                time_processed=data.get("time_processed") or None,
                raw=dict(data),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise Retryable(f"Unexpected payout item JSON from PayPal: {exc!r}", name="MALFORMED_RESPONSE") from exc


@dataclass(frozen=True, slots=True)
class Batch:
    payout_batch_id: str
    batch_status: str
    sender_batch_id: str
    items: list[Item]
    time_completed: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(slots=True)
class _Token:
    value: str
    refresh_at: float


# --- the client -----------------------------------------------------------------------------------


class TokenCache:
    """Access tokens shared by every client of one process with the same base URL and credentials, so a
    webhook delivery or a scheduler pass does not fetch a token each time (PayPal asks integrations to reuse
    them until they expire). Keyed by a hash of the credentials, never the secret itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}

    def key(self, base_url: str, client_id: str, client_secret: str) -> str:
        return hashlib.sha256(f"{base_url}\0{client_id}\0{client_secret}".encode()).hexdigest()

    def get(self, key: str) -> _Token | None:
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: str, token: _Token | None) -> None:
        with self._lock:
            if token is None:
                self._tokens.pop(key, None)
            else:
                self._tokens[key] = token


#: The process-wide cache :func:`client_from_settings` uses.
SHARED_TOKENS = TokenCache()


class PayPalClient:
    """``PayPalClient(settings.PAYPAL_API_BASE, settings.PAYPAL_CLIENT_ID, settings.PAYPAL_CLIENT_SECRET,
    timeout=10)``. Thread-safe; one instance can be shared. ``transport`` is an httpx seam for tests;
    ``token_cache`` shares access tokens with other clients of the process (:data:`SHARED_TOKENS`)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        token_cache: TokenCache | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"PAYPAL_API_BASE must be an http(s) URL, not {base_url!r}.")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout  # seconds per request (connect, read, write, pool)
        self._credentials = (client_id, client_secret)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache = token_cache or TokenCache()
        self._cache_key = self._cache.key(self.base_url, client_id, client_secret)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "apertur-payouts/1"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PayPalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- OAuth ---------------------------------------------------------------------------------------

    def access_token(self) -> str:
        """A bearer token, from the cache until shortly before it expires (the margin is a tenth of its
        lifetime, at most five minutes), else from ``POST /v1/oauth2/token``."""
        with self._lock:
            now = self._clock()
            cached = self._cache.get(self._cache_key)
            if cached is not None and now < cached.refresh_at:
                return cached.value
            response = self._send("POST", "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=True)
            data = _json_object(response)
            try:
                value = str(data["access_token"])
                expires_in = int(data["expires_in"])
            except (KeyError, TypeError, ValueError) as exc:
                raise Retryable(f"Unexpected token JSON from PayPal: {exc!r}", name="MALFORMED_RESPONSE") from exc
            margin = min(300.0, expires_in / 10)
            self._cache.put(self._cache_key, _Token(value=value, refresh_at=now + expires_in - margin))
            return value

    def _forget_token(self, value: str) -> None:
        with self._lock:
            cached = self._cache.get(self._cache_key)
            if cached is not None and cached.value == value:
                self._cache.put(self._cache_key, None)

    # --- payouts ---------------------------------------------------------------------------------------

    def create_payout(
        self,
        *,
        sender_batch_id: str,
        items: list[PayoutItem],
        email_subject: str,
        email_message: str = "",
    ) -> BatchCreated:
        """``POST /v1/payments/payouts``. Raises :class:`DuplicateBatch` when PayPal already has
        ``sender_batch_id`` (its ``payout_batch_id`` tells which batch), :class:`Retryable` when the outcome
        is unknown (retry with the same id), :class:`PayPalError` for a terminal refusal."""
        if not sender_batch_id:
            raise ValueError("sender_batch_id is required: it is what makes a retry safe.")
        if not items:
            raise ValueError("A payout needs at least one item.")
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(f"PayPal takes at most {MAX_BATCH_ITEMS:,} items per batch, not {len(items):,}.")
        header: dict[str, Any] = {"sender_batch_id": sender_batch_id, "email_subject": email_subject}
        if email_message:
            header["email_message"] = email_message
        body = {"sender_batch_header": header, "items": [item.as_wire() for item in items]}
        response = self._api("POST", "/v1/payments/payouts", json_body=body, sender_batch_id=sender_batch_id)
        data = _json_object(response)
        try:
            batch_header = data["batch_header"]
            return BatchCreated(
                payout_batch_id=str(batch_header["payout_batch_id"]),
                batch_status=str(batch_header["batch_status"]),
                sender_batch_id=str(
                    batch_header.get("sender_batch_header", {}).get("sender_batch_id", sender_batch_id)
                ),
                raw=data,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            # The batch may exist: a retry with the same sender_batch_id answers DuplicateBatch with its id.
            raise Retryable(f"Unexpected payout JSON from PayPal: {exc!r}", name="MALFORMED_RESPONSE") from exc

    def get_batch(self, payout_batch_id: str) -> Batch:
        """``GET /v1/payments/payouts/{payout_batch_id}``, every page of items (at most 15)."""
        path = f"/v1/payments/payouts/{quote(payout_batch_id, safe='')}"
        items: list[Item] = []
        data: dict[str, Any] = {}
        for page in range(1, _MAX_PAGES + 1):
            params = {"page": str(page), "page_size": str(_PAGE_SIZE), "total_required": "true"}
            data = _json_object(self._api("GET", path, params=params))
            page_items = data.get("items") or []
            if not isinstance(page_items, list):
                raise Retryable("Unexpected batch JSON from PayPal: items is not a list.", name="MALFORMED_RESPONSE")
            items.extend(Item.from_wire(item) for item in page_items)
            total_pages = data.get("total_pages")
            if not page_items or not isinstance(total_pages, int) or page >= total_pages:
                break
        try:
            header = data["batch_header"]
            return Batch(
                payout_batch_id=str(header["payout_batch_id"]),
                batch_status=str(header["batch_status"]),
                sender_batch_id=str(header.get("sender_batch_header", {}).get("sender_batch_id", "")),
                items=items,
                time_completed=header.get("time_completed") or None,
                raw=data,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise Retryable(f"Unexpected batch JSON from PayPal: {exc!r}", name="MALFORMED_RESPONSE") from exc

    def get_item(self, payout_item_id: str) -> Item:
        """``GET /v1/payments/payouts-item/{payout_item_id}``."""
        path = f"/v1/payments/payouts-item/{quote(payout_item_id, safe='')}"
        return Item.from_wire(_json_object(self._api("GET", path)))

    def cancel_item(self, payout_item_id: str) -> Item:
        """``POST /v1/payments/payouts-item/{payout_item_id}/cancel``: an UNCLAIMED item's money comes back to
        the sender (PayPal answers the item, now ``RETURNED``). Raises :class:`PayPalError` when the item is
        not unclaimed any more (it was claimed meanwhile: then it is not coming back)."""
        path = f"/v1/payments/payouts-item/{quote(payout_item_id, safe='')}/cancel"
        return Item.from_wire(_json_object(self._api("POST", path, json_body={})))

    # --- webhooks ----------------------------------------------------------------------------------------

    def verify_webhook_signature(self, *, headers: Mapping[str, str], body: bytes | str, webhook_id: str) -> bool:
        """Ask PayPal whether a webhook delivery is genuine (``POST /v1/notifications/verify-webhook-signature``).

        ``headers`` are the delivery's HTTP headers (any case), ``body`` its raw body, ``webhook_id`` the id of
        our webhook at PayPal. The raw body is embedded as ``webhook_event`` byte for byte, not re-serialized,
        so what PayPal checks is exactly what it sent. False when a header is missing, the body is not a JSON
        object, or PayPal answers ``FAILURE``; errors of the call itself raise like every other method."""
        lowered = {key.lower(): value for key, value in headers.items()}
        fields: dict[str, str] = {}
        for key, header in WEBHOOK_HEADERS.items():
            value = lowered.get(header.lower())
            if not value:
                return False
            fields[key] = value
        try:
            raw = body.decode("utf-8") if isinstance(body, bytes) else body
            event = loads_json(raw)
        except ValueError:  # UnicodeDecodeError, JSON syntax and nesting included
            return False
        if not isinstance(event, dict):
            return False
        fields["webhook_id"] = webhook_id
        envelope = json.dumps(fields)[:-1] + ', "webhook_event": ' + raw.strip() + "}"
        response = self._api(
            "POST",
            "/v1/notifications/verify-webhook-signature",
            content=envelope.encode("utf-8"),
        )
        return _json_object(response).get("verification_status") == "SUCCESS"

    # --- HTTP ----------------------------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        sender_batch_id: str = "",
    ) -> httpx.Response:
        if json_body is not None:
            content = json.dumps(json_body).encode("utf-8")
        for fresh in (False, True):
            token = self.access_token()
            headers = {"Authorization": f"Bearer {token}"}
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                return self._send(method, path, content=content, params=params, headers=headers)
            except PayPalError as exc:
                if exc.status == 401:
                    # An expired or revoked token: PayPal processed nothing, so the call is made once more with a
                    # new token; a second 401 is the caller's to retry later.
                    self._forget_token(token)
                    if not fresh:
                        continue
                    raise Retryable(exc.message, status=401, name=exc.name, debug_id=exc.debug_id) from exc
                if sender_batch_id and _is_duplicate_batch(exc):
                    raise DuplicateBatch(
                        exc.message,
                        sender_batch_id=sender_batch_id,
                        payout_batch_id=_duplicate_batch_id(exc.details),
                        status=exc.status,
                        name=exc.name,
                        debug_id=exc.debug_id,
                        details=exc.details,
                    ) from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = False,
    ) -> httpx.Response:
        try:
            response = self._http.request(
                method,
                path,
                content=content,
                data=data,
                params=params,
                headers=headers,
                auth=httpx.BasicAuth(*self._credentials) if auth else None,
            )
        except httpx.TimeoutException as exc:
            raise Retryable(f"{method} {path} timed out: {exc or type(exc).__name__}", name="TIMEOUT") from exc
        except httpx.TransportError as exc:
            raise Retryable(f"{method} {path} failed: {exc or type(exc).__name__}", name="CONNECTION_ERROR") from exc
        if response.status_code < 400:
            return response
        raise _error_from(response)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Retryable(
            f"PayPal answered HTTP {response.status_code} with a body that is not a JSON object.",
            status=response.status_code,
            name="MALFORMED_RESPONSE",
            debug_id=response.headers.get("PayPal-Debug-Id", ""),
        )
    return data


def _error_from(response: httpx.Response) -> PayPalError:
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {}
    # API errors carry name/message; the OAuth endpoint answers RFC 6749 error/error_description.
    name = str(data.get("name") or data.get("error") or "")
    message = str(data.get("message") or data.get("error_description") or response.reason_phrase or "error")
    debug_id = str(data.get("debug_id") or response.headers.get("PayPal-Debug-Id", ""))
    details = data.get("details")
    details_list = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    cls = Retryable if status >= 500 or status == 429 else PayPalError
    return cls(message, status=status, name=name, debug_id=debug_id, details=details_list)


def _is_duplicate_batch(exc: PayPalError) -> bool:
    if exc.status != 400 or exc.name != DUPLICATE_BATCH_NAME:
        return False
    return any(
        str(d.get("field", "")).upper() == "SENDER_BATCH_ID" or d.get("issue") == DUPLICATE_BATCH_ISSUE
        for d in exc.details
    )


def _duplicate_batch_id(details: list[dict[str, Any]]) -> str | None:
    """The original batch's id, from the HATEOAS link PayPal attaches to the duplicate error."""
    for detail in details:
        links = detail.get("link") or detail.get("links") or []
        if not isinstance(links, list):
            continue
        for link in links:
            href = link.get("href") if isinstance(link, dict) else None
            if not isinstance(href, str):
                continue
            path = urlsplit(href).path.rstrip("/")
            prefix = "/v1/payments/payouts/"
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                return path[len(prefix) :] or None
    return None


@contextmanager
def client_or_default(client: PayPalClient | None) -> Iterator[PayPalClient]:
    """``client`` as given (whoever made it closes it), or a client from settings, closed on exit."""
    if client is not None:
        yield client
        return
    with client_from_settings() as own:
        yield own


def client_from_settings(*, timeout: float | None = None) -> PayPalClient:
    """The client configured by ``PAYPAL_API_BASE``, ``PAYPAL_CLIENT_ID`` and ``PAYPAL_CLIENT_SECRET``, with
    ``PAYPAL_TIMEOUT_SECONDS`` (default 10) per request unless ``timeout`` is given. With no credentials and a
    loopback base URL (the local emulator), the emulator's default credentials."""
    from django.conf import settings

    if timeout is None:
        timeout = float(getattr(settings, "PAYPAL_TIMEOUT_SECONDS", 10.0) or 10.0)

    from apertur.integrations.paypal.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    base = str(getattr(settings, "PAYPAL_API_BASE", "") or "http://127.0.0.1:8002")
    client_id = str(getattr(settings, "PAYPAL_CLIENT_ID", "") or "")
    secret = str(getattr(settings, "PAYPAL_CLIENT_SECRET", "") or "")
    if not client_id and not secret and urlsplit(base).hostname in {"127.0.0.1", "localhost", "::1"}:
        client_id, secret = DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    return PayPalClient(base, client_id, secret, timeout=timeout, token_cache=SHARED_TOKENS)
