"""How many of a kind of thing one owner may have (projects per account, OAuth apps per partner, webhook endpoints
per project, …): one rule for every such cap, counted under the owner's row lock."""

from __future__ import annotations

from django.db.models import Model, QuerySet

from apertur.core.errors import LimitReached


def lock_row(model: type[Model], pk: object, *, deleting: bool = False) -> None:
    """Hold one row until the caller's transaction ends, so that what is decided from it (a count of its children, a
    name unique among them) stays true until this one commits. FOR NO KEY UPDATE: a row referring to it (the new
    child) may still be inserted by others; their creations of the same kind queue here. ``deleting``: FOR UPDATE,
    which also waits for every insert in flight referring to the row (its key-share lock) and holds off later ones,
    so a deletion's cascade reads every child (core.admin.AuditedDelete)."""
    rows = model._default_manager.select_for_update(no_key=not deleting).filter(pk=pk)
    list(rows.values_list("pk", flat=True))


def ensure_room(*, owner: Model, existing: QuerySet, limit: int, error: LimitReached) -> None:
    """Refuse (``error``, which names the limit and the way out) when ``owner`` already has ``limit`` of ``existing``.
    The owner's row stays locked (:func:`lock_row`) until the caller's transaction commits: two creations at once
    cannot both take the last slot. Call it inside the creating transaction, before the insert."""
    lock_row(owner._meta.model, owner.pk)  # not type(owner): a request.user is a lazy object
    if existing.count() >= limit:
        raise error
