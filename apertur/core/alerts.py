"""Staff alerts: something a person at Apertur must do (a payout PayPal holds, a billing event given up), mailed
to ``STAFF_NOTIFY_EMAIL`` once the surrounding transaction commits and recorded in the audit log.

One rule for every app: an alert about the same subject of concern (its ``key``) goes out at most once within
:data:`ALERT_EVERY`, so a failure met at every pass of a periodic job is one email a day, not one per pass. The
audit row (``action``, with ``data.key``) is both the record of the alert and what that rule reads. A caller that
must alert exactly once (not once a day) claims the thing it alerts about under a row lock or a conditional
UPDATE first, in the same transaction. Two workers alerting about one subject at the same moment take turns
(:func:`_one_at_a_time`): the second sees the first's record and sends nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from django.conf import settings
from django.db import connection, models

from apertur.core import audit, clock, mail
from apertur.core.models import AuditEvent

#: One alert per ``key`` at most this often.
ALERT_EVERY = dt.timedelta(hours=24)


def _one_at_a_time(*subject: str) -> None:
    """Until the caller's transaction ends, others alerting about ``subject`` wait here: each checked for an earlier
    alert before the other had recorded its own, and both mailed (two workers giving up on one endpoint's deliveries
    at once). PostgreSQL: a transaction-scoped advisory lock on a hash of the subject. SQLite's writers take turns
    from BEGIN already (``transaction_mode`` IMMEDIATE)."""
    if connection.vendor != "postgresql":
        return
    digest = hashlib.sha256("\x1f".join(subject).encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])


def alert_staff(
    *,
    action: str,
    about: models.Model,
    key: str,
    subject: str,
    lines: list[str],
    template: str,
) -> bool:
    """Mail ``subject`` and ``lines`` (rendered by ``template``) to ``STAFF_NOTIFY_EMAIL`` and record ``action`` on
    ``about``, unless an alert with the same ``action`` and ``key`` went out within :data:`ALERT_EVERY`. Call inside
    the transaction of the change it is about: a rolled-back change sends nothing. True when it was sent."""
    _one_at_a_time("staff", action, key)
    since = clock.now() - ALERT_EVERY
    if AuditEvent.objects.filter(action=action, at__gte=since, data__key=key).exists():
        return False
    audit.record(action=action, obj=about, data={"key": key, "subject": subject})
    mail.send(to=settings.STAFF_NOTIFY_EMAIL, subject=subject, template=template, context={"lines": lines})
    return True


def notice_once(
    *,
    action: str,
    about: models.Model,
    data: dict[str, object],
    to: str,
    subject: str,
    template: str,
    context: dict[str, Any],
) -> bool:
    """The same rule for a notice to a customer about one of their objects (a webhook endpoint dropping events, a
    destination dropping copies): mail ``template`` to ``to`` (after the commit) and record ``action`` on ``about``,
    unless such a notice about it went out within :data:`ALERT_EVERY`. True when it was sent."""
    _one_at_a_time("notice", action, about._meta.label_lower, str(about.pk))
    told = AuditEvent.objects.filter(
        action=action,
        object_type=about._meta.label_lower,
        object_id=str(about.pk),
        at__gte=clock.now() - ALERT_EVERY,
    )
    if told.exists():
        return False
    audit.record(action=action, obj=about, data=data)
    mail.send(to=to, subject=subject, template=template, context=context)
    return True
