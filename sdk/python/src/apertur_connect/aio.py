"""The asyncio client: the same surface as :mod:`apertur_connect.client`, with ``await``.

Stores stay synchronous objects (the same :class:`TokenStore` works for both clients); calls to stores other
than :class:`MemoryStore` run in a worker thread so a database or file never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx

from apertur_connect import models as m
from apertur_connect._core import DEFAULT_BASE_URL, UNSET, USER_AGENT, Call, Calls, RetryPolicy, token_body
from apertur_connect.client import _Base, connection_key
from apertur_connect.errors import AuthenticationError, InvalidGrant, NotConnected, from_response
from apertur_connect.models import TokenSet
from apertur_connect.stores import LockingTokenStore, MemoryStore, TokenStore

T = TypeVar("T")


class AsyncClient(_Base):
    """Share one per event loop. Concurrent tasks refreshing the same connection wait for one refresh."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        redirect_uri: str | None = None,
        store: TokenStore | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        refresh_leeway: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            client_id,
            client_secret,
            base_url=base_url,
            redirect_uri=redirect_uri,
            store=store,
            timeout=timeout,
            retry=retry,
            refresh_leeway=refresh_leeway,
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT}
        )
        self._sleep = sleep
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the store, off the event loop ---------------------------------------------------------------

    async def _store(self, method: str, *args: Any) -> Any:
        fn = getattr(self.store, method)
        if isinstance(self.store, MemoryStore):
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def _get(self, key: str) -> TokenSet | None:
        tokens: TokenSet | None = await self._store("get", key)
        return tokens

    # --- OAuth ---------------------------------------------------------------------------------------

    async def exchange_code(
        self,
        code: str,
        redirect_uri: str | None = None,
        code_verifier: str | None = None,
        *,
        key: str | None = None,
    ) -> AsyncConnection:
        data = await self._token_request(self._exchange_body(code, redirect_uri, code_verifier))
        tokens = TokenSet.from_token_response(data)
        key = key or connection_key(tokens)
        await self._store("set", key, tokens)
        return AsyncConnection(self, key)

    def connection(self, key: str) -> AsyncConnection:
        return AsyncConnection(self, key)

    async def revoke_token(self, token: str, *, token_type_hint: str = "refresh_token") -> None:  # noqa: S107
        await self._send(
            "POST",
            "/oauth/revoke",
            retryable=True,
            data={"token": token, "token_type_hint": token_type_hint},
            auth=self._auth(),
        )

    async def _token_request(self, body: Mapping[str, str]) -> dict[str, Any]:
        response = await self._send("POST", "/oauth/token", retryable=False, data=dict(body), auth=self._auth())
        result: dict[str, Any] = response.json()
        return result

    def _lock(self, key: str) -> asyncio.Lock:
        # asyncio locks belong to one loop: keyed by the running loop so a client survives asyncio.run() twice.
        slot = (id(asyncio.get_running_loop()), key)
        lock = self._locks.get(slot)
        if lock is None:
            lock = self._locks[slot] = asyncio.Lock()
        return lock

    async def _refresh(self, key: str, *, seen: str | None, force: bool) -> TokenSet:
        async with self._lock(key):
            store_lock = self.store.lock(key) if isinstance(self.store, LockingTokenStore) else None
            if store_lock is not None:
                await asyncio.to_thread(store_lock.__enter__)
            try:
                current = await self._get(key)
                if current is None:
                    raise NotConnected(f"No tokens are stored for {key!r}: connect again.")
                if not self._needs_refresh(current, seen, force):
                    return current
                try:
                    data = await self._token_request(token_body("refresh_token", refresh_token=current.refresh_token))
                except InvalidGrant:
                    await self._store("delete", key)
                    raise
                tokens = TokenSet.from_token_response(data)
                await self._store("set", key, tokens)
                return tokens
            finally:
                if store_lock is not None:
                    await asyncio.to_thread(store_lock.__exit__, None, None, None)

    # --- HTTP ----------------------------------------------------------------------------------------

    async def _send(self, method: str, path: str, *, retryable: bool, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                wait = self.retry.wait_for(attempt, None) if retryable or isinstance(exc, httpx.ConnectError) else None
                if wait is None:
                    raise self._network_error(exc, self.base_url) from exc
            else:
                if response.status_code < 400:
                    return response
                wait = self.retry.wait_for(attempt, response) if retryable else None
                if wait is None:
                    raise from_response(response)
            await self._sleep(wait)
            attempt += 1

    async def _call(self, call: Call[T], access_token: str) -> T:
        response = await self._send(
            call.method,
            call.path,
            retryable=call.retryable,
            params=call.params,
            json=call.json,
            headers=self._api_headers(call, access_token),
        )
        return self._parse(call, response)


class AsyncConnection:
    def __init__(self, client: AsyncClient, key: str) -> None:
        self.client = client
        self.key = key
        self.api = AsyncApi(self._run)

    def __repr__(self) -> str:
        return f"AsyncConnection(key={self.key!r})"

    async def tokens(self) -> TokenSet:
        tokens = await self.client._get(self.key)
        if tokens is None:
            raise NotConnected(f"No tokens are stored for {self.key!r}: connect again.")
        return tokens

    async def access_token(self) -> str:
        return (await self._fresh()).access_token

    async def refresh(self) -> TokenSet:
        return await self.client._refresh(self.key, seen=None, force=True)

    async def revoke(self) -> None:
        tokens = await self.client._get(self.key)
        if tokens is not None:
            await self.client.revoke_token(tokens.refresh_token)
            await self.client._store("delete", self.key)

    async def _fresh(self) -> TokenSet:
        tokens = await self.tokens()
        if tokens.expires_within(self.client.refresh_leeway):
            tokens = await self.client._refresh(self.key, seen=tokens.access_token, force=False)
        return tokens

    async def _run(self, call: Call[T]) -> T:
        tokens = await self._fresh()
        try:
            return await self.client._call(call, tokens.access_token)
        except AuthenticationError as exc:
            if exc.code != "invalid_token":
                raise
        tokens = await self.client._refresh(self.key, seen=tokens.access_token, force=True)
        return await self.client._call(call, tokens.access_token)


class AsyncApi:
    """The same methods as :class:`apertur_connect.Api`, awaited; ``iter_*`` are async iterators."""

    def __init__(self, run: Callable[[Call[Any]], Awaitable[Any]]) -> None:
        self._do = run

    async def _run(self, call: Call[T]) -> T:
        result: T = await self._do(call)
        return result

    async def _all(self, page: Callable[[str | None], Call[m.Page[T]]]) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            result = await self._run(page(cursor))
            for item in result.data:
                yield item
            if not result.has_more or not result.next_cursor:
                return
            cursor = result.next_cursor

    async def plan(self) -> m.Plan:
        return await self._run(Calls.plan())

    async def project(self) -> m.Project:
        return await self._run(Calls.project())

    async def settings(self) -> m.ProjectSettings:
        return await self._run(Calls.settings())

    async def update_settings(
        self,
        *,
        name: str | Any = UNSET,
        description: str | Any = UNSET,
        default_session_days: int | Any | None = UNSET,
        default_max_files: int | Any | None = UNSET,
        notify_owner_on_upload: bool | Any = UNSET,
    ) -> m.ProjectSettings:
        return await self._run(
            Calls.update_settings(
                name=name,
                description=description,
                default_session_days=default_session_days,
                default_max_files=default_max_files,
                notify_owner_on_upload=notify_owner_on_upload,
            )
        )

    async def list_upload_sessions(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> m.Page[m.UploadSession]:
        return await self._run(Calls.list_upload_sessions(cursor, limit))

    def iter_upload_sessions(self, *, limit: int = 100) -> AsyncIterator[m.UploadSession]:
        return self._all(lambda cursor: Calls.list_upload_sessions(cursor, limit))

    async def get_upload_session(self, session_id: str) -> m.UploadSession:
        return await self._run(Calls.get_upload_session(session_id))

    async def create_upload_session(
        self,
        title: str,
        *,
        expires_at: dt.datetime | str | None = None,
        max_files: int | None = None,
        accepted_types: list[str] | None = None,
        password: str | None = None,
        idempotency_key: str | None = None,
    ) -> m.UploadSession:
        call = Calls.create_upload_session(title, expires_at, max_files, accepted_types, password, idempotency_key)
        return await self._run(call)

    async def close_upload_session(self, session_id: str, *, idempotency_key: str | None = None) -> m.UploadSession:
        return await self._run(Calls.close_upload_session(session_id, idempotency_key))

    async def list_uploads(
        self, *, session_id: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> m.Page[m.Upload]:
        return await self._run(Calls.list_uploads(session_id, cursor, limit))

    def iter_uploads(self, *, session_id: str | None = None, limit: int = 100) -> AsyncIterator[m.Upload]:
        return self._all(lambda cursor: Calls.list_uploads(session_id, cursor, limit))

    async def list_keys(self, *, cursor: str | None = None, limit: int | None = None) -> m.Page[m.ApiKey]:
        return await self._run(Calls.list_keys(cursor, limit))

    def iter_keys(self, *, limit: int = 100) -> AsyncIterator[m.ApiKey]:
        return self._all(lambda cursor: Calls.list_keys(cursor, limit))

    async def list_webhooks(self, *, cursor: str | None = None, limit: int | None = None) -> m.Page[m.WebhookEndpoint]:
        return await self._run(Calls.list_webhooks(cursor, limit))

    def iter_webhooks(self, *, limit: int = 100) -> AsyncIterator[m.WebhookEndpoint]:
        return self._all(lambda cursor: Calls.list_webhooks(cursor, limit))

    async def create_webhook(
        self,
        url: str,
        *,
        events: list[str] | None = None,
        description: str = "",
        idempotency_key: str | None = None,
    ) -> m.WebhookEndpoint:
        return await self._run(Calls.create_webhook(url, events, description, idempotency_key))

    async def get_webhook(self, endpoint_id: str) -> m.WebhookEndpoint:
        return await self._run(Calls.get_webhook(endpoint_id))

    async def update_webhook(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> m.WebhookEndpoint:
        call = Calls.update_webhook(endpoint_id, url=url, events=events, description=description, enabled=enabled)
        return await self._run(call)

    async def delete_webhook(self, endpoint_id: str) -> None:
        await self._run(Calls.delete_webhook(endpoint_id))

    async def list_webhook_deliveries(
        self, endpoint_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> m.Page[m.WebhookDelivery]:
        return await self._run(Calls.list_webhook_deliveries(endpoint_id, cursor, limit))

    def iter_webhook_deliveries(self, endpoint_id: str, *, limit: int = 100) -> AsyncIterator[m.WebhookDelivery]:
        return self._all(lambda cursor: Calls.list_webhook_deliveries(endpoint_id, cursor, limit))

    async def send_test_webhook(self, endpoint_id: str, *, idempotency_key: str | None = None) -> m.WebhookDelivery:
        return await self._run(Calls.send_test_webhook(endpoint_id, idempotency_key))

    async def rotate_webhook_secret(
        self, endpoint_id: str, *, expire_previous_in_seconds: int = 86_400, idempotency_key: str | None = None
    ) -> m.WebhookEndpoint:
        return await self._run(Calls.rotate_webhook_secret(endpoint_id, expire_previous_in_seconds, idempotency_key))

    async def list_destinations(self) -> list[m.Destination]:
        return await self._run(Calls.list_destinations())

    async def billing(self) -> m.Billing:
        return await self._run(Calls.billing())
