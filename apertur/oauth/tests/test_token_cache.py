"""The local token cache across hosts (apertur.oauth.token_cache, PostgreSQL): the LISTEN/NOTIFY listener that
carries a change committed on another host to this process, and the rule that its entries count only while the
listener vouches for them. The host-wide generation file and the query counts are in test_query_counts.py."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apertur.oauth import token_cache
from apertur.oauth.models import Token
from apertur.oauth.tests.conftest import Flow, api_get, run_in_other_process
from apertur.oauth.tests.test_query_counts import statements, warm

BOUND_SECONDS = 10.0  # every wait below is bounded; the listener usually answers within milliseconds


@pytest.fixture
def pg_local(settings: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the listener is PostgreSQL's (make test runs the suite again on PostgreSQL)")
    settings.APERTUR_TOKEN_CACHE = "local"


def _listener() -> token_cache._Listener:
    listener = token_cache._parts()[1]
    assert listener is not None
    return listener


def _until(what: str, done: Any) -> float:
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < BOUND_SECONDS, f"timed out waiting for {what}"
        time.sleep(0.005)
    return time.monotonic() - started


def test_a_change_committed_on_another_host_voids_this_processs_entries(
    flow: Flow, pg_local: None, tmp_path: Path
) -> None:
    """The other "host" is a process with its own APERTUR_VAR_DIR, so its own generation file: only the NOTIFY
    its commit sends can reach this process."""
    issued = flow.tokens()
    assert warm(flow, issued["access_token"]) == []
    token = Token.objects.get()
    Token.objects.filter(pk=token.pk).update(access_revoked_at=token.issued_at)  # as another host's UPDATE
    assert api_get("/api/v1/plan", issued["access_token"]).status_code == 200  # nothing told us: still cached
    out = run_in_other_process(
        "print(token_cache.generation_path())\ntoken_cache.invalidate_all()", var_dir=tmp_path / "other-host"
    )
    assert out.strip() != str(token_cache.generation_path())  # not this host's file
    took = _until("the other host's NOTIFY", lambda: api_get("/api/v1/plan", issued["access_token"]).status_code == 401)
    print(f"\nrevocation reached this process {took * 1000:.1f} ms after the other process exited")


def test_entries_count_only_while_the_listener_vouches_for_them(
    flow: Flow, pg_local: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = flow.tokens()
    assert warm(flow, issued["access_token"]) == []
    # A listener whose connection has not been proved alive lately: every lookup goes to the database.
    monkeypatch.setattr(token_cache, "STALE_SECONDS", -1.0)
    assert token_cache.local_generation() is None
    for _ in range(2):
        with CaptureQueriesContext(connection) as ctx:
            assert api_get("/api/v1/plan", issued["access_token"]).status_code == 200
        assert any("oauth_token" in q for q in statements(ctx))
    monkeypatch.undo()
    assert warm(flow, issued["access_token"]) == []


def test_a_lost_listener_connection_turns_the_cache_off_until_it_is_listening_again(flow: Flow, pg_local: None) -> None:
    """Notifications sent while the listener is away are lost: entries stored before it reconnects must not
    count after."""
    issued = flow.tokens()
    assert warm(flow, issued["access_token"]) == []
    listener = _listener()
    before, backend = token_cache.local_generation(), listener.backend_pid
    assert before is not None and backend
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    _until("a new listener connection", lambda: listener.backend_pid not in (0, backend) and listener.generation)
    after = token_cache.local_generation()
    assert after is not None and after != before
    with CaptureQueriesContext(connection) as ctx:
        assert api_get("/api/v1/plan", issued["access_token"]).status_code == 200
    assert any("oauth_token" in q for q in statements(ctx))  # the entry from before is void
    assert warm(flow, issued["access_token"]) == []  # and the cache works again


def test_the_listener_never_vouches_when_it_cannot_connect(flow: Flow, pg_local: None, settings: Any) -> None:
    listener = token_cache._Listener({**token_cache._listener_params(), "port": 1, "connect_timeout": 1})
    try:
        assert listener.current() is None  # waited for the first attempt, which failed
        assert listener.generation is None and listener.failing
    finally:
        listener.stop()


class _Proxy:
    """A loopback TCP proxy in front of PostgreSQL. With ``own_key_data`` it does to the startup messages what a
    connection pooler does: it hands the client a BackendKeyData ('K': process id, secret key) of its own."""

    def __init__(self, upstream: tuple[str, int], *, own_key_data: bool) -> None:
        self.upstream, self.own_key_data = upstream, own_key_data
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            threading.Thread(target=self._copy, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._messages, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def _messages(self, src: socket.socket, dst: socket.socket) -> None:
        """Server to client, message by message (type byte, int32 length including itself, payload)."""
        reader = src.makefile("rb")
        try:
            while header := reader.read(5):
                kind, length = header[:1], struct.unpack("!I", header[1:])[0]
                payload = reader.read(length - 4)
                if kind == b"K" and self.own_key_data:
                    payload = struct.pack("!I", struct.unpack("!I", payload[:4])[0] ^ 0x5A5A) + payload[4:]
                dst.sendall(header + payload)
        except OSError:
            pass

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.mark.parametrize("pooler", [False, True])
def test_a_listener_behind_a_connection_pooler_never_vouches(
    flow: Flow, pg_local: None, pooler: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A transaction-mode pooler lets LISTEN succeed and then delivers nothing: the listener must notice from
    the connection itself, not from a missing notification. The control (same proxy, key data untouched)
    shows the proxy alone changes nothing."""
    params = token_cache._listener_params()
    proxy = _Proxy((params["host"], int(params["port"])), own_key_data=pooler)
    listener = token_cache._Listener(
        {**params, "host": "127.0.0.1", "port": proxy.port, "sslmode": "disable", "gssencmode": "disable"}
    )
    try:
        if pooler:
            assert listener.current() is None
            assert listener.failing and "connection pooler" in caplog.text
        else:
            assert listener.current() is not None
            assert not listener.failing
    finally:
        listener.stop()
        proxy.close()


def _listen() -> Any:
    import psycopg

    params = token_cache._listener_params()
    params["application_name"] = "apertur-test-listener"
    conn = psycopg.connect(**params, autocommit=True)
    conn.execute(f"LISTEN {token_cache.CHANNEL}")
    return conn


def _received(conn: Any, wait: float) -> int:
    """Notifications within ``wait`` seconds."""
    return sum(1 for _ in conn.notifies(timeout=wait))


def _exactly(conn: Any, n: int) -> bool:
    """Exactly ``n`` notifications: they arrive (bounded wait), and no more follow."""
    return sum(1 for _ in conn.notifies(timeout=BOUND_SECONDS, stop_after=n)) == n and _received(conn, 0.3) == 0


def test_a_transaction_notifies_other_hosts_when_it_commits_and_only_if_it_does(postgres_only: None) -> None:
    """However many changes a transaction makes: one NOTIFY delivered with the commit, one sent after it."""
    other_host = _listen()
    try:
        with transaction.atomic():
            for _ in range(3):
                token_cache.invalidate_all()
            assert _received(other_host, 0.2) == 0  # not before the commit
        assert _exactly(other_host, 2)
        with transaction.atomic():
            token_cache.invalidate_all()
            transaction.set_rollback(True)
        assert _received(other_host, 0.5) == 0
        token_cache.invalidate_all()  # outside a transaction: at once
        assert _exactly(other_host, 2)
    finally:
        other_host.close()


def test_a_rolled_back_manual_savepoint_does_not_silence_the_commit(postgres_only: None) -> None:
    """transaction.savepoint() is not tracked by Django's on_commit bookkeeping: rolling it back drops the
    NOTIFY sent inside it but keeps the commit callback, so a later change in the transaction adds no NOTIFY of
    its own. The callback notifies once committed."""
    other_host = _listen()
    try:
        with transaction.atomic():
            savepoint = transaction.savepoint()
            token_cache.invalidate_all()
            transaction.savepoint_rollback(savepoint)
            token_cache.invalidate_all()
        assert _exactly(other_host, 1)
    finally:
        other_host.close()


def test_a_notification_that_arrives_during_the_heartbeat_is_not_lost(
    flow: Flow, pg_local: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg keeps notifications received while a query runs (>= 3.2.4; earlier versions dropped them)."""
    import psycopg

    issued = flow.tokens()
    assert warm(flow, issued["access_token"]) == []
    listener = _listener()
    in_heartbeat = threading.Event()
    check = token_cache._check_one_session

    def slow_heartbeat(conn: Any) -> None:
        in_heartbeat.set()
        conn.execute("SELECT pg_sleep(0.5)")
        check(conn)

    monkeypatch.setattr(token_cache, "_check_one_session", slow_heartbeat)
    assert in_heartbeat.wait(BOUND_SECONDS)
    before = listener.generation
    with psycopg.connect(**{**token_cache._listener_params(), "application_name": "apertur-test"}) as sender:
        sender.autocommit = True
        sender.execute("SELECT pg_notify(%s, '')", [token_cache.CHANNEL])
    _until("the listener to renew", lambda: listener.generation not in (None, before))


def test_a_process_with_the_cache_off_still_notifies(postgres_only: None, settings: Any) -> None:
    """A management command or worker run without the cache must not leave other processes' entries valid."""
    settings.APERTUR_TOKEN_CACHE = "off"
    other_host = _listen()
    try:
        token_cache.invalidate_all()
        assert _exactly(other_host, 2)
    finally:
        other_host.close()


def test_a_full_local_cache_evicts_the_least_recently_used_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(token_cache, "LOCAL_MAX_ENTRIES", 3)
    generation, now = b"g" * 8, 1_000.0
    for key in "abc":
        token_cache.local_put(key, generation, (key,), now=now, expires_at=now + 60)
    assert token_cache.local_get("a", generation, now=now) == ("a",)  # used: now the most recent
    token_cache.local_put("d", generation, ("d",), now=now, expires_at=now + 60)  # full: "b" makes room
    assert token_cache.local_get("b", generation, now=now) is None
    assert [token_cache.local_get(key, generation, now=now) for key in "acd"] == [("a",), ("c",), ("d",)]
