"""Deployment checks (``manage.py check --deploy`` and start-up): say what is unsafe to run in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def shared_rate_limits(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if settings.DEBUG or settings.REDIS_URL:
        return []
    return [
        Warning(
            "Rate limits live in each process's memory: with several app processes each has its own budget, "
            "and a flood of junk keys can push counters out of the small in-memory cache.",
            hint="Set REDIS_URL so every process counts in one place.",
            id="apertur.W001",
        )
    ]
