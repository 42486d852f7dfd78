"""Fixed-window counters in Django's cache.

With ``REDIS_URL`` set the cache is Redis, so limits hold across every app process; by default it is
process-local memory, and then the counters live in a dictionary of this module (:class:`_ProcessCounters`)
rather than in Django's local-memory cache. Written here rather than using django-ratelimit because services
(not only views) need to hit and query limits with their own keys (per account, per client, per IP) and
report ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from apertur.core import clock
from apertur.core.errors import RateLimited, ServiceUnavailable

logger = logging.getLogger(__name__)


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


class _ProcessCounters:
    """The window counters when the cache is this process's memory (``LocMemCache``, which no other process
    sees either). Django's local-memory cache pickles every value, checks every key character by character and
    keeps its LRU order under a lock: about half of what a rate-limit check cost on the API's hot path
    (bench/http, ``GET /api/v1/plan``: +3.5 % requests/s with these counters). Here a plain dictionary per
    (limit, window) under one lock; a limit's earlier windows are dropped when its next window opens, so
    memory holds the current window's keys only. (Nor does a flood of keys evict live counters here, as the
    cache's 300-entry cull would have.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int], dict[str, int]] = {}  # (limit name, window start) -> key -> hits

    def incr(self, limit: Limit, key: str, start: int) -> int:
        with self._lock:
            window = self._windows.get((limit.name, start))
            if window is None:
                for old in [w for w in self._windows if w[0] == limit.name]:
                    del self._windows[old]
                window = self._windows[(limit.name, start)] = {}
            count = window.get(key, 0) + 1
            window[key] = count
            return count

    def get(self, limit: Limit, key: str, start: int) -> int:
        with self._lock:
            return self._windows.get((limit.name, start), {}).get(key, 0)

    def decr(self, limit: Limit, key: str, start: int) -> None:
        with self._lock:
            window = self._windows.get((limit.name, start))
            if window is None or window.get(key, 0) <= 0:
                return
            if window[key] == 1:
                del window[key]
            else:
                window[key] -= 1

    def delete(self, limit: Limit, key: str, start: int) -> None:
        with self._lock:
            self._windows.get((limit.name, start), {}).pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._windows.clear()


_process_counters = _ProcessCounters()


def _in_process() -> bool:
    return isinstance(caches["default"], LocMemCache)


# Redis out of reach: the first failure is logged, then at most one line a minute for as long as it lasts.
_LOG_EVERY_SECONDS = 60.0
_last_logged = [float("-inf")]


@contextlib.contextmanager
def _shared_counters() -> Iterator[None]:
    """Rate limits are a hard dependency once ``REDIS_URL`` is set (docs/deploy.md): a request that cannot count
    fails, as a :class:`ServiceUnavailable` (503, "try again") every view answers in its own format, not the
    driver's error (an HTML 500 page, even where the caller reads JSON). Each operation is bounded by
    ``REDIS_TIMEOUT``."""
    try:
        yield
    except RedisError as exc:
        now = time.monotonic()
        if now - _last_logged[0] >= _LOG_EVERY_SECONDS:
            _last_logged[0] = now
            logger.error("rate limits unavailable, Redis out of reach (requests answer 503): %r", exc)
        raise ServiceUnavailable() from exc


def clear_process_counters() -> None:
    """Forget every count kept in this process (tests, between cases: what ``cache.clear()`` did before the
    counters left the cache)."""
    _process_counters.clear()


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
    (``SET NX EX`` + ``INCR`` pipelined), or one in-process dictionary update."""
    if _in_process():
        return _process_counters.incr(limit, key, start)
    backend = caches["default"]
    cache_key = _key(limit, key, start)
    timeout = limit.window_seconds + 5
    if isinstance(backend, RedisCache):
        full_key = backend.make_and_validate_key(cache_key)
        with _shared_counters():
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


@dataclass(frozen=True, slots=True)
class Hit:
    """One attempt counted in one window of a budget: what :func:`give_back` takes back."""

    limit: Limit
    key: str
    window_start: int


def per_mode(owner_pk: object, livemode: bool) -> str:
    """The key of a budget counted per owner and mode (a project's live and test budgets are apart)."""
    return f"{owner_pk}|{'live' if livemode else 'test'}"


def hit(limit: Limit, key: str, *, what: str | None = None) -> Hit:
    """Count one attempt; raise :class:`RateLimited` once the window's budget is spent. ``what`` names the attempts
    for the refusal's message, which pages show as it is ("Too many {what}. Try again in …"): a service's budget
    then reads the same on every page that calls it (the API answers its own fixed message)."""
    start, retry_after = _window(limit)
    if _incr(limit, key, start) > limit.max_hits:
        raise RateLimited(retry_after=retry_after, what=what)
    return Hit(limit=limit, key=key, window_start=start)


def hit_all(*budgets: tuple[Limit, str]) -> list[Hit]:
    """Count one attempt against each budget, in order. When one is spent the attempt is refused and gives
    back everything it counted (the spent budget's hit included): a refused attempt tried nothing, so the
    counters keep meaning "attempts that went through", and a :func:`give_back` elsewhere can reopen them."""
    counted: list[Hit] = []
    for limit, key in budgets:
        start, retry_after = _window(limit)
        count = _incr(limit, key, start)
        counted.append(Hit(limit=limit, key=key, window_start=start))
        if count > limit.max_hits:
            give_back(*counted)
            raise RateLimited(retry_after=retry_after)
    return counted


# Decrement only a live, positive counter: a window that has expired (or was reset) must not come back as a
# key without expiry, nor go negative and grant extra attempts.
_REDIS_GIVE_BACK = """
local hits = tonumber(redis.call('GET', KEYS[1]) or '0')
if hits > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


def give_back(*hits: Hit) -> None:
    """Undo counted attempts, each in the window it was counted in (a later window is left alone), never
    below zero. For budgets of *failures* that must count before the outcome is known (so parallel attempts
    cannot outrun the check): count, then give the hit back once the attempt turned out not to be a failure."""
    for counted in hits:
        limit, key, start = counted.limit, counted.key, counted.window_start
        if _in_process():
            _process_counters.decr(limit, key, start)
            continue
        backend = caches["default"]
        cache_key = _key(limit, key, start)
        if isinstance(backend, RedisCache):
            full_key = backend.make_and_validate_key(cache_key)
            with _shared_counters():
                client = backend._cache.get_client(full_key, write=True)
                client.eval(_REDIS_GIVE_BACK, 1, full_key)
            continue
        # Other caches have no atomic conditional decrement (nor atomic increments: Django's incr is a get
        # and a set); good enough for the single-process backends they are used as.
        if (backend.get(cache_key) or 0) > 0:
            with contextlib.suppress(ValueError):  # expired meanwhile
                backend.decr(cache_key)


def check(limit: Limit, key: str) -> None:
    """Raise if the budget is already spent, without counting an attempt."""
    start, retry_after = _window(limit)
    if _in_process():
        hits = _process_counters.get(limit, key, start)
    else:
        with _shared_counters():
            hits = caches["default"].get(_key(limit, key, start)) or 0
    if hits >= limit.max_hits:
        raise RateLimited(retry_after=retry_after)


def reset(limit: Limit, key: str) -> None:
    start, _ = _window(limit)
    if _in_process():
        _process_counters.delete(limit, key, start)
    else:
        with _shared_counters():
            caches["default"].delete(_key(limit, key, start))
