"""Signals the projects app sends for other apps to react to, without projects importing them.

``plan_changed``
    A project moved to another plan (:func:`apertur.projects.services.change_plan`, called by billing events and
    staff). The webhooks app records the project's ``plan.changed`` event for its endpoints. Keyword arguments:
    ``project`` (on its new plan), ``old_plan``, ``new_plan``. Sent inside the transaction of the change, after its
    audit event: a receiver's writes commit or roll back with it.
"""

from __future__ import annotations

from django.dispatch import Signal

plan_changed = Signal()
