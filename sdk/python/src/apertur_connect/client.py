"""The synchronous client: OAuth code exchange, refresh and revocation, and ``connection.api``."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx

from apertur_connect import models as m
from apertur_connect._core import DEFAULT_BASE_URL, UNSET, USER_AGENT, Call, Calls, RetryPolicy, token_body
from apertur_connect.errors import (
    AperturError,
    AuthenticationError,
    InvalidGrant,
    NetworkError,
    NotConnected,
    from_response,
)
from apertur_connect.models import TokenSet
from apertur_connect.stores import LockingTokenStore, MemoryStore, TokenStore

T = TypeVar("T")


def pkce_pair() -> tuple[str, str]:
    """``(code_verifier, code_challenge)`` for PKCE with S256 (RFC 7636 §4.1-4.2). Keep the verifier in the
    user's session; send the challenge in the authorization URL and the verifier to :meth:`exchange_code`."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def connection_key(tokens: TokenSet) -> str:
    """The default store key: the connected project (test-mode connections apart from live ones)."""
    return tokens.project_id if tokens.livemode else f"{tokens.project_id}:test"


class _Base:
    """Configuration shared by :class:`Client` and :class:`~apertur_connect.AsyncClient`."""

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
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret are required (your OAuth app's page shows them)")
        self.client_id = client_id
        self.client_secret = client_secret
        self.base_url = base_url.rstrip("/")
        self.redirect_uri = redirect_uri
        self.store: TokenStore = store if store is not None else MemoryStore()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.refresh_leeway = refresh_leeway

    def authorization_url(
        self,
        *,
        scopes: list[str] | tuple[str, ...],
        state: str,
        redirect_uri: str | None = None,
        code_challenge: str | None = None,
    ) -> str:
        """The URL of Apertur's consent page for the plain redirect flow (the browser SDK builds its own)."""
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "scope": " ".join(scopes),
            "state": state,
            "redirect_uri": redirect_uri or self.redirect_uri,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256" if code_challenge else None,
        }
        return f"{self.base_url}/oauth/authorize?" + urlencode({k: v for k, v in query.items() if v})

    def _exchange_body(self, code: str, redirect_uri: str | None, code_verifier: str | None) -> dict[str, str]:
        return token_body(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri or self.redirect_uri,
            code_verifier=code_verifier,
        )

    def _auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.client_id, self.client_secret)

    def _needs_refresh(self, current: TokenSet, seen: str | None, force: bool) -> bool:
        """Decided inside the refresh lock: another thread may have refreshed while we waited."""
        if seen is not None and current.access_token != seen:
            return False
        return force or current.expires_within(self.refresh_leeway)

    @staticmethod
    def _api_headers(call: Call[Any], access_token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        if call.idempotency_key:
            headers["Idempotency-Key"] = call.idempotency_key
        return headers

    @staticmethod
    def _parse(call: Call[T], response: httpx.Response) -> T:
        return call.parse(None if response.status_code == 204 or not response.content else response.json())

    @staticmethod
    def _network_error(exc: httpx.HTTPError, url: str) -> NetworkError:
        return NetworkError(f"Could not reach Apertur at {url}: {exc}")


class Client(_Base):
    """A partner app's server-side client. Thread-safe: share one per process.

    >>> client = Client("aptr_ci_…", "aptr_cs_…", base_url="https://apertur.ca", redirect_uri="https://you/cb")
    >>> connection = client.exchange_code(code)
    >>> for upload in connection.api.iter_uploads(): ...
    """

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
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
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
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers={"User-Agent": USER_AGENT}
        )
        self._sleep = sleep
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- OAuth ---------------------------------------------------------------------------------------

    def exchange_code(
        self,
        code: str,
        redirect_uri: str | None = None,
        code_verifier: str | None = None,
        *,
        key: str | None = None,
    ) -> Connection:
        """Exchange an authorization code (RFC 6749 §4.1.3) and keep the tokens in the store under ``key``
        (default: the project id). A code works once; a replay raises :class:`InvalidGrant`."""
        data = self._token_request(self._exchange_body(code, redirect_uri, code_verifier))
        tokens = TokenSet.from_token_response(data)
        key = key or connection_key(tokens)
        self.store.set(key, tokens)
        return Connection(self, key)

    def connection(self, key: str) -> Connection:
        """The stored connection ``key`` (its tokens are read when used: :class:`NotConnected` if none)."""
        return Connection(self, key)

    def revoke_token(self, token: str, *, token_type_hint: str = "refresh_token") -> None:  # noqa: S107
        """RFC 7009. Revoking a refresh token revokes the access tokens issued with it too."""
        self._send(
            "POST",
            "/oauth/revoke",
            retryable=True,  # revocation is idempotent
            data={"token": token, "token_type_hint": token_type_hint},
            auth=self._auth(),
        )

    def _token_request(self, body: Mapping[str, str]) -> dict[str, Any]:
        # Never retried once sent: a lost answer to a refresh would make the retry spend a rotated token,
        # which revokes the whole authorization.
        response = self._send("POST", "/oauth/token", retryable=False, data=dict(body), auth=self._auth())
        result: dict[str, Any] = response.json()
        return result

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _refresh(self, key: str, *, seen: str | None, force: bool) -> TokenSet:
        """Single flight: one refresh per connection at a time in this process (and across processes
        when the store can lock); whoever waited finds the new tokens and does not refresh again."""
        store_lock = self.store.lock(key) if isinstance(self.store, LockingTokenStore) else contextlib.nullcontext()
        with self._lock(key), store_lock:
            current = self.store.get(key)
            if current is None:
                raise NotConnected(f"No tokens are stored for {key!r}: connect again.")
            if not self._needs_refresh(current, seen, force):
                return current
            try:
                data = self._token_request(token_body("refresh_token", refresh_token=current.refresh_token))
            except InvalidGrant:
                self.store.delete(key)  # the authorization is gone (revoked, expired or reused): reconnect
                raise
            tokens = TokenSet.from_token_response(data)
            self.store.set(key, tokens)
            return tokens

    # --- HTTP ----------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, retryable: bool, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                # A connection that never opened sent nothing: always safe to try again.
                wait = self.retry.wait_for(attempt, None) if retryable or isinstance(exc, httpx.ConnectError) else None
                if wait is None:
                    raise self._network_error(exc, self.base_url) from exc
            else:
                if response.status_code < 400:
                    return response
                wait = self.retry.wait_for(attempt, response) if retryable else None
                if wait is None:
                    raise from_response(response)
            self._sleep(wait)
            attempt += 1

    def _call(self, call: Call[T], access_token: str) -> T:
        response = self._send(
            call.method,
            call.path,
            retryable=call.retryable,
            params=call.params,
            json=call.json,
            headers=self._api_headers(call, access_token),
        )
        return self._parse(call, response)


class Connection:
    """One connected project: its tokens live in the client's store under ``key``."""

    def __init__(self, client: Client, key: str) -> None:
        self.client = client
        self.key = key
        self.api = Api(self._run)

    def __repr__(self) -> str:
        return f"Connection(key={self.key!r})"

    @property
    def tokens(self) -> TokenSet:
        tokens = self.client.store.get(self.key)
        if tokens is None:
            raise NotConnected(f"No tokens are stored for {self.key!r}: connect again.")
        return tokens

    @property
    def project_id(self) -> str:
        return self.tokens.project_id

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.tokens.scopes

    @property
    def livemode(self) -> bool:
        return self.tokens.livemode

    def access_token(self) -> str:
        """A valid access token, refreshed first if it expires within ``refresh_leeway`` seconds."""
        return self._fresh().access_token

    def refresh(self) -> TokenSet:
        """Refresh now (rotation: the store gets the new refresh token)."""
        return self.client._refresh(self.key, seen=None, force=True)

    def revoke(self) -> None:
        """Disconnect: revoke the refresh token (and so every token of this authorization) and forget it."""
        tokens = self.client.store.get(self.key)
        if tokens is not None:
            self.client.revoke_token(tokens.refresh_token)
            self.client.store.delete(self.key)

    def _fresh(self) -> TokenSet:
        tokens = self.tokens
        if tokens.expires_within(self.client.refresh_leeway):
            tokens = self.client._refresh(self.key, seen=tokens.access_token, force=False)
        return tokens

    def _run(self, call: Call[T]) -> T:
        tokens = self._fresh()
        try:
            return self.client._call(call, tokens.access_token)
        except AuthenticationError as exc:
            if exc.code != "invalid_token":
                raise
        # RFC 6750 §3.1 invalid_token: refreshed once (unless someone already did), then tried once more.
        tokens = self.client._refresh(self.key, seen=tokens.access_token, force=True)
        return self.client._call(call, tokens.access_token)


class Api:
    """Typed methods for every /api/v1 operation; each names the scope it needs."""

    def __init__(self, run: Callable[[Call[Any]], Any]) -> None:
        self._do = run

    def _run(self, call: Call[T]) -> T:
        result: T = self._do(call)
        return result

    def _all(self, page: Callable[[str | None], Call[m.Page[T]]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            result = self._run(page(cursor))
            yield from result.data
            if not result.has_more or not result.next_cursor:
                return
            cursor = result.next_cursor

    # plan & project
    def plan(self) -> m.Plan:
        """``plan:read`` (always granted)."""
        return self._run(Calls.plan())

    def project(self) -> m.Project:
        """``project:read``."""
        return self._run(Calls.project())

    def settings(self) -> m.ProjectSettings:
        """``project:read``."""
        return self._run(Calls.settings())

    def update_settings(
        self,
        *,
        name: str | Any = UNSET,
        description: str | Any = UNSET,
        default_session_days: int | Any | None = UNSET,
        default_max_files: int | Any | None = UNSET,
        notify_owner_on_upload: bool | Any = UNSET,
    ) -> m.ProjectSettings:
        """``project:settings``. Only the arguments given are sent; ``None`` clears a default."""
        return self._run(
            Calls.update_settings(
                name=name,
                description=description,
                default_session_days=default_session_days,
                default_max_files=default_max_files,
                notify_owner_on_upload=notify_owner_on_upload,
            )
        )

    # upload sessions
    def list_upload_sessions(self, *, cursor: str | None = None, limit: int | None = None) -> m.Page[m.UploadSession]:
        """``upload:read``; newest first."""
        return self._run(Calls.list_upload_sessions(cursor, limit))

    def iter_upload_sessions(self, *, limit: int = 100) -> Iterator[m.UploadSession]:
        return self._all(lambda cursor: Calls.list_upload_sessions(cursor, limit))

    def get_upload_session(self, session_id: str) -> m.UploadSession:
        return self._run(Calls.get_upload_session(session_id))

    def create_upload_session(
        self,
        title: str,
        *,
        expires_at: dt.datetime | str | None = None,
        max_files: int | None = None,
        accepted_types: list[str] | None = None,
        password: str | None = None,
        idempotency_key: str | None = None,
    ) -> m.UploadSession:
        """``upload:create``. Sent with an Idempotency-Key (yours or a new UUID), reused on retries."""
        call = Calls.create_upload_session(title, expires_at, max_files, accepted_types, password, idempotency_key)
        return self._run(call)

    def close_upload_session(self, session_id: str, *, idempotency_key: str | None = None) -> m.UploadSession:
        """``upload:create``."""
        return self._run(Calls.close_upload_session(session_id, idempotency_key))

    # uploads
    def list_uploads(
        self, *, session_id: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> m.Page[m.Upload]:
        """``upload:read``; newest first."""
        return self._run(Calls.list_uploads(session_id, cursor, limit))

    def iter_uploads(self, *, session_id: str | None = None, limit: int = 100) -> Iterator[m.Upload]:
        return self._all(lambda cursor: Calls.list_uploads(session_id, cursor, limit))

    # keys
    def list_keys(self, *, cursor: str | None = None, limit: int | None = None) -> m.Page[m.ApiKey]:
        """``keys:read``: metadata only."""
        return self._run(Calls.list_keys(cursor, limit))

    def iter_keys(self, *, limit: int = 100) -> Iterator[m.ApiKey]:
        return self._all(lambda cursor: Calls.list_keys(cursor, limit))

    # webhooks
    def list_webhooks(self, *, cursor: str | None = None, limit: int | None = None) -> m.Page[m.WebhookEndpoint]:
        """``webhooks:manage``."""
        return self._run(Calls.list_webhooks(cursor, limit))

    def iter_webhooks(self, *, limit: int = 100) -> Iterator[m.WebhookEndpoint]:
        return self._all(lambda cursor: Calls.list_webhooks(cursor, limit))

    def create_webhook(
        self,
        url: str,
        *,
        events: list[str] | None = None,
        description: str = "",
        idempotency_key: str | None = None,
    ) -> m.WebhookEndpoint:
        """``webhooks:manage``. The answer's ``secret`` (``whsec_…``) is shown this once: store it."""
        return self._run(Calls.create_webhook(url, events, description, idempotency_key))

    def get_webhook(self, endpoint_id: str) -> m.WebhookEndpoint:
        return self._run(Calls.get_webhook(endpoint_id))

    def update_webhook(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> m.WebhookEndpoint:
        call = Calls.update_webhook(endpoint_id, url=url, events=events, description=description, enabled=enabled)
        return self._run(call)

    def delete_webhook(self, endpoint_id: str) -> None:
        self._run(Calls.delete_webhook(endpoint_id))

    def list_webhook_deliveries(
        self, endpoint_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> m.Page[m.WebhookDelivery]:
        return self._run(Calls.list_webhook_deliveries(endpoint_id, cursor, limit))

    def iter_webhook_deliveries(self, endpoint_id: str, *, limit: int = 100) -> Iterator[m.WebhookDelivery]:
        return self._all(lambda cursor: Calls.list_webhook_deliveries(endpoint_id, cursor, limit))

    def send_test_webhook(self, endpoint_id: str, *, idempotency_key: str | None = None) -> m.WebhookDelivery:
        """Queue a ``webhook.test`` event to the endpoint."""
        return self._run(Calls.send_test_webhook(endpoint_id, idempotency_key))

    def rotate_webhook_secret(
        self, endpoint_id: str, *, expire_previous_in_seconds: int = 86_400, idempotency_key: str | None = None
    ) -> m.WebhookEndpoint:
        """``webhooks:manage``. A new signing secret (the answer's ``secret``, shown this once); the previous one
        keeps signing beside it until ``previous_secret_expires_at`` (0 to 604800 seconds from now; 0 after a
        leak). Deploy the new secret to your receiver before then: :class:`Webhook` accepts either signature."""
        return self._run(Calls.rotate_webhook_secret(endpoint_id, expire_previous_in_seconds, idempotency_key))

    # destinations & billing
    def list_destinations(self) -> list[m.Destination]:
        """``destinations:read``: Apertur storage first, then the project's own destinations."""
        return self._run(Calls.list_destinations())

    def billing(self) -> m.Billing:
        """``billing:read``."""
        return self._run(Calls.billing())


__all__ = ["AperturError", "Api", "Client", "Connection", "connection_key", "pkce_pair"]
