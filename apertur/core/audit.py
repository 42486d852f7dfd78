from __future__ import annotations

from typing import Any

from django.db import models

from apertur.core import clock
from apertur.core.models import AuditEvent


def event(
    *,
    action: str,
    obj: models.Model,
    actor: Any = None,
    ip: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """The audit row for ``obj``, not saved (:func:`record` saves it; the token endpoint's compiled insert too)."""
    return AuditEvent(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        data=data or {},
        ip=ip,
        at=clock.now(),
    )


def record(
    *,
    action: str,
    obj: models.Model,
    actor: Any = None,
    ip: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event for ``obj``. Call inside the service's transaction."""
    row = event(action=action, obj=obj, actor=actor, ip=ip, data=data)
    row.save(force_insert=True)
    return row
