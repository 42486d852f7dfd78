"""Errors of the PayPal Payouts client.

PayPal answers errors as JSON ``{name, message, debug_id, information_link, details: [{field, location,
issue, link}], links}`` (``error`` schema of PayPal's ``payments_payouts_batch_v1`` OpenAPI document); the
OAuth token endpoint answers RFC 6749 JSON ``{error, error_description}`` instead.

How a caller tells them apart::

    try:
        created = client.create_payout(sender_batch_id=..., items=..., email_subject=...)
    except DuplicateBatch as exc:   # PayPal already has this sender_batch_id: adopt exc.payout_batch_id
        ...
    except Retryable:               # timeout, connection error, 5xx, 429: retry later with the SAME id
        ...
    except PayPalError:             # anything else (4xx): terminal, record it; only then use a new id
        ...
"""

from __future__ import annotations

import re
from typing import Any

DUPLICATE_BATCH_NAME = "USER_BUSINESS_ERROR"
DUPLICATE_BATCH_ISSUE = "Batch with given sender_batch_id already exists"
_ITEM_FIELD = re.compile(r"^items\[(\d+)\]")


class PayPalError(Exception):
    """A PayPal API call failed. Not retryable unless it is a :class:`Retryable`.

    ``status`` is the HTTP status (``None`` when no response arrived), ``name`` PayPal's error name
    (``VALIDATION_ERROR``, ``USER_BUSINESS_ERROR``, ``invalid_client``…), ``debug_id`` PayPal's correlation id
    (quote it to PayPal support), ``details`` the ``details`` array as sent."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        name: str = "",
        debug_id: str = "",
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.name = name
        self.debug_id = debug_id
        self.details = details or []

    @property
    def retryable(self) -> bool:
        return False

    def refused_items(self) -> set[int]:
        """The indexes of the batch's items PayPal names in ``details`` (``field`` ``items[3].receiver``…): a
        refusal of the create that is about those items, not the whole batch. Empty when none is named."""
        indexes: set[int] = set()
        for detail in self.details:
            match = _ITEM_FIELD.match(str(detail.get("field", "")))
            if match:
                indexes.add(int(match.group(1)))
        return indexes

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        name = f" {self.name}" if self.name else ""
        debug = f" (debug_id {self.debug_id})" if self.debug_id else ""
        return f"PayPal {where}{name}: {self.message}{debug}"


class Retryable(PayPalError):
    """Timeout, connection error, HTTP 5xx or 429. The request may or may not have taken effect at PayPal:
    retry it later with the same ``sender_batch_id`` (PayPal pays a ``sender_batch_id`` at most once within
    30 days, and a retry of a request that did take effect answers :class:`DuplicateBatch`)."""

    @property
    def retryable(self) -> bool:
        return True


class DuplicateBatch(PayPalError):
    """PayPal already has a batch with this ``sender_batch_id`` (used in the last 30 days).

    On the wire: HTTP 400, ``name`` ``USER_BUSINESS_ERROR``, ``message`` ``User business error.``, and a
    ``details`` entry ``{field: "SENDER_BATCH_ID", issue: "Batch with given sender_batch_id already exists",
    link: [{href: ".../v1/payments/payouts/<payout_batch_id>", rel: "self", method: "GET"}]}``.
    ``payout_batch_id`` is taken from that link (``None`` if PayPal sent none): after a timeout or 5xx on
    create, this is how the caller learns the batch it created."""

    def __init__(self, message: str, *, sender_batch_id: str, payout_batch_id: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sender_batch_id = sender_batch_id
        self.payout_batch_id = payout_batch_id
