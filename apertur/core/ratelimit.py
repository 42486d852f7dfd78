"""Fixed-window counters in Django's cache.

With ``REDIS_URL`` set the cache is Redis, so limits hold across every app process; by default it is
process-local memory. Written here rather than using django-ratelimit because services (not only views)
need to hit and query limits with their own keys (per account, per client, per IP) and report
``Retry-After``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from apertur.core import clock
from apertur.core.errors import RateLimited


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    max_hits: int
    window_seconds: int


def _window(limit: Limit) -> tuple[int, int]:
    ts = clock.now().timestamp()
    start = int(ts // limit.window_seconds) * limit.window_seconds
    retry_after = max(1, math.ceil(start + limit.window_seconds - ts))
    return start, retry_after


def _key(limit: Limit, key: str, start: int) -> str:
    return f"rl:{limit.name}:{key}:{start}"


@dataclass(frozen=True, slots=True)
class Status:
    limit: int
    remaining: int
    reset: int  # seconds until the window resets

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


def consume(limit: Limit, key: str) -> Status:
    """Count one request and report what is left; raise :class:`RateLimited` past the budget."""
    start, retry_after = _window(limit)
    count = _incr(limit, key, start)
    if count > limit.max_hits:
        raise RateLimited(retry_after=retry_after)
    return Status(limit=limit.max_hits, remaining=limit.max_hits - count, reset=retry_after)


def _incr(limit: Limit, key: str, start: int) -> int:
    """One atomic increment of the window's counter, created with its expiry on first use. Every API and
    token request pays for it, so it costs one cache operation in the common case: one Redis round trip
    (``SET NX EX`` + ``INCR`` pipelined), or one local-memory ``incr``."""
    cache_key = _key(limit, key, start)
    timeout = limit.window_seconds + 5
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(cache_key)
        client = backend._cache.get_client(full_key, write=True)
        pipe = client.pipeline()
        pipe.set(full_key, 0, ex=timeout, nx=True)
        pipe.incr(full_key)
        return int(pipe.execute()[1])
    try:
        return int(backend.incr(cache_key))
    except ValueError:  # the window's first hit (or the counter was evicted)
        if backend.add(cache_key, 1, timeout=timeout):
            return 1
        return int(backend.incr(cache_key))


def hit(limit: Limit, key: str) -> None:
    """Count one attempt; raise :class:`RateLimited` once the window's budget is spent."""
    consume(limit, key)


def check(limit: Limit, key: str) -> None:
    """Raise if the budget is already spent, without counting an attempt."""
    start, retry_after = _window(limit)
    if (cache.get(_key(limit, key, start)) or 0) >= limit.max_hits:
        raise RateLimited(retry_after=retry_after)


def reset(limit: Limit, key: str) -> None:
    start, _ = _window(limit)
    cache.delete(_key(limit, key, start))
