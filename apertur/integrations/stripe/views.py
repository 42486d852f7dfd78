from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apertur.core.http import client_ip
from apertur.integrations.stripe import services


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """``POST /webhooks/stripe``. 2xx tells Stripe the event is safely stored (applied, ignored or waiting
    for an earlier one); a bad signature or body is a 400 and changes nothing."""
    try:
        outcome = services.intake(
            body=request.body, signature=request.headers.get("Stripe-Signature"), client_ip=client_ip(request)
        )
    except services.Rejected as exc:
        status = 503 if exc.code == "not_configured" else 400
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=status)
    return JsonResponse(
        {"id": outcome.event_id, "status": outcome.status, "detail": outcome.detail, "duplicate": outcome.duplicate}
    )
