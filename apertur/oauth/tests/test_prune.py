"""The housekeeping's passes for dead tokens and codes (apertur.oauth.tokens.prune_dead_tokens and
prune_dead_codes): every refresh adds a token row, which stayed for ever."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from apertur.core import housekeeping
from apertur.core.tokens import hash_secret
from apertur.oauth.models import AuthorizationCode, Token
from apertur.oauth.tests.conftest import Flow, api_get
from apertur.oauth.tests.test_refresh import refresh
from apertur.testing import exchange

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
KEPT = dt.timedelta(days=30)


def _prune(at: dt.datetime) -> tuple[int, int]:
    with time_machine.travel(at, tick=False):
        done = housekeeping.prune(now=at)
    return done["dead_oauth_tokens"], done["dead_authorization_codes"]


def test_dead_rows_go_30_days_after_their_last_possible_use_and_live_ones_stay(flow: Flow) -> None:
    with time_machine.travel(T0, tick=False):
        first_code = flow.code()
        first = exchange(Client(), first_code, flow.client_id, flow.secret).json()
        second = refresh(flow, first["refresh_token"]).json()
        third = refresh(flow, second["refresh_token"]).json()  # the family's live row
        revoked = flow.tokens()
        assert (
            Client()
            .post(
                "/oauth/revoke",
                {"client_id": flow.client_id, "client_secret": flow.secret, "token": revoked["refresh_token"]},
            )
            .status_code
            == 200
        )
        flow.code()  # never exchanged
    assert Token.objects.count() == 4 and AuthorizationCode.objects.count() == 3

    # Nothing has been dead for 30 days yet: every replay is still recognised.
    assert _prune(T0 + KEPT - dt.timedelta(minutes=1)) == (0, 0)
    # Then the two rotated rows and the revoked one, the code of the revoked family (no token from it left) and the
    # code never used; the live row, and the code it came from, stay.
    assert _prune(T0 + KEPT + dt.timedelta(hours=1, seconds=1)) == (3, 2)
    [live] = Token.objects.all()
    assert live.refresh_token_hash == hash_secret(third["refresh_token"])  # the newest row of its family
    assert list(AuthorizationCode.objects.values_list("pk", flat=True)) == [live.authorization_code_id]

    with time_machine.travel(T0 + KEPT + dt.timedelta(hours=2), tick=False):
        # A pruned rotated token is unknown now (the same invalid_grant): nothing else is revoked by it.
        replay = refresh(flow, first["refresh_token"])
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        fourth = refresh(flow, third["refresh_token"])
        assert fourth.status_code == 200, fourth.content
        assert api_get("/api/v1/plan", fourth.json()["access_token"]).status_code == 200
        # The family's code is still there: replaying it still revokes what was issued from it (RFC 6749 §4.1.2).
        again = exchange(Client(), first_code, flow.client_id, flow.secret)
        assert "already used" in again.json()["error_description"]
        assert api_get("/api/v1/plan", fourth.json()["access_token"]).status_code == 401


def test_deleting_dead_rows_voids_no_cached_token_check_and_any_other_token_deletion_still_does(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every batch of the pass voided every process's token cache (the Token post_delete receiver), so each pass
    cost the API's hot path a query per token for a while; a cached check of a dead token already refuses it."""
    from apertur.oauth import token_cache

    voided: list[int] = []
    monkeypatch.setattr(token_cache, "invalidate_all", lambda: voided.append(1))
    with time_machine.travel(T0, tick=False):
        dead = flow.tokens()
        refresh(flow, dead["refresh_token"])  # its first row rotates out: dead 30 days on
        live = flow.tokens()
    voided.clear()
    assert _prune(T0 + KEPT + dt.timedelta(hours=2)) == (1, 0)
    assert voided == []
    Token.objects.filter(access_token_hash=hash_secret(live["access_token"])).delete()  # any other deletion
    assert voided
