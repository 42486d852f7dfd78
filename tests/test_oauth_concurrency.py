"""Races on the token endpoint, on PostgreSQL with real parallel connections (ARCHITECTURE section 5)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import time_machine
from django.db import transaction
from django.test import Client

from apertur.oauth import tokens as token_store
from apertur.oauth.models import Token
from apertur.projects.services import create_project
from apertur.testing import exchange, get_code, make_app, make_user, while_paused
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
    assert Token.objects.count() <= 2


def _lock_issue_and_rotate(pk: int) -> None:
    """What the refresh grant does inside its transaction: lock the row, insert its successor, rotate the row."""
    row = Token.objects.select_for_update().select_related("connection").get(pk=pk)
    token_store.issue(
        connection=row.connection,
        scopes=row.scope_list,
        livemode=row.livemode,
        access_token=token_store.new_access_token(),
        refresh_token=token_store.new_refresh_token(),
        parent=row,
    )
    token_store.rotate(token=row)


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
                _lock_issue_and_rotate(parent.pk)
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
    child = Token.objects.exclude(pk=parent.pk).get()
    assert child.refresh_revoked_at is not None
    assert child.access_revoked_at is not None  # was None: a live access token of a revoked family


def _a_family_with_a_dead_row(world: dict[str, Any]) -> tuple[Token, Token, dt.datetime]:
    """A code exchanged, its refresh token used once: the first row rotated (dead once ``DEAD_KEPT`` has passed),
    the second live. Returns (dead, live, a time when the housekeeping prunes the first and keeps the second)."""
    created = world["created"]
    start = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        code = get_code(world["browser"], created.app.client_id)
        tokens = exchange(Client(), code, created.app.client_id, created.client_secret).json()
        refreshed = Client().post(
            "/oauth/token",
            {
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": created.app.client_id,
                "client_secret": created.client_secret,
            },
        )
        assert refreshed.status_code == 200, refreshed.content
    dead, live = Token.objects.order_by("pk")
    return dead, live, start + token_store.DEAD_KEPT + dt.timedelta(hours=2)


def test_pruning_dead_tokens_never_waits_for_a_live_one(world: dict[str, Any]) -> None:
    """The housekeeping deletes a family's dead rows while its live row is locked (a refresh of it in flight, a
    revocation). Deleting a rotated row set its child's ``parent`` to NULL: an UPDATE of the live row, after the
    delete had locked the dead one, in the opposite order to a revocation of the family (the dead row, then the
    live one): a deadlock, and a revocation rolled back. A pass now touches dead rows only."""
    _dead, live, later = _a_family_with_a_dead_row(world)
    held, release = threading.Event(), threading.Event()

    def refresh_in_flight() -> None:
        with transaction.atomic():
            assert list(Token.objects.select_for_update().filter(pk=live.pk).values_list("pk", flat=True))
            held.set()
            assert release.wait(timeout=10)

    with time_machine.travel(later, tick=False):
        outcome = while_paused(refresh_in_flight, lambda: token_store.prune_dead_tokens(later), paused=held, go=release)
    assert outcome["second"] == 1, outcome
    assert not outcome["second_waited"]  # it waited for the refresh's lock on the live row
    assert list(Token.objects.values_list("pk", flat=True)) == [live.pk]


def test_revoking_a_family_leaves_its_dead_rows_alone(world: dict[str, Any]) -> None:
    """A revocation (a replayed refresh token, a disconnect) marked every row of the family, the long-expired ones
    too: it waited for (and could deadlock with) a housekeeping pass deleting them. Only the rows still usable are
    revoked now; a dead row refuses its tokens anyway."""
    dead, live, later = _a_family_with_a_dead_row(world)
    held, release = threading.Event(), threading.Event()

    def prune_in_flight() -> int:
        with transaction.atomic():
            deleted = Token.objects.filter(pk=dead.pk).delete()[0]  # a pass's batch, not yet committed
            held.set()
            assert release.wait(timeout=10)
        return deleted

    with time_machine.travel(later, tick=False):
        outcome = while_paused(
            prune_in_flight, lambda: token_store.revoke_family(family=live.family), paused=held, go=release
        )
    assert outcome["first"] == 1 and outcome["second"] == 1, outcome
    assert not outcome["second_waited"]  # it waited for the pass's lock on the dead row
    live.refresh_from_db()
    assert live.refresh_revoked_at == later and live.access_revoked_at is None  # its access token had expired


@pytest.mark.parametrize(
    "after",
    [
        pytest.param(token_store.ACCESS_TTL + dt.timedelta(minutes=5), id="its-access-token-expired"),
        pytest.param(token_store.REFRESH_IDLE_TTL + dt.timedelta(seconds=1), id="its-refresh-token-just-expired"),
    ],
)
def test_a_revocation_waits_for_a_refresh_of_a_token_whose_access_token_expired(
    world: dict[str, Any], after: dt.timedelta
) -> None:
    """The usual refresh comes after the access token expired. A revocation of the family meanwhile marks only what
    is still usable: its access UPDATE skipped the row the refresh holds, its refresh UPDATE waited for it and then
    skipped it too (rotated by the refresh), so the round counted nothing and the loop ended before the token the
    refresh inserted: a live token in a revoked family. Also a refresh that read its refresh token live just before it
    expired: the revocation, a moment later, did not even wait for it."""
    created = world["created"]
    start = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        code = get_code(world["browser"], created.app.client_id)
        exchange(Client(), code, created.app.client_id, created.client_secret)
    parent = Token.objects.select_related("connection").get()
    held, release = threading.Event(), threading.Event()

    def refresh_in_flight() -> None:  # the refresh grant: lock the row, insert its child, rotate it, commit
        with transaction.atomic():
            _lock_issue_and_rotate(parent.pk)
            held.set()
            assert release.wait(timeout=10)

    with time_machine.travel(start + after, tick=False):
        outcome = while_paused(
            refresh_in_flight, lambda: token_store.revoke_family(family=parent.family), paused=held, go=release
        )
    assert outcome["first"] is None and isinstance(outcome["second"], int), outcome
    assert outcome["second_waited"]  # for the refresh's lock on the row it rotates
    child = Token.objects.exclude(pk=parent.pk).get()
    assert child.access_revoked_at is not None and child.refresh_revoked_at is not None  # was a live pair
