"""Deployment check: a production server must verify Stripe's signatures with the endpoint's own secret."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def webhook_secret_configured(app_configs: Any, **kwargs: Any) -> list[Warning]:
    from apertur.config.settings import dev_stripe_webhook_secret

    configured: str = settings.STRIPE_WEBHOOK_SECRET
    if settings.DEBUG or configured != dev_stripe_webhook_secret(settings.SECRET_KEY):
        return []
    return [
        Warning(
            "STRIPE_WEBHOOK_SECRET is not set: POST /webhooks/stripe verifies with a development secret derived "
            "from SECRET_KEY, which Stripe does not know, so every real delivery is refused.",
            hint="Set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_…) from the Stripe dashboard.",
            id="stripe_billing.W001",
        )
    ]
