"""A cache of access-token checks for the bearer-protected API, safe across app processes.

What is cached: for an access token's SHA-256 hash, the outcome of a successful check — project public id,
app id, scopes, livemode, expiry — never the project or its plan (those are read on each request, so a plan
change or a project edit is seen at once), and never a refusal.

When: only with ``APERTUR_TOKEN_CACHE=1`` and a cache shared by every app process (``REDIS_URL`` set).
With the default per-process local-memory cache and several app-server processes, a revocation handled by
one process could not reach the others' memory, so a local cache is never used unless forced (the tests
force it: one process). It is off by default because it does not make a request faster on one machine: a
Redis round trip costs what the one prepared, indexed token query costs (bench/profile_oauth.py, W3 on
PostgreSQL: ~1.30 ms without it, ~1.43 ms with it, both with Redis rate limits). What it buys is database
offload: with many app servers in front of one database, bearer checks stop reaching the database for the
token (the project and plan are still read).

Why revocation still takes effect at once — a generation key:

- Every entry carries the value of ``oauth:token-generation`` read *before* the database lookup that
  produced it; an entry counts only while it equals the current generation. Reading both is one round
  trip (``get_many``).
- Every change that can kill a live access token sets a new random generation, in the same transaction
  (right away) and again in ``on_commit`` (so an entry written by a request that read the database just
  before the commit dies too): token revocation of any kind (``tokens._revoke``, ``revoke_access``), a
  connection removed, an app deactivated or deleted, a partner no longer approved, a customer deactivated
  or deleted, a project deleted. The model signals below catch the changes made through ``save()`` and
  ``delete()`` outside this package (partner suspension, the admin); a bulk ``QuerySet.update()`` of those
  fields elsewhere must call :func:`invalidate_all`.
- If the generation key is lost (Redis restart, eviction), a fresh random one replaces it and every old
  entry is void: losing cache state can only cause misses, never a stale success.
- Entries also expire on their own after ``TTL`` seconds and never outlive the token.

Revocations are rare next to API calls (a refresh rotation retires a refresh token, not the access token,
and does not touch the generation), so one global generation costs little and leaves no path to forget.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

GENERATION_KEY = "oauth:token-generation"
TTL = 300
_LOCAL_BACKENDS = ("LocMemCache", "DummyCache")


@dataclass(frozen=True, slots=True)
class CachedGrant:
    project_public_id: str
    app_id: int
    scopes: str
    livemode: bool
    expires_at: float  # POSIX timestamp of the access token's expiry


def enabled() -> bool:
    """``APERTUR_TOKEN_CACHE`` True: on; False: off; None (unset): on only if the cache is shared, which the
    settings never leave as a default (see the module docstring: opt in with APERTUR_TOKEN_CACHE=1)."""
    forced = getattr(settings, "APERTUR_TOKEN_CACHE", None)
    if forced is not None:
        return bool(forced)
    backend = str(settings.CACHES.get("default", {}).get("BACKEND", ""))
    return not backend.endswith(_LOCAL_BACKENDS)


def _key(token_hash: str) -> str:
    return f"oauth:at:{token_hash}"


def lookup(token_hash: str) -> tuple[CachedGrant | None, str]:
    """The cached grant (or None) and the current generation, to store a fresh entry under."""
    key = _key(token_hash)
    got: dict[str, Any] = cache.get_many([GENERATION_KEY, key])
    generation = got.get(GENERATION_KEY)
    if generation is None:
        fresh = secrets.token_hex(8)
        generation = fresh if cache.add(GENERATION_KEY, fresh, timeout=None) else cache.get(GENERATION_KEY)
        return None, str(generation or "")
    entry = got.get(key)
    if isinstance(entry, tuple) and len(entry) == 2 and entry[0] == generation:
        return entry[1], generation
    return None, generation


def store(token_hash: str, generation: str, grant: CachedGrant, *, now: float) -> None:
    if not generation:
        return
    timeout = int(min(TTL, grant.expires_at - now))
    if timeout > 0:
        cache.set(_key(token_hash), (generation, grant), timeout=timeout)


def _new_generation() -> None:
    cache.set(GENERATION_KEY, secrets.token_hex(8), timeout=None)


def invalidate_all() -> None:
    """Void every cached token check, now and again when the current transaction commits."""
    if not enabled():
        return
    _new_generation()
    transaction.on_commit(_new_generation)


# --- changes made through the models (services of other domains, the admin) ---------------------------


def _connect_signals() -> None:
    from apertur.accounts.models import User
    from apertur.oauth.models import Connection, OAuthApp, Token
    from apertur.partners.models import Partner, PartnerStatus
    from apertur.projects.models import Project

    @receiver(post_save, sender=Partner, weak=False, dispatch_uid="oauth-token-cache-partner")
    def _partner_saved(sender: Any, instance: Partner, **kwargs: Any) -> None:
        if instance.status != PartnerStatus.APPROVED:
            invalidate_all()

    @receiver(post_save, sender=User, weak=False, dispatch_uid="oauth-token-cache-user")
    def _user_saved(sender: Any, instance: User, **kwargs: Any) -> None:
        if not instance.is_active:
            invalidate_all()

    @receiver(post_save, sender=OAuthApp, weak=False, dispatch_uid="oauth-token-cache-app")
    def _app_saved(sender: Any, instance: OAuthApp, **kwargs: Any) -> None:
        if not instance.is_active:
            invalidate_all()

    @receiver(post_save, sender=Connection, weak=False, dispatch_uid="oauth-token-cache-connection")
    def _connection_saved(sender: Any, instance: Connection, **kwargs: Any) -> None:
        if instance.revoked_at is not None:
            invalidate_all()

    @receiver(post_save, sender=Token, weak=False, dispatch_uid="oauth-token-cache-token")
    def _token_saved(sender: Any, instance: Token, created: bool, **kwargs: Any) -> None:
        if not created and instance.access_revoked_at is not None:
            invalidate_all()

    for model in (Partner, User, OAuthApp, Connection, Token, Project):
        post_delete.connect(
            lambda sender, **kwargs: invalidate_all(),
            sender=model,
            weak=False,
            dispatch_uid=f"oauth-token-cache-delete-{model._meta.label_lower}",
        )


def ready() -> None:
    _connect_signals()
