from __future__ import annotations

from typing import Any

from django.db import models

from apertur.core import clock
from apertur.core.models import AuditEvent


def record(
    *,
    action: str,
    obj: models.Model,
    actor: Any = None,
    ip: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event for ``obj``. Call inside the service's transaction."""
    return AuditEvent.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        data=data or {},
        ip=ip,
        at=clock.now(),
    )
