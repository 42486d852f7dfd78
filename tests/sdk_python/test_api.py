"""connection.api against the live server: every resource, pagination, Idempotency-Key, every error class;
and the retry policy (backoff, jitter, idempotent calls only) with a scripted transport."""

from __future__ import annotations

import datetime as dt
import inspect
import json
from typing import Any

import httpx
import pytest
from apertur_connect import (
    AperturError,
    Api,
    ApiError,
    AsyncApi,
    AsyncClient,
    AsyncConnection,
    AuthenticationError,
    Client,
    Conflict,
    Connection,
    InsufficientScope,
    InvalidClient,
    InvalidGrant,
    InvalidScope,
    MemoryStore,
    NetworkError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    ServerError,
    TokenSet,
    ValidationError,
)
from apertur_connect import errors as sdk_errors

from apertur.api import auth as api_auth
from apertur.core.ratelimit import Limit
from apertur.testing import image_file
from apertur.uploads import services as upload_services
from apertur.uploads.models import UploadSession
from tests.sdk_python.conftest import World, run_async

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_resource(world: World) -> None:
    with world.client() as client:
        api = world.connect(client).api
        plan = api.plan()
        assert (plan.name, plan.currency, plan.livemode) == ("Pro", plan.currency, True)
        assert api.project().plan == plan

        settings = api.update_settings(description="Guest photos", default_max_files=50)
        assert (settings.description, settings.default_max_files) == ("Guest photos", 50)
        assert api.update_settings(default_max_files=None).default_max_files is None  # None clears
        assert api.settings().description == "Guest photos"  # not sent: unchanged

        expires = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
        session = api.create_upload_session("Ana & Ben", max_files=500, expires_at=expires)
        assert session.id.startswith("ses_") and session.status == "open" and session.expires_at == expires
        assert session.url.startswith("http") and "/u/" in session.url
        assert api.get_upload_session(session.id) == session
        closed = api.close_upload_session(session.id)
        assert closed.status == "closed" and closed.closed_at is not None

        assert api.list_keys().data == []
        destinations = api.list_destinations()
        assert destinations[0].id == "dst_apertur" and destinations[0].kind == "apertur"
        billing = api.billing()
        assert billing.plan.name == "Pro" and billing.payments == [] and billing.subscription is None

        hook = api.create_webhook("https://hooks.snapflow.example/apertur", events=["upload.created"])
        assert hook.secret is not None and hook.secret.startswith("whsec_")
        assert api.get_webhook(hook.id).secret is None  # shown once
        assert api.update_webhook(hook.id, enabled=False).enabled is False
        assert [h.id for h in api.iter_webhooks()] == [hook.id]
        assert api.list_webhook_deliveries(hook.id).data == []
        rolled = api.rotate_webhook_secret(hook.id, expire_previous_in_seconds=3600, idempotency_key="roll-1")
        assert rolled.secret is not None and rolled.secret != hook.secret and rolled.secret.startswith("whsec_")
        assert rolled.previous_secret_expires_at is not None and rolled.previous_secret_expires_at.tzinfo
        assert api.get_webhook(hook.id).secret is None
        assert api.get_webhook(hook.id).previous_secret_expires_at == rolled.previous_secret_expires_at

        async def roll_now() -> Any:
            async with _async_client(world, client) as aclient:
                return await aclient.connection(api_key(client)).api.rotate_webhook_secret(
                    hook.id, expire_previous_in_seconds=0
                )

        now = run_async(roll_now)  # after a leak: the previous secret stops at once
        assert now.secret not in {None, rolled.secret} and now.previous_secret_expires_at is None
        api.delete_webhook(hook.id)
        with pytest.raises(NotFound):
            api.get_webhook(hook.id)


def test_pagination_walks_every_page_newest_first(world: World) -> None:
    session = UploadSession.objects.get(pk=upload_services.create_session(project=world.project, title="Party").pk)
    made = [upload_services.accept_upload(session=session, file=image_file(f"p{i}.png")).public_id for i in range(5)]
    with world.client() as client:
        api = world.connect(client).api
        first = api.list_uploads(limit=2)
        assert len(first.data) == 2 and first.has_more and first.next_cursor
        second = api.list_uploads(limit=2, cursor=first.next_cursor)
        assert {u.id for u in first.data}.isdisjoint(u.id for u in second.data)
        every = list(api.iter_uploads(limit=2))
        assert [u.id for u in every] == made[::-1]
        assert every[0].file_name == "p4.png" and every[0].session_id == session.public_id
        assert [u.id for u in api.iter_uploads(session_id=session.public_id, limit=3)] == made[::-1]
        assert [s.id for s in api.iter_upload_sessions(limit=1)] == [session.public_id]

        async def walk() -> list[str]:
            async with _async_client(world, client) as aclient:
                connection = aclient.connection(api_key(client))
                return [u.id async for u in connection.api.iter_uploads(limit=2)]

        assert run_async(walk) == made[::-1]


def api_key(client: Client) -> str:
    assert isinstance(client.store, MemoryStore)
    (key,) = client.store.keys()
    return key


def _async_client(world: World, client: Client) -> AsyncClient:
    return AsyncClient(
        world.created.app.client_id, world.created.client_secret, base_url=world.base_url, store=client.store
    )


def test_posts_carry_an_idempotency_key(world: World) -> None:
    with world.client() as client:
        api = world.connect(client).api
        one = api.create_upload_session("Same", idempotency_key="order-42")
        again = api.create_upload_session("Same", idempotency_key="order-42")
        assert again == one  # replayed, not created twice
        assert len(list(api.iter_upload_sessions())) == 1
        assert api.create_upload_session("Same").id != one.id  # a new key per call by default
        with pytest.raises(Conflict) as caught:
            api.create_upload_session("Different", idempotency_key="order-42")
        assert caught.value.code == "idempotency_key_reused" and caught.value.status == 409


# --- errors -----------------------------------------------------------------------------------------------


def test_oauth_errors(world: World) -> None:
    with world.client() as client:
        with pytest.raises(InvalidGrant) as grant:
            client.exchange_code("oac_not-a-code")
        assert grant.value.status == 400 and isinstance(grant.value, AperturError)
        code = world.code()
        client.exchange_code(code)
        with pytest.raises(InvalidGrant, match="already used"):
            client.exchange_code(code)
    wrong = Client(world.created.app.client_id, "aptr_cs_wrong", base_url=world.base_url)
    with pytest.raises(InvalidClient) as bad_client:
        wrong.exchange_code(world.code())
    assert bad_client.value.status == 401
    with world.client() as client:
        connection = world.connect(client, scope="upload:read")
        with pytest.raises(InvalidScope):
            client._token_request(
                {"grant_type": "refresh_token", "refresh_token": connection.tokens.refresh_token, "scope": "nope:x"}
            )


def test_api_errors(world: World) -> None:
    with world.client() as client:
        connection = world.connect(client, scope="upload:read")
        with pytest.raises(InsufficientScope) as scope:
            connection.api.billing()
        assert scope.value.scope == "billing:read" and scope.value.status == 403
        assert isinstance(scope.value, ApiError) and scope.value.request_id.startswith("req_")

        with pytest.raises(NotFound) as missing:
            connection.api.get_upload_session("ses_nope")
        assert missing.value.code == "not_found" and missing.value.request_id

        full = world.connect(client)
        with pytest.raises(ValidationError) as invalid:
            full.api.create_upload_session("")
        assert invalid.value.status == 422 and invalid.value.field == "title"
        with pytest.raises(ValidationError) as bad_limit:
            full.api.list_uploads(limit=1000)
        assert bad_limit.value.field == "limit"

    # A token the server does not know, sent as-is: the error class and the WWW-Authenticate mapping.
    answer = httpx.get(f"{world.base_url}/api/v1/plan", headers={"Authorization": "Bearer oat_unknown"})
    error = sdk_errors.from_response(answer)
    assert isinstance(error, AuthenticationError) and error.code == "invalid_token" and error.status == 401


def test_test_mode_cannot_change_settings(world: World) -> None:
    code = world.code(public_key=world.created.test_public_key, origin="https://snapflow.example", ux_mode="redirect")
    with world.client() as client:
        connection = client.exchange_code(code)
        assert connection.livemode is False and connection.key.endswith(":test")
        with pytest.raises(PermissionDenied) as denied:
            connection.api.update_settings(name="x")
        assert denied.value.code == "livemode_required"


def test_rate_limited_carries_retry_after(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # A year-long window: the reset is always far beyond what the client waits (with a minute-long window the
    # third call could land within 5 s of the reset, be waited out and succeed).
    year = 365 * 24 * 3600
    monkeypatch.setattr(api_auth, "PER_CALLER", Limit("sdk-test-caller", 2, year))
    with world.client(retry=RetryPolicy(max_retry_after=5)) as client:
        api = world.connect(client).api
        api.plan()
        api.plan()
        with pytest.raises(RateLimited) as limited:  # Retry-After is longer than we wait: raised
            api.plan()
    assert limited.value.status == 429 and 5 < limited.value.retry_after <= year


def test_network_error() -> None:
    client = Client("aptr_ci_x", "aptr_cs_y", base_url="http://127.0.0.1:9", retry=RetryPolicy(base=0.001))
    with pytest.raises(NetworkError) as down:
        client.exchange_code("oac_x")
    assert down.value.code == "apertur_unreachable"


# --- retries (scripted transport: the server never answers 5xx on purpose) -------------------------------


def _scripted(statuses: list[int], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.pop(0) if statuses else 200
        if status == 200:
            body: dict[str, Any] = {"name": "Pro", "price_cents": 1, "currency": "CAD", "interval": "month"}
            body["limits"] = {"uploads_per_month": 1, "storage_bytes": 1, "active_sessions": 1, "file_bytes": 1}
            if request.url.path.endswith("upload-sessions"):
                body = json.loads(_SESSION)
            return httpx.Response(200, json=body)
        headers = {"Retry-After": "0"} if status == 429 else {}
        return httpx.Response(status, json={"error": {"code": "boom", "message": "boom"}}, headers=headers)

    return httpx.MockTransport(handler)


_SESSION = json.dumps(
    {
        "id": "ses_1",
        "title": "t",
        "url": "u",
        "status": "open",
        "expires_at": None,
        "max_files": None,
        "accepted_types": [],
        "password_protected": False,
        "upload_count": 0,
        "created_at": "2026-01-01T00:00:00+00:00",
        "closed_at": None,
        "livemode": True,
    }
)


def _offline_connection(statuses: list[int], seen: list[httpx.Request], sleeps: list[float]) -> Connection:
    store = MemoryStore()
    store.set("k", TokenSet("oat_a", "ort_b", expires_at=4e9, scopes=("plan:read",), project_id="prj_1"))
    client = Client(
        "aptr_ci_x",
        "aptr_cs_y",
        base_url="https://apertur.test",
        store=store,
        transport=_scripted(statuses, seen),
        retry=RetryPolicy(max_retries=3, base=0.5, cap=2.0),
        sleep=sleeps.append,
    )
    return client.connection("k")


def test_gets_are_retried_with_jittered_backoff() -> None:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    connection = _offline_connection([503, 429, 502], seen, sleeps)
    assert connection.api.plan().name == "Pro"
    assert len(seen) == 4 and len(sleeps) == 3
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0 and 0 <= sleeps[2] <= 2.0

    seen.clear()
    connection = _offline_connection([500] * 5, seen, sleeps)
    with pytest.raises(ServerError) as failed:
        connection.api.plan()
    assert len(seen) == 4 and failed.value.status == 500  # 1 + max_retries


def test_a_post_keeps_its_idempotency_key_across_retries_and_a_patch_is_not_retried() -> None:
    seen: list[httpx.Request] = []
    connection = _offline_connection([503, 503], seen, [])
    assert connection.api.create_upload_session("t").id == "ses_1"
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1 and keys.pop().startswith("aptr-py-")

    seen.clear()
    connection = _offline_connection([503], seen, [])
    with pytest.raises(ServerError):
        connection.api.update_settings(name="x")
    assert len(seen) == 1


def test_sync_and_async_have_the_same_surface() -> None:
    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(fn).parameters)
            for name, fn in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")
        }

    assert public(Api) == public(AsyncApi)
    assert set(public(Connection)) - {"tokens"} <= set(public(AsyncConnection)) | {"project_id", "scopes"}
    assert {"exchange_code", "connection", "revoke_token", "authorization_url"} <= set(public(AsyncClient))
