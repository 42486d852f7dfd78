"""Staff alerts: something a person at Apertur must do (a payout PayPal holds, a billing event given up), mailed
to ``STAFF_NOTIFY_EMAIL`` once the surrounding transaction commits and recorded in the audit log.

One rule for every app: an alert about the same subject of concern (its ``key``) goes out at most once within
:data:`ALERT_EVERY`, so a failure met at every pass of a periodic job is one email a day, not one per pass. The
audit row (``action``, with ``data.key``) is both the record of the alert and what that rule reads. A caller that
must alert exactly once (not once a day) claims the thing it alerts about under a row lock or a conditional
UPDATE first, in the same transaction: the key only spares a second email, it does not serialise two workers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models

from apertur.core import audit, clock, mail
from apertur.core.models import AuditEvent

#: One alert per ``key`` at most this often.
ALERT_EVERY = dt.timedelta(hours=24)


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
