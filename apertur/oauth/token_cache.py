"""Caches of access-token checks for the bearer-protected API, safe across app processes.

Two modes (``APERTUR_TOKEN_CACHE``, docs/deploy.md):

- ``local`` — the default: each process keeps the bearer check's whole row (the token's grant, its project and
  plan) and the introspection row of active access tokens (with the app's credentials the client authenticates
  against) for the token hashes it saw, in its own memory, and a request it answers from there runs no SQL at
  all. The generation (below) lives in a small memory-mapped file next to the SQLite database
  (``<database>-tokens``; with PostgreSQL in ``APERTUR_VAR_DIR``), the way SQLite shares its own WAL index
  between processes: every process on the host reads and bumps the same eight bytes, without a system call.
  With PostgreSQL, app servers may run on several hosts: each process also LISTENs (one thread, one
  connection) on a channel every change NOTIFYs in its transaction, and its entries count only while that
  listener is connected and proved alive (:class:`_Listener`). A cached row is rebuilt into new instances for
  each request (no request sees another's objects) and checked again (expiry, grant) each time.
- ``shared`` — ``APERTUR_TOKEN_CACHE=1`` with ``REDIS_URL``, where the listener cannot run (app servers that
  reach PostgreSQL only through a connection pooler, which does not carry LISTEN): the outcome of
  a successful check (project public id, app id, scopes, livemode, expiry; never a refusal) in Redis, the
  project and its plan read from the database on each request. It offloads the database rather than making
  one request faster: a Redis round trip costs what the one prepared, indexed token query costs
  (bench/profile_oauth.py, W3 on PostgreSQL: ~1.30 ms without it, ~1.43 ms with it).

Why revocation still takes effect at once in every process of the host, and on other hosts as soon as PostgreSQL
delivers the commit's NOTIFY — a generation:

- Every entry carries the generation read *before* the database lookup that produced it; an entry counts only
  while it equals the current generation.
- Every change that can kill a live access token or change what the check returns sets a new random
  generation, in the same transaction (right away) and again in ``on_commit`` (so an entry written by a
  request that read the database just before the commit dies too); with PostgreSQL the transaction also
  NOTIFYs the other hosts' listeners, which renew theirs when it commits, and notifies again once it has
  committed: token revocation of any kind
  (``tokens._revoke``, ``revoke_access``), a connection removed, an app saved (deactivated, its secret
  rotated) or deleted, a partner no longer approved, a customer saved (deactivated, email changed; not a
  login's ``last_login``) or deleted, a project saved or deleted, a plan saved or deleted.
  The model signals below catch the changes made through ``save()`` and ``delete()`` outside this package
  (partner suspension, plan changes, the admin); a bulk ``QuerySet.update()`` of those fields elsewhere must
  call :func:`invalidate_all`. A process with the cache off still bumps a local generation file that exists,
  so a management command run with other settings cannot leave stale entries behind; a process that cannot
  map an existing file fails the change (:class:`TokenCacheError`) rather than commit it unseen. The file at
  the path is followed if it is replaced: on every bump, and every ``RECHECK_SECONDS`` when reading.
- If the shared generation key is lost (Redis restart, eviction), a fresh random one replaces it and every
  old entry is void: losing cache state can only cause misses, never a stale success.
- Entries also expire on their own after ``TTL`` seconds and never outlive the token.

Revocations are rare next to API calls (a refresh rotation retires a refresh token, not the access token,
and does not touch the generation), so one global generation costs little and leaves no path to forget.
"""

from __future__ import annotations

import contextvars
import logging
import mmap
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.signals import post_delete, post_migrate, post_save
from django.dispatch import receiver
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

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


MODES = ("off", "local", "shared")


def mode() -> str:
    """``settings.APERTUR_TOKEN_CACHE``: ``"local"``, ``"shared"`` or ``"off"`` (True and False mean shared and
    off); None: shared if the Django cache is shared by every process, else off."""
    value = getattr(settings, "APERTUR_TOKEN_CACHE", None)
    if value is None:
        backend = str(settings.CACHES.get("default", {}).get("BACKEND", ""))
        return "off" if backend.endswith(_LOCAL_BACKENDS) else "shared"
    if isinstance(value, bool):
        return "shared" if value else "off"
    if value not in MODES:
        raise ValueError(f"APERTUR_TOKEN_CACHE must be one of {', '.join(MODES)}, not {value!r}")
    return str(value)


# --- local: this process's memory, a generation shared by memory-mapped file --------------------------------

LOCAL_MAX_ENTRIES = 10_000
_GENERATION_BYTES = 8
#: How often a process checks that the generation file at the path is still the one it maps (a file deleted and
#: recreated, a database restored): at most this long, a reader may keep answering from entries another
#: process's new file no longer covers. Writers check on every bump.
RECHECK_SECONDS = 1.0


class TokenCacheError(RuntimeError):
    """A change that must void cached token checks could not reach the generation file other processes read."""


class _GenerationFile:
    """Eight bytes in a file every process on the host maps (MAP_SHARED): reading them is a memory read."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            st = os.fstat(fd)
            if st.st_size < _GENERATION_BYTES:
                # Written, not ftruncate()d: a hole's first write through the mapping would have to allocate a
                # block, and on a full disk that is a SIGBUS instead of an error.
                os.pwrite(fd, secrets.token_bytes(_GENERATION_BYTES), 0)
            self.map = mmap.mmap(fd, _GENERATION_BYTES)
            self.identity = (st.st_dev, st.st_ino)
        finally:
            os.close(fd)  # the mapping stays valid

    def read(self) -> bytes:
        return self.map[:_GENERATION_BYTES]

    def bump(self) -> None:
        # A reader in another process may see a torn value while this is written: it differs from every
        # generation an entry was stored with, so it can only cause a miss.
        self.map[:_GENERATION_BYTES] = secrets.token_bytes(_GENERATION_BYTES)


def generation_path(using: str = DEFAULT_DB_ALIAS) -> Path:
    """Next to the SQLite database file (as SQLite's own ``-wal`` and ``-shm``; symlinks resolved), so every
    process using that database shares it; in ``APERTUR_VAR_DIR`` for other databases."""
    db = connections[using].settings_dict
    name = str(db.get("NAME") or "")
    if db["ENGINE"].endswith("sqlite3") and name and not name.startswith("file:") and name != ":memory:":
        return Path(os.path.realpath(name) + "-tokens")
    return Path(settings.VAR_DIR) / f"token-generation-{name or using}"


class _Generation:
    """The generation file of one database as this process maps it, following the path if the file there is
    replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: _GenerationFile | None = None
        self.checked = -RECHECK_SECONDS
        self.lock = threading.Lock()
        self.warned = False

    def _follow(self, *, create: bool) -> _GenerationFile | None:
        """Map the file now at the path if it is not the one mapped (or none is); returns the one it replaced.
        Raises OSError when the path cannot be mapped."""
        with self.lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                if not create:
                    return None
                st = None
            if self.file is not None and st is not None and (st.st_dev, st.st_ino) == self.file.identity:
                return None
            old, self.file = self.file, _GenerationFile(self.path)
            _entries.clear()  # kept under the old file's generations
            return old

    def current(self) -> bytes | None:
        """The generation to read entries against (None: no mapping; the cache is off for this request)."""
        now = time.monotonic()
        if now - self.checked >= RECHECK_SECONDS:
            self.checked = now
            try:
                self._follow(create=True)
            except OSError as exc:
                # Not even the file mapped before counts: other processes may now bump only the one at the path.
                self.file = None
                if not self.warned:
                    self.warned = True
                    log.warning("token cache: cannot map %s (%s); the local token cache is off", self.path, exc)
        file = self.file
        return file.read() if file is not None else None

    def bump(self, *, create: bool) -> None:
        """A new generation in the file at the path (and in the one mapped before, if the path now holds
        another). Raises :class:`TokenCacheError` if a file is there that cannot be mapped: other processes
        may be reading it, and the change must not commit without voiding their entries."""
        try:
            old = self._follow(create=create)
        except OSError as exc:
            if self.path.exists():
                raise TokenCacheError(
                    f"Cannot void the access-token cache of the other processes through {self.path}: {exc}. Run "
                    "every process of the deployment as the same user, or set APERTUR_TOKEN_CACHE=0 on all of them."
                ) from exc
            old = None
        if old is not None:
            old.bump()
        if self.file is not None:
            self.file.bump()


# --- PostgreSQL: the processes of other hosts, through LISTEN/NOTIFY ------------------------------------------

#: The channel every change notifies (PostgreSQL scopes channels to one database).
CHANNEL = "apertur_token_cache"
#: How often the listener proves its connection alive (:func:`_check_one_session`) when no notification comes.
HEARTBEAT_SECONDS = 1.0
#: A listener that has not proved its connection alive for this long no longer vouches for any entry (a silently
#: dead TCP connection would otherwise drop notifications unseen): the cache is off in its process meanwhile.
STALE_SECONDS = 3.0
#: How long the first cached lookup of a process waits for its listener to connect before going to the database.
CONNECT_WAIT_SECONDS = 2.0
_LISTENER_APPLICATION_NAME = "apertur-token-cache"


def _listener_params(using: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    """libpq parameters of Django's own connection (host, port, database, user, password, sslmode, ...), without
    Django's Python-side options (cursor class, adapters)."""
    params = connections[using].get_connection_params()
    kept = {key: value for key, value in params.items() if isinstance(value, str | int) and key != "prepare_threshold"}
    kept["application_name"] = _LISTENER_APPLICATION_NAME
    kept.setdefault("connect_timeout", 5)
    # Let the kernel find a peer that vanished without closing the socket, on top of the heartbeat: an idle
    # connection through keepalives, one with a heartbeat unacknowledged for 5 s through TCP_USER_TIMEOUT.
    kept.update(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2, tcp_user_timeout=5000)
    return kept


class PoolerError(RuntimeError):
    """The listener's connection does not keep to one PostgreSQL session: notifications cannot be trusted."""


def _check_one_session(conn: Any) -> None:
    """The heartbeat, and the proof that LISTEN works on this connection: the server session answering now is
    the one the connection started with. A connection pooler that shares server sessions between clients hands
    each client a cancel key of its own (``BackendKeyData``; PgBouncer does), so the two differ; in transaction
    mode it also moves the client between server sessions, and LISTEN then succeeds but notifications never
    arrive, while ``SELECT 1`` would go on answering. Raises :class:`PoolerError`."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    if row is None or row[0] != conn.info.backend_pid:
        raise PoolerError(
            f"the session answering (backend {row[0] if row else None}) is not the one connected to (backend "
            f"{conn.info.backend_pid}): a connection pooler is in between, which does not carry LISTEN/NOTIFY. Give "
            "the app a direct connection to PostgreSQL, or set APERTUR_TOKEN_CACHE=1 (Redis) or 0"
        )


class _Listener:
    """One thread per process that LISTENs on its own PostgreSQL connection and renews its part of the
    generation on every notification, so a change committed on another host (whose generation file this host
    never sees) voids this process's entries when PostgreSQL delivers the commit's NOTIFY, typically well under a
    millisecond later (RFC 7009 section 2 allows for such a propagation delay; clients must not use a token after
    revoking it). Its part is None (the cache off in this process, every lookup from the database) until it is
    LISTENing, while it reconnects, and when its connection has not been proved alive for ``STALE_SECONDS``; a
    reconnect renews it, since notifications sent meanwhile were lost. Its connection must reach PostgreSQL
    directly (:func:`_check_one_session`, at connect and at every heartbeat)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.generation: bytes | None = None
        self.alive_at = -STALE_SECONDS
        self.pid = 0
        self.thread: threading.Thread | None = None
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.failing = False
        self.stale_logged = False
        self.backend_pid = 0  # the listener's PostgreSQL backend (tests end it to show a reconnect)

    def current(self) -> bytes | None:
        thread = self.thread
        if thread is None or self.pid != os.getpid() or not thread.is_alive():
            self._start()
        generation = self.generation
        if generation is None:
            return None
        silent = time.monotonic() - self.alive_at
        if silent > STALE_SECONDS:
            if not self.stale_logged:
                self.stale_logged = True
                log.warning(
                    "token cache: the listener's heartbeat has not answered for %.0f s; the cache is off in this "
                    "process until it does",
                    silent,
                )
            return None
        return generation

    def _start(self) -> None:
        with self.lock:
            thread = self.thread
            if thread is not None and self.pid == os.getpid() and thread.is_alive():
                return
            if self.stopping.is_set():
                return
            # A forked child inherits the parent's state, not its thread.
            self.pid, self.generation, self.ready = os.getpid(), None, threading.Event()
            self.thread = threading.Thread(target=self._run, name="apertur-token-cache-listener", daemon=True)
            self.thread.start()
        self.ready.wait(CONNECT_WAIT_SECONDS)

    def _renew(self) -> None:
        self.generation = secrets.token_bytes(_GENERATION_BYTES)

    def _run(self) -> None:
        delay = 0.1
        while not self.stopping.is_set():
            try:
                import psycopg

                with psycopg.connect(**self.params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    _check_one_session(conn)
                    self.backend_pid = conn.info.backend_pid
                    self.alive_at = time.monotonic()
                    self._renew()  # what was stored before this LISTEN may have missed a notification
                    self.ready.set()
                    if self.failing:
                        self.failing = False
                        log.info("token cache: listening on %s again", CHANNEL)
                    delay = 0.1
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=HEARTBEAT_SECONDS):
                            self._renew()
                        # Notifications that arrive meanwhile wait in psycopg's backlog (psycopg >= 3.2.4).
                        _check_one_session(conn)
                        self.alive_at = time.monotonic()
                        if self.stale_logged:
                            self.stale_logged = False
                            log.info("token cache: the listener's heartbeat answers again")
            except Exception as exc:  # psycopg.Error, OSError: any failure turns the cache off until reconnected
                self.generation = None
                if not self.failing and not self.stopping.is_set():
                    self.failing = True
                    reason = " ".join(str(exc).split())  # libpq's messages span lines
                    log.warning("token cache: not listening on %s (%s); the cache is off until it is", CHANNEL, reason)
                self.ready.set()  # after the failure is recorded and logged: a waiter sees the whole outcome
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)
        self.generation = None

    def stop(self) -> None:
        self.stopping.set()
        self.generation = None
        thread = self.thread
        if thread is not None and thread.is_alive():
            thread.join(HEARTBEAT_SECONDS + 5)


# Database NAME -> its generation file and, with PostgreSQL, this process's listener (None with SQLite: one host).
_generations: dict[str, tuple[_Generation, _Listener | None]] = {}


def _parts() -> tuple[_Generation, _Listener | None]:
    connection = connections[DEFAULT_DB_ALIAS]
    name = str(connection.settings_dict.get("NAME") or "")
    found = _generations.get(name)
    if found is None:
        listener = _Listener(_listener_params()) if connection.vendor == "postgresql" else None
        found = _generations.setdefault(name, (_Generation(generation_path()), listener))
    return found


def stop_listeners() -> None:
    """End every listener thread and its connection (before the database is dropped: tests, benchmarks) and
    forget the generation files mapped: the next lookup starts afresh, as a new process would."""
    for _, listener in list(_generations.values()):
        if listener is not None:
            listener.stop()
    _generations.clear()


def release_database() -> None:
    """Before the default database is dropped (tests, benchmarks): end the listeners, whose connections would
    keep it from being dropped, and remove its generation file."""
    path = generation_path()
    stop_listeners()
    path.unlink(missing_ok=True)


# token hash -> (generation, expires at (POSIX), the bearer check's row), least recently used first: a hit moves
# its entry to the end, and the first entry makes room when full. Plain dict operations, each atomic under the
# GIL (another thread between two of them can only cause a miss).
_entries: dict[str, tuple[bytes, float, tuple[Any, ...]]] = {}


def local_generation() -> bytes | None:
    """The current generation, to store a fresh entry under; None when the local cache is unavailable. With
    PostgreSQL it is the host's (the file) and this process's listener's (other hosts) together."""
    generation, listener = _parts()
    host = generation.current()
    if host is None or listener is None:
        return host
    others = listener.current()
    return None if others is None else host + others


def local_get(key: str, generation: bytes, *, now: float) -> tuple[Any, ...] | None:
    entry = _entries.get(key)
    if entry is None:
        return None
    if entry[0] != generation or entry[1] <= now:
        _entries.pop(key, None)
        return None
    if _entries.pop(key, None) is not None:  # now the most recently used
        _entries[key] = entry
    return entry[2]


def local_put(key: str, generation: bytes, row: tuple[Any, ...], *, now: float, expires_at: float) -> None:
    """Keep a row the check accepted, until ``TTL`` seconds pass or the token expires (whichever is first)."""
    until = min(now + TTL, expires_at)
    if until <= now:
        return
    while len(_entries) >= LOCAL_MAX_ENTRIES:
        try:
            _entries.pop(next(iter(_entries)), None)
        except (StopIteration, RuntimeError):  # emptied or resized by another thread meanwhile
            break
    _entries[key] = (generation, until, row)


def local_row(
    key: str,
    *,
    fetch: Callable[[], tuple[Any, ...] | None],
    build: Callable[[tuple[Any, ...]], T],
    keep_until: Callable[[T], float | None],
    now: float,
) -> T | None:
    """The row for ``key``: from this process's memory while the host-wide generation has not moved (no SQL),
    else ``fetch()``-ed from the database and kept if ``keep_until`` gives it an expiry (a row the caller
    accepts; refusals are never kept). Either way ``build`` makes new instances of it for this request, which
    the caller checks again."""
    generation = local_generation()
    values = local_get(key, generation, now=now) if generation is not None else None
    if values is not None:
        return build(values)
    values = fetch()
    if values is None:
        return None
    row = build(values)
    until = keep_until(row) if generation is not None else None
    if generation is not None and until is not None:
        local_put(key, generation, values, now=now, expires_at=until)
    return row


def clear_local() -> None:
    """Forget this process's entries (tests, between cases)."""
    _entries.clear()


def _key(token_hash: str) -> str:
    return f"oauth:at:{token_hash}"


def lookup(token_hash: str) -> tuple[CachedGrant | None, str]:
    """The cached grant (or None) and the current generation, to store a fresh entry under."""
    key = _key(token_hash)
    try:
        got: dict[str, Any] = cache.get_many([GENERATION_KEY, key])
        generation = got.get(GENERATION_KEY)
        if generation is None:
            fresh = secrets.token_hex(8)
            generation = fresh if cache.add(GENERATION_KEY, fresh, timeout=None) else cache.get(GENERATION_KEY)
            return None, str(generation or "")
    except RedisError:
        # Out of reach: a miss, and no generation, so nothing is stored (the database answers). A change that must
        # bump the generation still fails (_new_generation): it never commits unseen.
        return None, ""
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


def _bump_generations() -> None:
    current = mode()
    # A process with the local cache off still bumps a file that exists: others may be reading it.
    _parts()[0].bump(create=current == "local")
    if current == "shared":
        _new_generation()


def _notify_other_hosts() -> None:
    """PostgreSQL delivers a NOTIFY to every listener when (and only if) the transaction commits, at once outside
    one. Sent whatever this process's mode: others may be caching."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])


def _after_commit() -> None:
    _bump_generations()
    # Again once committed (autocommit: delivered at once): the NOTIFY sent inside the transaction is dropped
    # if a savepoint Django does not track (transaction.savepoint()) was rolled back after it, while this
    # callback survives.
    _notify_other_hosts()


def invalidate_all() -> None:
    """Void every cached token check in every process, now and again when the current transaction commits
    (once per transaction however many changes ask: deleting a project with 10,000 tokens is one callback)."""
    _bump_generations()
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.in_atomic_block and any(entry[1] is _after_commit for entry in connection.run_on_commit):
        return
    _notify_other_hosts()  # delivered with the commit itself: other hosts hear of it without a gap
    transaction.on_commit(_after_commit, robust=True)


# --- changes made through the models (services of other domains, the admin) ---------------------------

# Set while the housekeeping deletes token rows nobody can use any more (tokens.prune_dead_tokens): a cached check
# of such a token already refuses it (its access token expired long before), so their deletion voids nothing. Every
# other deletion of a token row does, as before (a cascade from its connection, app, project or customer also
# voids through their own receivers).
_deleting_dead_rows: contextvars.ContextVar[bool] = contextvars.ContextVar("deleting_dead_rows", default=False)


@contextmanager
def deleting_dead_rows() -> Iterator[None]:
    token = _deleting_dead_rows.set(True)
    try:
        yield
    finally:
        _deleting_dead_rows.reset(token)


def _connect_signals() -> None:
    from apertur.accounts.models import User
    from apertur.oauth.models import Connection, OAuthApp, Token
    from apertur.partners.models import Partner, PartnerStatus
    from apertur.projects.models import Plan, Project

    @receiver(post_save, sender=Partner, weak=False, dispatch_uid="oauth-token-cache-partner")
    def _partner_saved(sender: Any, instance: Partner, **kwargs: Any) -> None:
        if instance.status != PartnerStatus.APPROVED:
            invalidate_all()

    @receiver(post_save, sender=User, weak=False, dispatch_uid="oauth-token-cache-user")
    def _user_saved(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
        # Deactivation kills tokens; an email change changes what introspection reports. A login only
        # stamps last_login, which nothing cached reads.
        if update_fields is None or set(update_fields) - {"last_login"}:
            invalidate_all()

    @receiver(post_save, sender=OAuthApp, weak=False, dispatch_uid="oauth-token-cache-app")
    def _app_saved(sender: Any, instance: OAuthApp, **kwargs: Any) -> None:
        # Deactivation kills tokens; a secret rotation changes the hash introspection authenticates against.
        invalidate_all()

    @receiver(post_save, sender=Connection, weak=False, dispatch_uid="oauth-token-cache-connection")
    def _connection_saved(sender: Any, instance: Connection, **kwargs: Any) -> None:
        if instance.revoked_at is not None:
            invalidate_all()

    @receiver(post_save, sender=Token, weak=False, dispatch_uid="oauth-token-cache-token")
    def _token_saved(sender: Any, instance: Token, created: bool, **kwargs: Any) -> None:
        if not created and instance.access_revoked_at is not None:
            invalidate_all()

    @receiver(post_save, sender=Project, weak=False, dispatch_uid="oauth-token-cache-project")
    def _project_saved(sender: Any, instance: Project, **kwargs: Any) -> None:
        invalidate_all()  # the local cache keeps the project (its plan, its settings) with the token

    @receiver(post_save, sender=Plan, weak=False, dispatch_uid="oauth-token-cache-plan")
    def _plan_saved(sender: Any, instance: Plan, **kwargs: Any) -> None:
        invalidate_all()

    for model in (Partner, User, OAuthApp, Connection, Project, Plan):
        post_delete.connect(
            lambda sender, **kwargs: invalidate_all(),
            sender=model,
            weak=False,
            dispatch_uid=f"oauth-token-cache-delete-{model._meta.label_lower}",
        )

    @receiver(post_delete, sender=Token, weak=False, dispatch_uid="oauth-token-cache-delete-oauth.token")
    def _token_deleted(sender: Any, **kwargs: Any) -> None:
        if not _deleting_dead_rows.get():
            invalidate_all()


def ready() -> None:
    _connect_signals()
    # Data migrations use historical models, which send no signals to the receivers above.
    post_migrate.connect(lambda **kwargs: invalidate_all(), weak=False, dispatch_uid="oauth-token-cache-post-migrate")
