"""Races on the token endpoint, on PostgreSQL with real parallel connections (ARCHITECTURE section 5)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apertur.oauth.models import Token
from apertur.projects.services import create_project
from apertur.testing import exchange, get_code, make_app, make_user
from tests.test_concurrency import race


@pytest.fixture
def world(postgres_only: None) -> dict[str, Any]:
    created = make_app()
    customer = make_user()
    create_project(owner=customer, name="Weddings")
    browser = Client()
    browser.force_login(customer)
    return {"created": created, "browser": browser}


def test_two_simultaneous_exchanges_of_one_code_give_one_token(world: dict[str, Any]) -> None:
    created = world["created"]
    for _ in range(3):  # a few rounds: each is a fresh race
        code = get_code(world["browser"], created.app.client_id)
        results = race(lambda code=code: exchange(Client(), code, created.app.client_id, created.client_secret), n=4)
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 400, 400, 400], statuses
        winner = next(r for r in results if r.status_code == 200).json()
        # The losers were replays: what the winner got is revoked (RFC 6749 §4.1.2).
        plan = Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {winner['access_token']}")
        assert plan.status_code == 401
    assert Token.objects.count() == 3


def test_two_simultaneous_refreshes_give_at_most_one_success(world: dict[str, Any]) -> None:
    created = world["created"]
    code = get_code(world["browser"], created.app.client_id)
    tokens = exchange(Client(), code, created.app.client_id, created.client_secret).json()

    def refresh() -> Any:
        return Client().post(
            "/oauth/token",
            {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": created.app.client_id,
                "client_secret": created.client_secret,
            },
        )

    results = race(refresh, n=4)
    successes = [r for r in results if r.status_code == 200]
    assert len(successes) <= 1
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code != 200)
    # At most one new token was issued from the one refresh token.
    assert Token.objects.filter(parent__isnull=False).count() <= 1


def test_revoking_a_family_during_a_refresh_also_revokes_what_the_refresh_issues(world: dict[str, Any]) -> None:
    """A family is revoked (refresh token reuse, consent narrowed, code replay, revocation) while a refresh of one
    of its tokens is in flight. The revocation's first UPDATE waits for the refresh's row lock; on PostgreSQL (READ
    COMMITTED) that statement then cannot see the token the refresh inserted, so its access token stayed live for
    up to an hour (its refresh token, updated by the next statement, was revoked)."""
    import threading
    import time

    from django.db import connection, transaction

    from apertur.oauth import tokens as token_store

    created = world["created"]
    code = get_code(world["browser"], created.app.client_id)
    exchange(Client(), code, created.app.client_id, created.client_secret)
    parent = Token.objects.select_related("connection").get()
    locked, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def refresh_in_flight() -> None:  # what the refresh grant does: lock the parent, insert its child, rotate it
        try:
            with transaction.atomic():
                row = Token.objects.select_for_update().select_related("connection").get(pk=parent.pk)
                token_store.issue(
                    connection=row.connection,
                    scopes=row.scope_list,
                    livemode=row.livemode,
                    access_token=token_store.new_access_token(),
                    refresh_token=token_store.new_refresh_token(),
                    parent=row,
                )
                token_store.rotate(token=row)
                locked.set()
                release.wait(10)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            connection.close()

    def revoke() -> None:
        try:
            locked.wait(10)
            token_store.revoke_family(family=parent.family)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh_in_flight), threading.Thread(target=revoke)]
    for t in threads:
        t.start()
    locked.wait(10)
    time.sleep(0.5)  # the revocation is now waiting for the refresh's row lock
    release.set()
    for t in threads:
        t.join(30)
    assert not failures, failures
    child = Token.objects.get(parent=parent)
    assert child.refresh_revoked_at is not None
    assert child.access_revoked_at is not None  # was None: a live access token of a revoked family
