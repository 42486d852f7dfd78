"""``POST /webhooks/paypal``: PayPal's payouts webhooks (``PAYMENT.PAYOUTS-ITEM.*``, ``PAYMENT.PAYOUTSBATCH.*``).

A delivery is trusted only once PayPal itself says so (``POST /v1/notifications/verify-webhook-signature`` with
our ``PAYPAL_WEBHOOK_ID``); then :func:`apertur.payouts.reconcile.receive_event` stores it once by its id and
applies it by reading the batch's current state from PayPal. The status code is what PayPal acts on: any 2xx
means "stored, do not send again"; anything else makes PayPal redeliver (for up to three days), so:

- not configured, or PayPal unreachable while verifying → 503: nothing stored, the redelivery may succeed;
- a delivery that does not verify (forged, modified, another webhook's, headers missing) or is not a JSON
  object with an ``id`` of at most 100 characters → 400: nothing stored;
- verified → 200 ``{"received": true, "status": ...}`` for a new event and a redelivery alike, even when the
  event could not be applied yet (it stays ``received``; ``process_pending_events`` applies it later).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apertur.core.http import body_within
from apertur.core.validation import loads_json
from apertur.integrations.paypal.client import client_from_settings
from apertur.integrations.paypal.errors import PayPalError
from apertur.payouts import reconcile
from apertur.payouts.models import PayPalEvent

logger = logging.getLogger(__name__)
#: PayPal's payout events are a few kilobytes; anything near this is not one of them.
MAX_BODY_BYTES = 1_000_000
#: The width of the column the id is stored in (PayPal's are ~30 characters): a longer one was PostgreSQL's
#: DataError, a 500, once verified.
MAX_EVENT_ID = PayPalEvent._meta.get_field("event_id").max_length or 0


def _refuse(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
@require_POST
def paypal_webhook(request: HttpRequest) -> JsonResponse:
    """``POST /webhooks/paypal``: verify the delivery with PayPal, then store and apply it once."""
    webhook_id = str(getattr(settings, "PAYPAL_WEBHOOK_ID", "") or "")
    if not webhook_id:
        # Never accept an event we cannot verify; the poller keeps reconciling payouts meanwhile.
        logger.error("PayPal webhook refused: PAYPAL_WEBHOOK_ID is not set, so no delivery can be verified")
        return _refuse(503, "not_configured", "PayPal webhooks are not configured (PAYPAL_WEBHOOK_ID).")
    raw = body_within(request, MAX_BODY_BYTES)
    if raw is None:
        logger.warning("PayPal webhook refused: a body over %s bytes", MAX_BODY_BYTES)
        return _refuse(413, "body_too_large", f"A PayPal event is at most {MAX_BODY_BYTES} bytes.")
    try:
        event: Any = loads_json(raw)
    except ValueError:  # JSON syntax, not UTF-8, nested too deep
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not 0 < len(event["id"]) <= MAX_EVENT_ID:
        logger.warning("PayPal webhook refused: the body is not a JSON event object with an id")
        return _refuse(
            400,
            "malformed_event",
            f"The body is not a PayPal event (a JSON object with an id of at most {MAX_EVENT_ID} characters).",
        )
    event_id, event_type = event["id"], str(event.get("event_type") or "")

    with client_from_settings() as client:
        try:
            genuine = client.verify_webhook_signature(headers=request.headers, body=raw, webhook_id=webhook_id)
        except PayPalError as exc:
            logger.warning("PayPal webhook %r %r not verified yet, PayPal unreachable: %s", event_type, event_id, exc)
            return _refuse(503, "verification_unavailable", "PayPal could not be asked to verify this delivery.")
        if not genuine:
            logger.warning("PayPal webhook %r %r refused: the signature does not verify", event_type, event_id)
            return _refuse(400, "invalid_signature", "PayPal did not verify this delivery.")
        stored = reconcile.receive_event(event=event, client=client)

    logger.info("PayPal webhook %s %s: %s %s", event_type, event_id, stored.status, stored.detail)
    return JsonResponse({"received": True, "status": stored.status})
