from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apertur.core.http import body_within, client_ip
from apertur.integrations.stripe import services

logger = logging.getLogger(__name__)
#: Stripe's events are a few kilobytes (an invoice lists at most 10 lines before paging); anything near this is not
#: one of them. Refused before it is read, as the PayPal webhook refuses past its own (the same limit).
MAX_BODY_BYTES = 1_000_000


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """``POST /webhooks/stripe``. 2xx tells Stripe the event is safely stored (applied, ignored or waiting
    for an earlier one); a bad signature or body is a 400 and changes nothing; a body over
    :data:`MAX_BODY_BYTES` a 413, not read, not kept."""
    body = body_within(request, MAX_BODY_BYTES)
    if body is None:
        logger.warning("Stripe webhook refused: a body over %s bytes", MAX_BODY_BYTES)
        message = f"A Stripe event is at most {MAX_BODY_BYTES} bytes."
        return JsonResponse({"error": {"code": "body_too_large", "message": message}}, status=413)
    try:
        outcome = services.intake(
            body=body, signature=request.headers.get("Stripe-Signature"), client_ip=client_ip(request)
        )
    except services.Rejected as exc:
        status = 503 if exc.code == "not_configured" else 400
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=status)
    return JsonResponse(
        {"id": outcome.event_id, "status": outcome.status, "detail": outcome.detail, "duplicate": outcome.duplicate}
    )
