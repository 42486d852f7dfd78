"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
``{webhook-id}.{webhook-timestamp}.{body}`` with the endpoint's ``whsec_`` secret, sent as
``webhook-signature: v1,<base64>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def headers(*, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a signed request (webhook deliveries and HTTPS destinations): one
    ``v1,`` signature per secret, space-separated, any one of which may match (a roll's overlap signs twice)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets
        ),
    }


def verify(*, secret: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """True when any ``v1,`` signature in ``header`` matches (constant-time)."""
    expected = sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
    return any(hmac.compare_digest(expected, part) for part in header.split())
