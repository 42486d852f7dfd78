"""Exchange, refresh (rotation, single flight across 8 threads and 8 asyncio tasks), revocation."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apertur_connect import (
    AsyncClient,
    Client,
    EncryptedFileStore,
    InvalidGrant,
    InvalidRequest,
    MemoryStore,
    NotConnected,
    TokenStore,
    generate_key,
)
from apertur_connect.sql import SQLAlchemyStore

from apertur.testing import pkce_pair
from tests.sdk_python.conftest import ALL_SCOPES, World, expire, refresh_reuse_detected, refreshes, run_async

pytestmark = pytest.mark.django_db(transaction=True)


def test_exchange_code_stores_the_tokens_and_calls_the_api(world: World) -> None:
    store = MemoryStore()
    with world.client(store=store) as client:
        connection = world.connect(client, scope="upload:create project:read")
        assert connection.key == world.project.public_id
        tokens = store.get(connection.key)
        assert tokens is not None
        assert tokens.access_token.startswith("oat_") and tokens.refresh_token.startswith("ort_")
        assert set(connection.scopes) == {"plan:read", "upload:create", "project:read"}
        assert connection.livemode is True
        assert tokens.plan_name == "Pro"
        assert "oat_" not in repr(tokens)[30:] and tokens.refresh_token not in repr(tokens)

        project = connection.api.project()
        assert (project.id, project.name, project.plan.name) == (world.project.public_id, "Wedding photos", "Pro")
        assert project.plan.limits.active_sessions == 20
        assert project.created_at.tzinfo is not None
        # The connection is found again by its key (what a later request does).
        assert client.connection(connection.key).api.plan().name == "Pro"


def test_exchange_with_pkce_and_a_custom_key(world: World) -> None:
    verifier, challenge = pkce_pair()
    code = world.code(code_challenge=challenge, code_challenge_method="S256")
    with world.client() as client:
        with pytest.raises(InvalidRequest, match="code_verifier"):  # required once a challenge was sent
            client.exchange_code(code)
        code = world.code(code_challenge=challenge, code_challenge_method="S256")
        connection = client.exchange_code(code, code_verifier=verifier, key="user:42")
        assert connection.key == "user:42"
        assert connection.api.plan().name == "Pro"


def test_authorization_url(world: World) -> None:
    with world.client() as client:
        url = client.authorization_url(scopes=["upload:create", "upload:read"], state="s1", code_challenge="abc")
    assert url.startswith(f"{world.base_url}/oauth/authorize?response_type=code&client_id=aptr_ci_")
    assert "scope=upload%3Acreate+upload%3Aread" in url and "state=s1" in url
    assert "code_challenge=abc&code_challenge_method=S256" in url


def test_refresh_rotates_and_the_old_refresh_token_dies(world: World) -> None:
    store = MemoryStore()
    with world.client(store=store) as client:
        connection = world.connect(client)
        first = connection.tokens
        before = refreshes()
        second = connection.refresh()
        assert refreshes() == before + 1
        assert second.access_token != first.access_token and second.refresh_token != first.refresh_token
        assert store.get(connection.key) == second
        assert connection.api.plan().name == "Pro"
        # Presenting the spent refresh token again revokes the whole family: why the SDK single-flights.
        with pytest.raises(InvalidGrant, match="already used"):
            client._token_request({"grant_type": "refresh_token", "refresh_token": first.refresh_token})
        assert refresh_reuse_detected() == 1
        with pytest.raises(InvalidGrant):  # the live tokens died with the family: the user is logged out
            connection.api.plan()
        with pytest.raises(NotConnected):  # and the store forgot them
            connection.api.plan()


def test_a_token_about_to_expire_is_refreshed_before_the_call(world: World) -> None:
    store = MemoryStore()
    with world.client(store=store) as client:
        connection = world.connect(client)
        old = connection.tokens
        before = refreshes()
        expire(store, connection.key)
        assert connection.api.plan().name == "Pro"
        assert refreshes() == before + 1
        assert connection.tokens.access_token != old.access_token
        connection.api.plan()
        assert refreshes() == before + 1  # fresh now: no second refresh


def test_a_401_refreshes_once_and_retries(world: World) -> None:
    store = MemoryStore()
    with world.client(store=store) as client:
        connection = world.connect(client)
        old = connection.tokens
        client.revoke_token(old.access_token, token_type_hint="access_token")  # the server forgets it
        before = refreshes()
        assert connection.api.project().name == "Wedding photos"
        assert refreshes() == before + 1
        assert connection.tokens.access_token != old.access_token


def _eight_threads(connection_api_calls: list[object]) -> None:
    barrier = threading.Barrier(len(connection_api_calls))
    errors: list[BaseException] = []

    def work(call: object) -> None:
        try:
            barrier.wait()
            assert call() is not None  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(call,)) for call in connection_api_calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors


def test_eight_threads_on_an_expired_token_spend_the_refresh_token_once(world: World) -> None:
    store = MemoryStore()
    with world.client(store=store) as client:
        connection = world.connect(client)
        for _round in range(2):  # two expiries, one refresh each
            before = refreshes()
            expire(store, connection.key)
            _eight_threads([connection.api.plan] * 8)
            assert refreshes() == before + 1
        assert refresh_reuse_detected() == 0
        assert connection.api.project().name == "Wedding photos"


def test_eight_threads_after_a_401_spend_the_refresh_token_once(world: World) -> None:
    store = MemoryStore()
    with world.client(store=store) as client:
        connection = world.connect(client)
        client.revoke_token(connection.tokens.access_token, token_type_hint="access_token")
        before = refreshes()
        _eight_threads([connection.api.plan] * 8)
        assert refreshes() == before + 1
        assert refresh_reuse_detected() == 0


def test_eight_asyncio_tasks_spend_the_refresh_token_once(world: World) -> None:
    code = world.code()
    store = MemoryStore()

    async def scenario() -> tuple[list[str], list[str]]:
        async with AsyncClient(
            world.created.app.client_id,
            world.created.client_secret,
            base_url=world.base_url,
            redirect_uri="https://snapflow.example/callback",
            store=store,
        ) as client:
            connection = await client.exchange_code(code)
            expire(store, connection.key)
            plans = await asyncio.gather(*(connection.api.plan() for _ in range(8)))
            # Then a 401 (the access token revoked behind the SDK's back), still from 8 tasks.
            await client.revoke_token((await connection.tokens()).access_token, token_type_hint="access_token")
            projects = await asyncio.gather(*(connection.api.project() for _ in range(8)))
            return [p.name for p in plans], [p.name for p in projects]

    before = refreshes()
    plans, projects = run_async(scenario)
    assert plans == ["Pro"] * 8 and projects == ["Wedding photos"] * 8
    assert refreshes() == before + 2  # one per expiry
    assert refresh_reuse_detected() == 0


@pytest.mark.parametrize("kind", ["file", "sql"])
def test_a_locking_store_single_flights_across_clients(world: World, tmp_path: Path, kind: str) -> None:
    """Two clients (two processes, in effect: separate in-process locks) sharing one store."""
    key = generate_key()
    store: TokenStore
    if kind == "file":
        store = EncryptedFileStore(tmp_path / "tokens", key)
    else:
        sql_store = SQLAlchemyStore(sa.create_engine(f"sqlite:///{tmp_path / 'tokens.db'}"), encryption_key=key)
        sql_store.create_table()
        store = sql_store
    with world.client(store=store) as one, world.client(store=store) as two:
        connection = world.connect(one)
        expire(store, connection.key)
        before = refreshes()
        other = two.connection(connection.key)
        _eight_threads([connection.api.plan, other.api.plan] * 4)
        assert refreshes() == before + 1
        assert refresh_reuse_detected() == 0
    if kind == "file":
        files = list((tmp_path / "tokens").glob("*.token"))
        assert len(files) == 1 and b"oat_" not in files[0].read_bytes()  # encrypted at rest
        assert files[0].stat().st_mode & 0o777 == 0o600
    else:
        with sql_store.engine.connect() as conn:
            stored = conn.execute(sa.select(sql_store.table.c.data)).scalar_one()
        assert "oat_" not in stored


def test_revoke_disconnects(world: World) -> None:
    store = MemoryStore()
    with world.client(store=store) as client:
        connection = world.connect(client)
        tokens = connection.tokens
        connection.revoke()
        assert store.get(connection.key) is None
        with pytest.raises(NotConnected):
            connection.api.plan()
        # The server killed the grant: the old refresh token no longer works.
        with pytest.raises(InvalidGrant):
            client._token_request({"grant_type": "refresh_token", "refresh_token": tokens.refresh_token})
        connection.revoke()  # already disconnected: nothing to do


def test_the_async_client_exchanges_refreshes_and_revokes(world: World) -> None:
    code = world.code(scope=ALL_SCOPES)

    async def scenario() -> None:
        async with AsyncClient(
            world.created.app.client_id,
            world.created.client_secret,
            base_url=world.base_url,
            redirect_uri="https://snapflow.example/callback",
        ) as client:
            connection = await client.exchange_code(code)
            first = await connection.tokens()
            second = await connection.refresh()
            assert second.refresh_token != first.refresh_token
            assert (await connection.api.project()).id == first.project_id
            await connection.revoke()
            with pytest.raises(NotConnected):
                await connection.api.plan()

    run_async(scenario)


def test_control_without_single_flight_the_user_is_logged_out(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hazard the lock prevents is real: with a new lock per call, concurrent refreshes reuse the
    refresh token and Apertur revokes the whole authorization."""
    monkeypatch.setattr(Client, "_lock", lambda self, key: threading.Lock())
    # Deterministic, not a timing race: every thread has read the stored (expired) tokens before any of
    # them sends its refresh, which is what two processes without a lock can always do.
    all_read = threading.Barrier(8, timeout=10)
    send = Client._token_request

    def token_request_after_everyone_read(self: Client, body: Any) -> dict[str, Any]:
        if body.get("grant_type") == "refresh_token":
            all_read.wait()
        return send(self, body)

    monkeypatch.setattr(Client, "_token_request", token_request_after_everyone_read)
    store = MemoryStore()
    with world.client(store=store) as client:
        connection = world.connect(client)
        expire(store, connection.key)
        with pytest.raises(AssertionError, match="already used"):
            _eight_threads([connection.api.plan] * 8)
    assert refresh_reuse_detected() >= 1
