"""Signals core sends for the domain apps to react to, without core importing them.

``staff_deleting``
    Staff are deleting an object in the admin (:class:`apertur.core.admin.AuditedDelete`, from its page or with
    "delete selected"), in the deletion's transaction, *before* Django reads what the deletion takes with it
    (its cascade). A receiver that must wait for requests in flight on rows the cascade removes (they would commit
    rows the cascade has not read, whose foreign keys then fail the deletion) takes their locks here. Keyword
    arguments: ``sender`` (the model), ``instance``, ``actor`` (the staff user), ``ip``. A receiver's exception
    rolls the deletion back and is shown as the admin's error.
"""

from __future__ import annotations

from django.dispatch import Signal

staff_deleting = Signal()
