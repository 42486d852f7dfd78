"""POST /oauth/token and /api/v1/oauth/token: the authorization code grant (RFC 6749 §4.1.3-4.1.4, §5)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.oauth import services
from apertur.oauth.models import AuthorizationCode, Token
from apertur.oauth.tests.conftest import Flow, api_get
from apertur.partners import services as partner_services
from apertur.testing import REDIRECT_URI, exchange, get_code, make_app, pkce_pair

pytestmark = pytest.mark.django_db


def test_form_body_and_json_body_are_equivalent(flow: Flow) -> None:
    for as_json in (True, False):
        response = exchange(Client(), flow.code(), flow.client_id, flow.secret, as_json=as_json)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/json"
        assert response["Cache-Control"] == "no-store"
        assert response["Pragma"] == "no-cache"
        assert set(response.json()) >= {
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "scope",
            "scopes",
            "project_id",
            "plan",
        }


def test_client_secret_basic(flow: Flow) -> None:
    basic = base64.b64encode(f"{flow.client_id}:{flow.secret}".encode()).decode()
    response = Client().post(
        "/oauth/token",
        {"grant_type": "authorization_code", "code": flow.code(), "redirect_uri": REDIRECT_URI},
        HTTP_AUTHORIZATION=f"Basic {basic}",
    )
    assert response.status_code == 200, response.content


def test_only_hashes_are_stored(flow: Flow) -> None:
    body = flow.tokens()
    row = Token.objects.get()
    assert body["access_token"] not in (row.access_token_hash, row.refresh_token_hash)
    assert len(row.access_token_hash) == 64 and len(row.refresh_token_hash or "") == 64
    assert body["refresh_token"].startswith("ort_")
    assert AuditEvent.objects.filter(action="oauth.token_issued").count() == 1


@pytest.mark.parametrize("secret", ["wrong", ""])
def test_wrong_client_secret_is_401_with_challenge(flow: Flow, secret: str) -> None:
    response = exchange(Client(), flow.code(), flow.client_id, secret)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic")
    assert Token.objects.count() == 0


def test_a_failed_client_authentication_leaves_the_code_unused(flow: Flow) -> None:
    """The code is read (and on PostgreSQL locked) before the client authenticates: nothing is decided on it
    until the client has."""
    code = flow.code()
    assert exchange(Client(), code, flow.client_id, "aptr_cs_wrong").status_code == 401
    assert exchange(Client(), code, "aptr_ci_someone_else", flow.secret).status_code == 401
    assert AuthorizationCode.objects.get().used_at is None
    assert not AuditEvent.objects.filter(action="oauth.code_replayed").exists()
    assert exchange(Client(), code, flow.client_id, flow.secret).status_code == 200


def test_unknown_client_is_401(flow: Flow) -> None:
    response = exchange(Client(), flow.code(), "aptr_ci_nope", flow.secret)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_code_replay_fails_and_revokes_what_the_first_use_issued(flow: Flow) -> None:
    code = flow.code()
    first = exchange(Client(), code, flow.client_id, flow.secret).json()
    assert api_get("/api/v1/plan", first["access_token"]).status_code == 200
    replay = exchange(Client(), code, flow.client_id, flow.secret)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert api_get("/api/v1/plan", first["access_token"]).status_code == 401
    refresh = Client().post(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": flow.client_id,
            "client_secret": flow.secret,
        },
    )
    assert refresh.json()["error"] == "invalid_grant"
    assert AuditEvent.objects.filter(action="oauth.code_replayed").count() == 1


def test_replay_also_revokes_rotated_descendants(flow: Flow) -> None:
    code = flow.code()
    first = exchange(Client(), code, flow.client_id, flow.secret).json()
    rotated = (
        Client()
        .post(
            "/oauth/token",
            {
                "grant_type": "refresh_token",
                "refresh_token": first["refresh_token"],
                "client_id": flow.client_id,
                "client_secret": flow.secret,
            },
        )
        .json()
    )
    exchange(Client(), code, flow.client_id, flow.secret)
    assert api_get("/api/v1/plan", rotated["access_token"]).status_code == 401


def test_code_of_another_client_is_invalid_grant_and_not_burnt(flow: Flow) -> None:
    other = make_app(flow.created.app.partner, name="Other app")
    code = flow.code()
    response = exchange(Client(), code, other.app.client_id, other.client_secret)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert exchange(Client(), code, flow.client_id, flow.secret).status_code == 200


def test_expired_code(flow: Flow) -> None:
    code = flow.code()
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(minutes=10, seconds=1)):
        response = exchange(Client(), code, flow.client_id, flow.secret)
    assert response.json() == {"error": "invalid_grant", "error_description": "The authorization code has expired."}


def test_code_still_valid_just_before_ten_minutes(flow: Flow) -> None:
    code = flow.code()
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(minutes=9, seconds=50)):
        assert exchange(Client(), code, flow.client_id, flow.secret).status_code == 200


@pytest.mark.parametrize("redirect_uri", ["https://snapflow.example/other", "https://evil.example/callback", ""])
def test_redirect_uri_must_repeat_exactly(flow: Flow, redirect_uri: str) -> None:
    response = exchange(Client(), flow.code(), flow.client_id, flow.secret, redirect_uri=redirect_uri)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("redirect_uri", "status"), [("", 200), (REDIRECT_URI, 200), ("https://evil.example/callback", 400)]
)
def test_redirect_uri_left_out_of_authorization_must_be_the_one_redirected_to(
    flow: Flow, redirect_uri: str, status: int
) -> None:
    """RFC 6749 §4.1 (E) (erratum 4206) and §4.1.3: the redirect URI in the token request must match the one the
    code was sent to. An authorization request without one sent the code to the app's only registered URI; a
    token request naming another URI, unregistered, was accepted."""
    single = make_app(flow.created.app.partner, name="Single URI", redirect_uris=[REDIRECT_URI])
    code = get_code(flow.browser, single.app.client_id, project=flow.project.public_id, redirect_uri="")
    response = exchange(Client(), code, single.app.client_id, single.client_secret, redirect_uri=redirect_uri)
    assert response.status_code == status, response.content
    if status == 400:
        assert response.json()["error"] == "invalid_grant"
        assert Token.objects.count() == 0


def test_pkce_verifier_checked(flow: Flow) -> None:
    verifier, challenge = pkce_pair()
    params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    missing = exchange(Client(), flow.code(**params), flow.client_id, flow.secret)
    assert missing.json()["error"] == "invalid_request"
    wrong = exchange(Client(), flow.code(**params), flow.client_id, flow.secret, code_verifier=pkce_pair()[0])
    assert wrong.json()["error"] == "invalid_grant"
    right = exchange(Client(), flow.code(**params), flow.client_id, flow.secret, code_verifier=verifier)
    assert right.status_code == 200


def test_pkce_downgrade_verifier_without_challenge_refused(flow: Flow) -> None:
    response = exchange(Client(), flow.code(), flow.client_id, flow.secret, code_verifier=pkce_pair()[0])
    assert response.json()["error"] == "invalid_request"
    assert Token.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        ("{not json", "application/json", "invalid_request"),
        ("[1, 2]", "application/json", "invalid_request"),
        ('{"grant_type": "password", "username": "a", "password": "b"}', "application/json", "unsupported_grant_type"),
        ('{"grant_type": "client_credentials"}', "application/json", "unsupported_grant_type"),
        # RFC 6749 §5.2: a missing required parameter is invalid_request, not unsupported_grant_type.
        ("{}", "application/json", "invalid_request"),
        ('{"grant_type": ""}', "application/json", "invalid_request"),
    ],
)
def test_malformed_requests(flow: Flow, body: str, content_type: str, error: str) -> None:
    response = Client().post("/oauth/token", body, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            "grant_type=authorization_code&code=x".encode("latin-1"),
            "application/x-www-form-urlencoded; charset=iso-8859-1",
        ),
        (b"&".join(b"f%d=1" % i for i in range(1200)), "application/x-www-form-urlencoded"),
        # Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (lowered below), and multipart Django cannot parse, were answered
        # with Django's HTML 400 page, not an RFC 6749 §5.2 error.
        (b"grant_type=authorization_code&code=" + b"x" * 20_000, "application/x-www-form-urlencoded"),
        (b'{"grant_type": "authorization_code", "code": "' + b"x" * 20_000 + b'"}', "application/json"),
        (b"grant_type=authorization_code", "multipart/form-data"),  # no boundary
    ],
    ids=["not-utf-8", "too-many-fields", "too-big-form", "too-big-json", "multipart-without-boundary"],
)
def test_bodies_django_refuses_are_oauth_errors(flow: Flow, body: bytes, content_type: str, settings: Any) -> None:
    settings.DEBUG = True  # Django's own 400 page would read the body again and answer 500
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = Client().generic("POST", "/oauth/token", body, content_type=content_type)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_missing_code(flow: Flow) -> None:
    response = Client().post(
        "/oauth/token", {"grant_type": "authorization_code", "client_id": flow.client_id, "client_secret": flow.secret}
    )
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("grant_type", "parameter"), [("authorization_code", "code"), ("refresh_token", "refresh_token")]
)
def test_an_empty_code_or_refresh_token_is_a_missing_one(flow: Flow, grant_type: str, parameter: str) -> None:
    """RFC 6749 §3.2: a parameter sent without a value is treated as omitted, so an empty ``code`` or
    ``refresh_token`` is a missing required parameter (``invalid_request``, §5.2), as when it is left out; it was
    looked up and answered ``invalid_grant``, which says the grant itself is bad."""
    body = {"grant_type": grant_type, "client_id": flow.client_id, "client_secret": flow.secret}
    for value in (None, ""):
        sent = body if value is None else {**body, parameter: value}
        response = Client().post("/oauth/token", sent)
        assert response.status_code == 400, value
        assert response.json()["error"] == "invalid_request", (value, response.json())
        assert parameter in response.json()["error_description"]


@pytest.mark.parametrize("path", ["/oauth/token", "/api/v1/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_only_post_is_allowed_and_the_answer_is_an_oauth_error(path: str, method: str) -> None:
    response = Client().generic(method, path)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"error": "invalid_request", "error_description": "Use POST to call this endpoint."}


def test_deactivated_app_and_suspended_partner_codes_stop_working(flow: Flow) -> None:
    code = flow.code()
    services.deactivate_app(app=flow.created.app)
    assert exchange(Client(), code, flow.client_id, flow.secret).json()["error"] == "invalid_client"
    services.reactivate_app(app=flow.created.app)
    partner_services.suspend(partner=flow.created.app.partner, reviewer=None, reason="Abuse")
    assert exchange(Client(), code, flow.client_id, flow.secret).json()["error"] == "invalid_client"


def test_rotated_secret_stops_working_for_exchange(flow: Flow) -> None:
    code = flow.code()
    services.rotate_secret(app=flow.created.app)
    assert exchange(Client(), code, flow.client_id, flow.secret).status_code == 401


def test_disconnected_before_exchange(flow: Flow) -> None:
    from apertur.oauth.models import Connection
    from apertur.oauth.tokens import disconnect

    code = flow.code()
    disconnect(connection=Connection.objects.get(), actor=flow.customer)
    assert exchange(Client(), code, flow.client_id, flow.secret).json()["error"] == "invalid_grant"


def test_token_endpoint_rate_limited_per_client(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.core.ratelimit import Limit
    from apertur.oauth import limits

    monkeypatch.setattr(limits, "TOKEN_PER_CLIENT", Limit("t-token-client", 2, 60 * 60))
    for _ in range(2):
        exchange(Client(), "oac_bogus", flow.client_id, flow.secret)
    response = exchange(Client(), flow.code(), flow.client_id, flow.secret)
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited"
    assert int(response["Retry-After"]) > 0
    assert (response["Cache-Control"], response["Pragma"]) == ("no-store", "no-cache")  # as every token answer
    assert Token.objects.count() == 0


def test_token_exchange_query_count(flow: Flow) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    code = flow.code()
    with CaptureQueriesContext(connection) as ctx:
        assert exchange(Client(), code, flow.client_id, flow.secret).status_code == 200
    # code (locked) with its app's credentials and its connection, project and plan; token insert, audit insert,
    # code marked used
    queries = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(queries) == 4, queries


def test_strangers_cannot_spend_a_clients_rate_limit(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.core.ratelimit import Limit
    from apertur.oauth import limits

    monkeypatch.setattr(limits, "TOKEN_PER_CLIENT", Limit("t-token-client-ip", 2, 60 * 60))
    for _ in range(3):
        Client(REMOTE_ADDR="198.51.100.7").post(
            "/oauth/token", {"grant_type": "authorization_code", "client_id": flow.client_id, "code": "x"}
        )
    assert exchange(Client(REMOTE_ADDR="192.0.2.10"), flow.code(), flow.client_id, flow.secret).status_code == 200


def _refresh(refresh_token: str, client_id: str, secret: str) -> Any:
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return Client().post("/oauth/token", {**body, "client_secret": secret})


def _introspect(token: str, client_id: str, secret: str) -> Any:
    return Client().post("/oauth/introspect", {"token": token, "client_id": client_id, "client_secret": secret})


def test_a_rolled_secret_keeps_working_for_the_chosen_overlap_then_stops(flow: Flow) -> None:
    """Rotate secret with an overlap (as Stripe's "Roll key"): the replaced secret still authenticates the client at
    every token endpoint, both when the client comes with the presented code or token (one query) and when it is
    queried on its own (an unknown token at introspection), until the overlap ends; the new one works at once."""
    old = flow.secret
    started = dt.datetime.now(tz=dt.UTC)
    with time_machine.travel(started, tick=False):
        new = services.rotate_secret(app=flow.created.app, expire_previous_in=dt.timedelta(hours=1))
    with time_machine.travel(started + dt.timedelta(minutes=59), tick=False):
        first = exchange(Client(), flow.code(), flow.client_id, old)
        assert first.status_code == 200, first.content
        assert exchange(Client(), flow.code(), flow.client_id, new).status_code == 200
        refreshed = _refresh(first.json()["refresh_token"], flow.client_id, old)
        assert refreshed.status_code == 200, refreshed.content
        assert _introspect("oat_unknown", flow.client_id, old).json() == {"active": False}
        code = flow.code()
    with time_machine.travel(started + dt.timedelta(hours=1), tick=False):
        refused = exchange(Client(), code, flow.client_id, old)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        assert _introspect("oat_unknown", flow.client_id, old).status_code == 401
        assert _refresh(refreshed.json()["refresh_token"], flow.client_id, old).status_code == 401
        assert exchange(Client(), code, flow.client_id, new).status_code == 200  # the refused request burnt nothing


def test_rolling_again_during_an_overlap_ends_the_older_secret_at_once(flow: Flow) -> None:
    first = flow.secret
    second = services.rotate_secret(app=flow.created.app, expire_previous_in=dt.timedelta(days=7))
    third = services.rotate_secret(app=flow.created.app, expire_previous_in=dt.timedelta(hours=1))
    assert exchange(Client(), flow.code(), flow.client_id, first).status_code == 401
    assert exchange(Client(), flow.code(), flow.client_id, second).status_code == 200
    assert exchange(Client(), flow.code(), flow.client_id, third).status_code == 200
    services.rotate_secret(app=flow.created.app)  # no overlap: only the newest works
    for secret in (second, third):
        assert exchange(Client(), flow.code(), flow.client_id, secret).status_code == 401


def test_the_app_page_learns_of_previous_secret_use_and_failed_authentications(flow: Flow) -> None:
    """What tells a partner whether a server still holds the replaced secret, or a wrong one: the previous secret's
    last use, and the last failed authentication (when, from where; audited), each written at most once a minute.
    An unknown client id writes nothing (the answer is the same invalid_client either way, RFC 6749 §5.2)."""
    from apertur.oauth.models import OAuthApp

    app = flow.created.app
    old = flow.secret
    start = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        services.rotate_secret(app=app, expire_previous_in=dt.timedelta(hours=1))
        app.refresh_from_db()
        assert app.previous_client_secret_last_used_at is None
    with time_machine.travel(start + dt.timedelta(minutes=5), tick=False):
        assert exchange(Client(), flow.code(), flow.client_id, old).status_code == 200
    with time_machine.travel(start + dt.timedelta(minutes=5, seconds=30), tick=False):
        assert exchange(Client(), flow.code(), flow.client_id, old).status_code == 200
    app.refresh_from_db()
    assert app.previous_client_secret_last_used_at == start + dt.timedelta(minutes=5)  # the second: within a minute
    assert app.last_failed_auth_at is None

    for seconds in (0, 30, 61):  # the first and the one past the minute are written down
        with time_machine.travel(start + dt.timedelta(hours=2, seconds=seconds), tick=False):
            refused = Client().post(
                "/oauth/introspect",
                {"token": "oat_x", "client_id": flow.client_id, "client_secret": old},
                REMOTE_ADDR="203.0.113.7",
            )
            assert refused.status_code == 401
    app.refresh_from_db()
    assert app.last_failed_auth_at == start + dt.timedelta(hours=2, seconds=61)
    assert app.last_failed_auth_ip == "203.0.113.7"
    events = AuditEvent.objects.filter(action="oauth_app.client_auth_failed")
    assert [(e.ip, e.data) for e in events] == [("203.0.113.7", {"endpoint": "introspection"})] * 2
    assert all(old not in str(e.data) for e in events)

    unknown = exchange(Client(), flow.code(), "aptr_ci_nobody", old)
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    assert events.count() == 2
    assert OAuthApp.objects.filter(last_failed_auth_at__isnull=False).count() == 1

    page = flow.created.app.partner.user
    browser = Client()
    browser.force_login(page)
    html = browser.get(f"/partners/apps/{flow.client_id}/").content.decode()
    assert "Last failed authentication" in html and "<code>203.0.113.7</code>" in html


def test_an_ipv6_client_hopping_addresses_in_its_network_shares_one_token_budget(
    flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every IPv6 client has a /64 at least: keyed per address, each attempt from a new one had a fresh budget."""
    from apertur.core.ratelimit import Limit
    from apertur.oauth import limits

    monkeypatch.setattr(limits, "TOKEN_PER_IP", Limit("t-token-ip6", 2, 60 * 60))
    for n in (1, 2):
        exchange(Client(REMOTE_ADDR=f"2001:db8:1:2::{n}"), "oac_bogus", flow.client_id, flow.secret)
    hopped = exchange(Client(REMOTE_ADDR="2001:db8:1:2::3"), flow.code(), flow.client_id, flow.secret)
    assert hopped.status_code == 429 and Token.objects.count() == 0
    elsewhere = exchange(Client(REMOTE_ADDR="2001:db8:1:3::1"), flow.code(), flow.client_id, flow.secret)
    assert elsewhere.status_code == 200  # another network: its own budget
