"""Signals the oauth app sends for other apps to react to, without oauth importing them.

``app_lost_project``
    An OAuth app no longer has access to a project: the customer disconnected it (:func:`apertur.oauth.tokens.
    disconnect`, ``project_id`` set), or the app was deleted (:func:`apertur.oauth.services.record_app_deleted`,
    ``project_id`` None: every project). What the app set up through its access tokens must stop serving it: the
    webhooks app disables the endpoints the app created (they would keep sending the project's events to the
    partner's server). Keyword arguments: ``app_id``, ``client_id``, ``project_id``. Sent inside the transaction of
    the change: a receiver's writes commit or roll back with it.
"""

from __future__ import annotations

from django.dispatch import Signal

app_lost_project = Signal()
