"""Races that only a real database with parallel connections can show (run by make test on PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection

from apertur.accounts.models import User
from apertur.core.errors import AperturError
from apertur.partners import services as partner_services
from apertur.partners.models import Partner, PartnerStatus
from apertur.testing import APPLICATION, make_partner, make_user, record_outcome, wait_until_blocked, while_paused


def race(fn: Callable[[], Any], n: int = 2) -> list[Any]:
    """Run ``fn`` in ``n`` threads released together; return each result or exception."""
    barrier = threading.Barrier(n, timeout=10)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn()
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_signups_with_one_email_make_one_account(postgres_only: None) -> None:
    from apertur.accounts.services import create_user

    results = race(lambda: create_user(email="race@example.com", password="correct-horse-battery"), n=4)
    assert sum(isinstance(r, User) for r in results) == 1
    assert all(isinstance(r, User) or getattr(r, "code", "") == "email_taken" for r in results)
    assert User.objects.filter(email="race@example.com").count() == 1


def test_two_applications_at_once_make_one_partner(postgres_only: None) -> None:
    user = make_user()
    results = race(lambda: partner_services.apply(user=user, **APPLICATION), n=3)
    assert sum(isinstance(r, Partner) for r in results) == 1
    assert all(isinstance(r, Partner | AperturError) for r in results)
    assert Partner.objects.filter(user=user).count() == 1


def test_approve_and_reject_at_once_one_wins(postgres_only: None) -> None:
    partner = make_partner(approved=False)
    outcomes = iter(["approve", "reject"])
    lock = threading.Lock()

    def decide() -> Any:
        with lock:
            action = next(outcomes)
        if action == "approve":
            return partner_services.approve(partner=partner, reviewer=None)
        return partner_services.reject(partner=partner, reviewer=None, reason="Not a fit")

    results = race(decide)
    assert sum(isinstance(r, Partner) for r in results) == 1
    assert sum(getattr(r, "code", "") == "invalid_partner_status" for r in results) == 1
    partner.refresh_from_db()
    assert partner.status in {PartnerStatus.APPROVED, PartnerStatus.REJECTED}


def test_rate_limits_are_shared_through_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """With REDIS_URL set, every app process counts in one place. Two independent Redis cache clients
    stand in for two processes."""
    import os

    from django.core.cache.backends.redis import RedisCache

    from apertur.core import ratelimit
    from apertur.core.errors import RateLimited

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    first, second = RedisCache(url, {}), RedisCache(url, {})
    try:
        first.clear()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis not reachable at {url}: {exc}")
        pytest.skip(f"Redis not reachable at {url}")
    limit = ratelimit.Limit("shared", 2, 60)
    try:
        # ratelimit reads caches["default"]: each client in turn is the "process" counting.
        monkeypatch.setattr(ratelimit, "caches", {"default": first})
        ratelimit.hit(limit, "ip")
        monkeypatch.setattr(ratelimit, "caches", {"default": second})
        ratelimit.hit(limit, "ip")
        assert ratelimit._process_counters._windows == {}  # nothing counted in this process's memory
        with pytest.raises(RateLimited):
            ratelimit.hit(limit, "ip")
    finally:
        first.clear()


def test_hits_are_given_back_through_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """A login that succeeds gives its hits back (apertur.accounts.login): through Redis too, in the window it was
    counted in, never below zero nor reviving an expired or reset counter as a key without expiry. Own keys, no
    flush: this test can share the Redis database with a run in progress."""
    import os
    import uuid

    from django.core.cache.backends.redis import RedisCache

    from apertur.core import ratelimit
    from apertur.core.errors import RateLimited

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    first, second = RedisCache(url, {}), RedisCache(url, {})
    try:
        first.get("ping")
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis not reachable at {url}: {exc}")
        pytest.skip(f"Redis not reachable at {url}")
    limit = ratelimit.Limit(f"give-back-{uuid.uuid4().hex}", 2, 60)
    monkeypatch.setattr(ratelimit, "caches", {"default": first})
    counted = ratelimit.hit(limit, "ip")
    monkeypatch.setattr(ratelimit, "caches", {"default": second})
    ratelimit.hit(limit, "ip")
    ratelimit.give_back(counted)  # given back by another "process" than the one that counted it
    ratelimit.hit(limit, "ip")
    for _ in range(2):
        with pytest.raises(RateLimited):
            ratelimit.hit_all((limit, "ip"))
    full_key = first.make_and_validate_key(ratelimit._key(limit, "ip", counted.window_start))
    client = first._cache.get_client(full_key, write=True)
    assert int(client.get(full_key)) == 2  # the refused attempts gave their hits back
    ratelimit.reset(limit, "ip")
    ratelimit.give_back(counted)
    assert client.get(full_key) is None  # not revived (it would have no expiry), not negative
    client.set(full_key, 1, ex=60)
    ratelimit.give_back(counted)
    assert int(client.get(full_key)) == 0 and 0 < client.ttl(full_key) <= 60  # the expiry is kept
    client.delete(full_key)


def test_disconnecting_while_a_code_is_exchanged_neither_deadlocks_nor_leaves_a_live_token(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exchange holds its code's row lock and then inserts a token whose foreign key checks the connection
    (FOR KEY SHARE); disconnecting locks the connection and then withdraws its codes. With FOR UPDATE on the
    connection these two wait for each other (a deadlock PostgreSQL breaks by failing one); with FOR NO KEY
    UPDATE the disconnect waits for the exchange to commit, then revokes the token it issued."""

    from django.test import Client

    from apertur.oauth import tokens as token_store
    from apertur.oauth.models import Connection, Token
    from apertur.projects.services import create_project
    from apertur.testing import REDIRECT_URI, exchange, make_app, pkce_pair

    created = make_app()
    customer = make_user()
    project = create_project(owner=customer, name="Weddings")
    conn = token_store.connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    verifier, challenge = pkce_pair()
    code = token_store.new_code()
    token_store.save_code(
        code=code,
        connection=conn,
        user=customer,
        scopes=["plan:read"],
        redirect_uri=REDIRECT_URI,
        code_challenge=challenge,
        code_challenge_method="S256",
        livemode=True,
    )
    locked, go = threading.Event(), threading.Event()
    real_mark_used = token_store.mark_code_used

    def mark_used_after_the_disconnect_waits(**kwargs: Any) -> Any:
        locked.set()  # the exchange holds its code's lock
        assert go.wait(timeout=10)
        return real_mark_used(**kwargs)

    monkeypatch.setattr(token_store, "mark_code_used", mark_used_after_the_disconnect_waits)
    outcome: dict[str, Any] = {}

    def exchanging() -> None:
        try:
            outcome["exchange"] = exchange(
                Client(), code, created.app.client_id, created.client_secret, code_verifier=verifier
            )
        except Exception as exc:
            outcome["exchange"] = exc
        finally:
            connection.close()

    def disconnecting() -> None:
        try:
            outcome["disconnect"] = token_store.disconnect(connection=Connection.objects.get(pk=conn.pk), actor=None)
        except Exception as exc:
            outcome["disconnect"] = exc
        finally:
            connection.close()

    first = threading.Thread(target=exchanging)
    first.start()
    assert locked.wait(timeout=10)
    second = threading.Thread(target=disconnecting)
    second.start()
    # Bounded wait until the disconnect is blocked on a row lock (pg_stat_activity), so the order is certain.
    if not wait_until_blocked(timeout=10):
        pytest.fail("the disconnect never waited for the exchange's lock")
    go.set()
    first.join(timeout=30)
    second.join(timeout=30)
    response = outcome["exchange"]
    assert not isinstance(response, Exception), response
    assert response.status_code == 200, response.content
    assert isinstance(outcome["disconnect"], Connection), outcome["disconnect"]
    token = Token.objects.get()
    assert token.access_revoked_at is not None and token.refresh_revoked_at is not None  # issued, then revoked
    assert Connection.objects.get(pk=conn.pk).revoked_at is not None


def test_one_reset_link_submitted_twice_at_once_sets_one_password(postgres_only: None) -> None:
    """The link is checked again under the account's row lock: of two parallel submissions, the second finds the
    password changed (the token no longer matches) and is refused."""
    from django.contrib.auth.tokens import default_token_generator

    from apertur.accounts import services
    from apertur.accounts.errors import InvalidResetLink
    from apertur.core.models import AuditEvent

    user = make_user("reset-race@example.com")
    token = default_token_generator.make_token(user)
    passwords = iter(["first-new-secret-1", "second-new-secret-2"])
    lock = threading.Lock()

    def submit() -> Any:
        with lock:
            password = next(passwords)
        return services.reset_password(user=User.objects.get(pk=user.pk), token=token, password=password)

    results = race(submit, n=2)
    assert sum(isinstance(r, User) for r in results) == 1
    assert sum(isinstance(r, InvalidResetLink) for r in results) == 1
    assert AuditEvent.objects.filter(action="user.password_changed", object_id=str(user.pk)).count() == 1


@dataclass
class HeldTokenRequest:
    """A code exchange or refresh for a customer's project, paused while it holds its code's (refresh token's) row
    lock: started by :func:`hold_a_token_request`, let go by :meth:`run_beside`."""

    app: Any
    client_secret: str
    project: Any
    customer: User
    send: Callable[[], Any]
    locked: threading.Event
    go: threading.Event

    def run_beside(self, other: Callable[[], Any]) -> tuple[Any, Any]:
        """Send the request; once it holds its lock, run ``other`` in a second thread, let the request go when
        ``other`` waits on a lock, and return both outcomes (a result or the exception), request first."""
        outcome: dict[str, Any] = {}
        first = threading.Thread(target=record_outcome, args=(outcome, "request", self.send))
        first.start()
        assert self.locked.wait(timeout=10)
        second = threading.Thread(target=record_outcome, args=(outcome, "other", other))
        second.start()
        wait_until_blocked(second, timeout=10)
        self.go.set()
        first.join(timeout=30)
        second.join(timeout=30)
        return outcome["request"], outcome["other"]

    @staticmethod
    def finished_first_and_its_token_is_dead(response: Any) -> None:
        """The request was answered (the deletion waited for it), and the access token it got no longer works."""
        from django.test import Client

        assert not isinstance(response, Exception), response
        assert response.status_code == 200, response.content
        api = Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {response.json()['access_token']}")
        assert api.status_code == 401, api.content


def hold_a_token_request(monkeypatch: pytest.MonkeyPatch, grant: str) -> HeldTokenRequest:
    from django.test import Client

    from apertur.oauth import tokens as token_store
    from apertur.projects.services import create_project
    from apertur.testing import REDIRECT_URI, exchange, make_app, pkce_pair

    created = make_app()
    customer = make_user()
    project = create_project(owner=customer, name="Weddings")
    conn = token_store.connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    verifier, challenge = pkce_pair()
    code = token_store.new_code()
    token_store.save_code(
        code=code,
        connection=conn,
        user=customer,
        scopes=["plan:read"],
        redirect_uri=REDIRECT_URI,
        code_challenge=challenge,
        code_challenge_method="S256",
        livemode=True,
    )

    def token_request() -> Any:
        return exchange(Client(), code, created.app.client_id, created.client_secret, code_verifier=verifier)

    pause_in = "mark_code_used"
    if grant == "refresh_token":
        first_tokens = token_request().json()
        pause_in = "rotate"

        def token_request() -> Any:
            body = {
                "grant_type": "refresh_token",
                "refresh_token": first_tokens["refresh_token"],
                "client_id": created.app.client_id,
                "client_secret": created.client_secret,
            }
            return Client().post("/oauth/token", body)

    locked, go = threading.Event(), threading.Event()
    real = getattr(token_store, pause_in)

    def after_the_other_waits(**kwargs: Any) -> Any:
        locked.set()  # the request holds its code's (refresh token's) row lock
        assert go.wait(timeout=10)
        return real(**kwargs)

    monkeypatch.setattr(token_store, pause_in, after_the_other_waits)
    return HeldTokenRequest(created.app, created.client_secret, project, customer, token_request, locked, go)


@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
def test_deleting_an_app_while_a_token_request_is_in_flight_fails_neither_and_leaves_no_token(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, grant: str
) -> None:
    """A code exchange (or a refresh) holds its code's (refresh token's) row lock when the partner deletes the app.
    The delete used to read the app's rows before the request committed the token it issued, then fail on that
    token's foreign key: a 500 for the partner, the app still there. The delete now waits for the request and
    removes the token it issued with the app (dead at once); a request that comes later is ``invalid_client``."""

    from apertur.oauth import services as app_services
    from apertur.oauth.models import OAuthApp, Token

    held = hold_a_token_request(monkeypatch, grant)

    def deleting() -> None:
        app = OAuthApp.objects.get(pk=held.app.pk)
        app_services.delete_app(app=app, confirm_name=app.name, actor=None)

    response, deleted = held.run_beside(deleting)
    assert not isinstance(deleted, Exception), deleted
    assert not OAuthApp.objects.filter(pk=held.app.pk).exists()
    assert not Token.objects.exists()
    held.finished_first_and_its_token_is_dead(response)
    later = held.send()
    assert later.status_code == 401 and later.json()["error"] == "invalid_client", later.content


@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
@pytest.mark.parametrize("deleted", ["project", "owner"])
def test_staff_deleting_a_project_or_its_owner_while_a_token_request_is_in_flight_fails_neither(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, grant: str, deleted: str
) -> None:
    """Staff delete a project (or its owner's account) in the admin, which takes the project's connections, codes
    and tokens with it, while a code exchange (or a refresh) for it holds its code's (refresh token's) lock. The
    deletion used to read the project's tokens before the request committed the one it issued, then fail on that
    token's foreign keys: a 500 for staff, the project still there. It now waits for the request and removes the
    token it issued too; a request that comes later finds its code (refresh token) gone."""
    from django.test import Client

    from apertur.oauth.models import Token
    from apertur.projects.models import Project
    from apertur.testing import make_staff

    held = hold_a_token_request(monkeypatch, grant)
    staff = Client()
    staff.force_login(make_staff("staff-deleting@example.com"))
    page = f"/admin/projects/project/{held.project.pk}/delete/"
    if deleted == "owner":
        page = f"/admin/accounts/user/{held.customer.pk}/delete/"

    response, deletion = held.run_beside(lambda: staff.post(page, {"post": "yes"}))
    assert not isinstance(deletion, Exception), deletion
    assert deletion.status_code == 302, deletion.content
    assert not Project.objects.filter(pk=held.project.pk).exists()
    assert not Token.objects.exists()
    held.finished_first_and_its_token_is_dead(response)
    later = held.send()
    assert later.status_code == 400 and later.json()["error"] == "invalid_grant", later.content


def test_one_idempotency_key_sent_four_times_at_once_creates_one_session(postgres_only: None) -> None:
    """docs/api.md, Idempotency: while the first request runs, the same key answers 409 idempotency_in_progress
    (Retry-After: 1); once done, the first answer again. Never a second session, never a 500."""
    from django.test import Client

    from apertur.projects.services import create_api_key, create_project
    from apertur.uploads.models import UploadSession

    project = create_project(owner=make_user(), name="Race")
    secret = create_api_key(project=project, name="Server").secret

    def send() -> Any:
        return Client().post(
            "/api/v1/upload-sessions",
            {"title": "Once"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            HTTP_IDEMPOTENCY_KEY="race-1",
        )

    results = race(send, n=4)
    assert all(not isinstance(r, Exception) for r in results), results
    created = [r for r in results if r.status_code == 201]
    waiting = [r for r in results if r.status_code == 409]
    assert len(created) + len(waiting) == 4, [(r.status_code, r.content) for r in results]
    assert len({r.json()["id"] for r in created}) == 1
    assert all(r.json()["error"]["code"] == "idempotency_in_progress" and r["Retry-After"] == "1" for r in waiting)
    assert UploadSession.objects.filter(project=project).count() == 1
    assert send().json()["id"] == created[0].json()["id"]


@pytest.mark.parametrize("first", ["consent", "delete"])
def test_deleting_an_app_while_a_customer_consents_fails_neither(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """A customer clicks Allow as the partner deletes the app. The consent used to insert its connection beside a
    delete that had already read the app's rows: the delete then failed on that row's foreign key (a 500, the app
    still there), or the consent did on the deleted app (a 500 for the customer). Now one waits for the other: a
    consent that came first is deleted with the app; one that comes second says the app no longer exists."""
    from django.test import Client

    from apertur.oauth import services as app_services
    from apertur.oauth import tokens as token_store
    from apertur.oauth.models import AuthorizationCode, Connection, OAuthApp
    from apertur.projects.services import create_project
    from apertur.testing import authorize_url, make_app, pkce_pair

    created = make_app()
    customer = make_user()
    create_project(owner=customer, name="Weddings")
    browser = Client()
    browser.force_login(customer)
    _, challenge = pkce_pair()
    url = authorize_url(created.app.client_id, code_challenge=challenge, code_challenge_method="S256")

    paused, go = threading.Event(), threading.Event()
    real_save, real_connect = token_store.save_code, token_store.connect

    def save_then_pause(**kwargs: Any) -> Any:  # the consent's connection and code are written, not committed
        result = real_save(**kwargs)
        paused.set()
        assert go.wait(timeout=10)
        return result

    def pause_then_connect(**kwargs: Any) -> Any:  # the consent page has read the app; the delete commits now
        paused.set()
        assert go.wait(timeout=10)
        return real_connect(**kwargs)

    if first == "consent":
        monkeypatch.setattr(token_store, "save_code", save_then_pause)
    else:
        monkeypatch.setattr(token_store, "connect", pause_then_connect)
    outcome: dict[str, Any] = {}

    def consenting() -> None:
        try:
            outcome["consent"] = browser.post(url, {"decision": "allow"})
        except Exception as exc:
            outcome["consent"] = exc
        finally:
            connection.close()

    def deleting() -> None:
        try:
            app = OAuthApp.objects.get(pk=created.app.pk)
            outcome["delete"] = app_services.delete_app(app=app, confirm_name=app.name, actor=None)
        except Exception as exc:
            outcome["delete"] = exc
        finally:
            connection.close()

    consent, delete = threading.Thread(target=consenting), threading.Thread(target=deleting)
    consent.start()
    assert paused.wait(timeout=10)
    delete.start()
    if first == "consent":
        wait_until_blocked(delete, timeout=5)  # the delete waits for the consent
    else:
        delete.join(timeout=30)  # the delete is done before the consent writes anything
    go.set()
    for thread in (consent, delete):
        thread.join(timeout=30)

    assert not isinstance(outcome["delete"], Exception), outcome["delete"]
    assert not OAuthApp.objects.filter(pk=created.app.pk).exists()
    assert not Connection.objects.exists() and not AuthorizationCode.objects.exists()
    response = outcome["consent"]
    assert not isinstance(response, Exception), response
    if first == "consent":
        assert response.status_code == 302, response.content.decode()[:500]  # it finished first
    else:
        assert response.status_code == 400, response.content.decode()[:500]
        assert "no longer exists" in response.content.decode()


def _creations() -> dict[str, tuple[Any, str, Callable[[], Callable[[], Any]]]]:
    """Each capped creation: the module holding its limit, the limit's name, and a setup that makes an owner with
    one thing already and answers how to create one more."""
    from apertur.oauth import services as oauth_services
    from apertur.projects import services as project_services
    from apertur.referrals import services as referral_services
    from apertur.testing import make_app
    from apertur.uploads import destinations
    from apertur.webhooks import services as webhook_services

    def projects() -> Callable[[], Any]:
        owner = make_user()
        project_services.create_project(owner=owner, name="First")
        names = iter(range(100))
        lock = threading.Lock()

        def create() -> Any:
            with lock:
                name = f"Project {next(names)}"
            return project_services.create_project(owner=owner, name=name)

        return create

    def api_keys() -> Callable[[], Any]:
        project = project_services.create_project(owner=make_user(), name="Weddings")
        project_services.create_api_key(project=project, name="First")
        return lambda: project_services.create_api_key(project=project, name="Server")

    def links() -> Callable[[], Any]:
        partner = make_partner()  # approved: its Default link is the first
        return lambda: referral_services.create_link(partner=partner, label="Spring")

    def apps() -> Callable[[], Any]:
        partner = make_partner()
        make_app(partner)
        return lambda: make_app(partner)

    def endpoints() -> Callable[[], Any]:
        project = project_services.create_project(owner=make_user(), name="Weddings")
        webhook_services.create_endpoint(project=project, url="https://hooks.example.com/x")
        return lambda: webhook_services.create_endpoint(project=project, url="https://hooks.example.com/x")

    def targets() -> Callable[[], Any]:
        project = project_services.create_project(owner=make_user(), name="Weddings")

        def create() -> Any:
            return destinations.create_s3_destination(
                project=project, name="Bucket", bucket="photos", access_key_id="AKIA", secret_access_key="secret"
            )

        create()
        return create

    return {
        "projects": (project_services, "MAX_PROJECTS_PER_ACCOUNT", projects),
        "api_keys": (project_services, "MAX_API_KEYS_PER_PROJECT", api_keys),
        "referral_links": (referral_services, "MAX_LINKS_PER_PARTNER", links),
        "oauth_apps": (oauth_services, "MAX_APPS_PER_PARTNER", apps),
        "webhook_endpoints": (webhook_services, "MAX_ENDPOINTS_PER_PROJECT", endpoints),
        "destinations": (destinations, "MAX_DESTINATIONS_PER_PROJECT", targets),
    }


@pytest.mark.parametrize(
    "kind", ["projects", "api_keys", "referral_links", "oauth_apps", "webhook_endpoints", "destinations"]
)
def test_creations_at_once_cannot_both_take_the_last_slot(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Each capped creation counts with its owner's row locked until it commits: of four at once with one slot
    left, one is created and three are refused ``limit_reached``, never a fifth thing past the limit."""
    module, limit, setup = _creations()[kind]
    monkeypatch.setattr(module, limit, 2)
    create = setup()
    results = race(create, n=4)
    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert sorted(getattr(r, "code", "") for r in results if isinstance(r, Exception)) == ["limit_reached"] * 3


def test_staff_deleting_a_project_while_something_is_created_for_it_waits_and_takes_it_too(
    postgres_only: None,
) -> None:
    """Staff delete a project in the admin while its owner adds a webhook endpoint to it (the endpoint written, not
    yet committed). The deletion read the project's endpoints before that one committed, then failed on its foreign
    key: a 500 for staff, the project still there. The deletion now takes the project's own row first, which waits
    for a creation in flight (it holds the project's row, ``core.counts.ensure_room``) and reads its row after."""
    from django.db import transaction
    from django.test import Client

    from apertur.projects.models import Project
    from apertur.projects.services import create_project
    from apertur.testing import make_staff
    from apertur.webhooks.models import WebhookEndpoint
    from apertur.webhooks.services import create_endpoint

    project = create_project(owner=make_user(), name="Doomed")
    staff = Client()
    staff.force_login(make_staff("staff-deleting@example.com"))
    written, go = threading.Event(), threading.Event()

    def add_endpoint() -> Any:
        with transaction.atomic():
            endpoint = create_endpoint(project=project, url="https://hooks.example.com/in")
            written.set()
            assert go.wait(timeout=10)
        return endpoint

    outcome = while_paused(
        add_endpoint,
        lambda: staff.post(f"/admin/projects/project/{project.pk}/delete/", {"post": "yes"}),
        paused=written,
        go=go,
    )
    assert not any(isinstance(value, Exception) for value in outcome.values()), outcome
    assert outcome["second"].status_code == 302, outcome["second"].content
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not WebhookEndpoint.objects.exists()
