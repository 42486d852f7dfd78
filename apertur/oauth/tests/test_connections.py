"""Connections: one per app x project, what customers see and revoke, and what partners count."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.oauth.models import Connection
from apertur.oauth.tests.conftest import Flow, api_get
from apertur.oauth.tokens import disconnect
from apertur.testing import exchange, make_user

pytestmark = pytest.mark.django_db


def test_reauthorizing_updates_the_one_connection(flow: Flow) -> None:
    flow.tokens(scope="project:read")
    flow.tokens(scope="upload:create")
    connection = Connection.objects.get()
    assert connection.scope_list == ["plan:read", "upload:create"]
    flow.tokens(project=flow.other_project.public_id)
    assert Connection.objects.count() == 2


def test_project_page_lists_connected_apps_and_disconnects(flow: Flow) -> None:
    tokens = flow.tokens(scope="project:read")
    second = flow.tokens(scope="project:read")
    page = flow.browser.get(f"/projects/{flow.project.public_id}/").content.decode()
    assert "Connected apps" in page and "Snapflow" in page and "Snapflow Inc." in page
    assert "<code>project:read</code>" in page
    connection = Connection.objects.get()
    url = f"/projects/{flow.project.public_id}/connections/{connection.pk}/disconnect"
    confirm = flow.browser.get(url)
    assert confirm.status_code == 200 and "every token it holds stops working" in confirm.content.decode()
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 200  # GET changes nothing
    response = flow.browser.post(url)
    assert response.status_code == 302
    for t in (tokens, second):
        assert api_get("/api/v1/plan", t["access_token"]).status_code == 401
    refresh = Client().post(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": flow.client_id,
            "client_secret": flow.secret,
        },
    )
    assert refresh.json()["error"] == "invalid_grant"
    page = flow.browser.get(f"/projects/{flow.project.public_id}/").content.decode()
    assert "No apps are connected" in page
    event = AuditEvent.objects.get(action="oauth.connection_removed")
    assert event.data["tokens_revoked"] == 2


def test_reconnecting_after_disconnect(flow: Flow) -> None:
    from apertur.oauth.tokens import disconnect

    flow.tokens()
    disconnect(connection=Connection.objects.get(), actor=flow.customer)
    tokens = flow.tokens()
    assert Connection.objects.get().revoked_at is None
    assert api_get("/api/v1/plan", tokens["access_token"]).status_code == 200


def test_only_the_owner_can_disconnect(flow: Flow) -> None:
    flow.tokens()
    connection = Connection.objects.get()
    stranger = Client()
    stranger.force_login(make_user())
    url = f"/projects/{flow.project.public_id}/connections/{connection.pk}/disconnect"
    assert stranger.post(url).status_code == 404
    assert Connection.objects.get().revoked_at is None


def test_disconnect_needs_csrf(flow: Flow) -> None:
    flow.tokens()
    connection = Connection.objects.get()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(flow.customer)
    assert browser.post(f"/projects/{flow.project.public_id}/connections/{connection.pk}/disconnect").status_code == 403
    assert Connection.objects.get().revoked_at is None


def test_partner_sees_connected_project_counts(flow: Flow) -> None:
    flow.tokens()
    flow.tokens(project=flow.other_project.public_id)
    partner_browser = Client()
    partner_browser.force_login(flow.created.app.partner.user)
    listing = partner_browser.get("/partners/apps/").content.decode()
    assert 'data-label="Connected projects">2</td>' in listing
    detail = partner_browser.get(f"/partners/apps/{flow.client_id}/").content.decode()
    assert 'data-testid="connected-projects">2<' in detail


# --- a code does not outlive the consent it came from (RFC 6749 §4.1.2, §10.5; RFC 9700 §2.2) -------------------

WITHDRAWN = {
    "error": "invalid_grant",
    "error_description": (
        "The authorization code was withdrawn: the user disconnected the app or narrowed their consent."
    ),
}


@pytest.mark.parametrize("reconnect_scope", ["project:read", "project:read upload:create"])
def test_a_code_from_before_a_disconnect_stays_dead_after_reconnecting(flow: Flow, reconnect_scope: str) -> None:
    """Reconnecting clears the connection's ``revoked_at``: the exchange's check of it no longer saw that the code
    came from the consent the user removed, and the code still gave ``upload:create``."""
    old_code = flow.code(scope="project:read upload:create")
    disconnect(connection=Connection.objects.get(), actor=flow.customer)
    assert AuditEvent.objects.get(action="oauth.connection_removed").data["codes_withdrawn"] == 1
    current = flow.tokens(scope=reconnect_scope)
    assert exchange(Client(), old_code, flow.client_id, flow.secret).json() == WITHDRAWN
    assert api_get("/api/v1/plan", current["access_token"]).status_code == 200


def test_consenting_to_fewer_scopes_withdraws_earlier_codes(flow: Flow) -> None:
    wide_code = flow.code(scope="project:read upload:create")
    narrow_code = flow.code(scope="project:read")
    assert exchange(Client(), wide_code, flow.client_id, flow.secret).json() == WITHDRAWN
    response = exchange(Client(), narrow_code, flow.client_id, flow.secret)
    assert response.status_code == 200, response.content
    assert response.json()["scopes"] == ["plan:read", "project:read"]


def test_consenting_again_to_the_same_or_more_scopes_keeps_earlier_codes(flow: Flow) -> None:
    """Nothing the user consented to was taken back (a second tab, an app asking again): every code's scopes are
    still consented to, so each can be exchanged."""
    codes = [
        flow.code(scope="project:read"),
        flow.code(scope="project:read"),
        flow.code(scope="project:read upload:read"),
    ]
    for code in codes:
        response = exchange(Client(), code, flow.client_id, flow.secret)
        assert response.status_code == 200, response.content


def test_disconnecting_twice_says_the_app_is_already_disconnected(flow: Flow) -> None:
    """A double click on Disconnect (or a second tab): the second request answered the 404 page, as if the
    disconnection had failed. It says the app is disconnected; one audit event."""
    flow.tokens(scope="project:read")
    connection = Connection.objects.get()
    url = f"/projects/{flow.project.public_id}/connections/{connection.pk}/disconnect"
    assert flow.browser.post(url).status_code == 302
    again = flow.browser.post(url, follow=True)
    assert again.status_code == 200 and again.redirect_chain[-1][0] == f"/projects/{flow.project.public_id}/"
    assert f"Snapflow is already disconnected from {flow.project.name}" in again.content.decode()
    assert AuditEvent.objects.filter(action="oauth.connection_removed").count() == 1
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.post(url).status_code == 404


def test_disconnecting_a_disconnected_app_writes_nothing(flow: Flow) -> None:
    """Why a disconnection needs no budget: past the first, the service itself (not only the page, which says so
    before calling it) writes no row, so repeating it cannot grow the audit trail; connecting again takes the
    customer's consent on the authorize page (its own rate limits)."""
    flow.tokens(scope="project:read")
    connection = Connection.objects.get()
    disconnect(connection=connection, actor=flow.customer)
    audits = AuditEvent.objects.count()
    revoked_at = Connection.objects.get().revoked_at
    disconnect(connection=connection, actor=flow.customer)
    assert AuditEvent.objects.count() == audits and Connection.objects.get().revoked_at == revoked_at
