"""An unconfirmed account claimed by a password reset ("pre-hijacked accounts", Sudhodanan & Paverd, USENIX
Security 2022): what whoever signed up with the address set up to send data or access out of it stops working
for them, through each app's own service; the owner is told. Any other reset changes none of it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client

from apertur.accounts import services
from apertur.accounts.models import User
from apertur.accounts.services import create_user
from apertur.core.models import AuditEvent
from apertur.oauth import tokens as oauth_tokens
from apertur.oauth.models import Connection, OAuthApp, Token
from apertur.partners import paypal
from apertur.partners.models import Partner
from apertur.payouts.services import Reason, payable_reason
from apertur.projects.models import ApiKey, Payment, Project
from apertur.projects.services import create_api_key, create_project
from apertur.testing import make_app, make_partner, make_user
from apertur.uploads import destinations
from apertur.uploads import services as uploads
from apertur.uploads.models import Destination, DestinationStatus, SessionStatus, UploadSession
from apertur.webhooks import services as webhooks
from apertur.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db
SQUATTER_PASSWORD = "the-squatters-secret"
OWNER_PASSWORD = "the-real-owners-secret"


@dataclass
class Setup:
    """What a squatter could set up in an account while its address was unproven."""

    user: User
    project: Project
    quiet: Project  # a project that delivers nowhere
    api_key: str
    access_token: str
    refresh_token: str
    connection: Connection
    endpoint: WebhookEndpoint
    destination: Destination
    link: UploadSession
    quiet_link: UploadSession
    partner: Partner
    app: OAuthApp
    paypal_link: str


def _set_up(capture: Any, email: str = "ada@example.com", *, confirmed: bool = False) -> Setup:
    user = create_user(email=email, password=SQUATTER_PASSWORD, email_confirmed=confirmed, send_confirmation=False)
    project = create_project(owner=user, name="Weddings")
    quiet = create_project(owner=user, name="Drafts")
    api_key = create_api_key(project=project, name="Server", actor=user).secret
    app = make_app().app  # a partner's app, connected to the project
    connection = oauth_tokens.connect(app=app, project=project, user=user, scopes=["plan:read", "project:read"])
    access, refresh = oauth_tokens.new_access_token(), oauth_tokens.new_refresh_token()
    oauth_tokens.issue(
        connection=connection,
        scopes=["plan:read", "project:read"],
        livemode=True,
        access_token=access,
        refresh_token=refresh,
    )
    endpoint = webhooks.create_endpoint(project=project, url="https://hooks.squatter.example/in", actor=user)
    destination = destinations.create_https_destination(
        project=project, name="My archive", url="https://archive.squatter.example/in", actor=user
    )
    link = uploads.create_session(project=project, title="Party", actor=user)
    quiet_link = uploads.create_session(project=quiet, title="Drafts", actor=user)
    # The account is an approved partner too, with its own app and a PayPal address (confirmed, and a change
    # waiting for its link).
    partner = make_partner(user=user)
    own_app = make_app(partner, name="Squatter app").app
    with capture(execute=True):
        paypal.request_change(partner=partner, email="squatter2@paypal.example", actor=user)
    pending = re.search(r"/partners/payouts/confirm/(\S+)", mail.outbox[-1].body)
    Partner.objects.filter(pk=partner.pk).update(
        paypal_email="squatter@paypal.example", paypal_verified_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    return Setup(
        user=user,
        project=project,
        quiet=quiet,
        api_key=api_key,
        access_token=access,
        refresh_token=refresh,
        connection=connection,
        endpoint=endpoint,
        destination=destination,
        link=link,
        quiet_link=quiet_link,
        partner=partner,
        app=own_app,
        paypal_link=pending.group(1) if pending else "",
    )


def _api(token: str) -> int:
    return Client().get("/api/v1/project", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


def _reset(user: User, capture: Any) -> services.PasswordReset:
    with capture(execute=True):
        return services.reset_password_reporting(
            user=user, token=default_token_generator.make_token(user), password=OWNER_PASSWORD
        )


@pytest.fixture
def setup(settings: Any, django_capture_on_commit_callbacks: Any) -> Setup:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    made = _set_up(django_capture_on_commit_callbacks)
    assert _api(made.api_key) == 200 and _api(made.access_token) == 200
    return made


def test_the_claim_revokes_the_api_keys_of_the_accounts_projects(
    setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    _reset(setup.user, django_capture_on_commit_callbacks)
    assert _api(setup.api_key) == 401
    key = ApiKey.objects.get(project=setup.project)  # kept, to look at
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key.revoked", object_id=str(key.pk), actor=setup.user).exists()


def test_the_claim_disconnects_the_apps_connected_to_its_projects(
    setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    _reset(setup.user, django_capture_on_commit_callbacks)
    assert _api(setup.access_token) == 401  # dead at once: the token cache was voided
    token = Token.objects.get(connection=setup.connection)
    assert token.access_revoked_at is not None and token.refresh_revoked_at is not None
    setup.connection.refresh_from_db()
    assert setup.connection.revoked_at is not None
    assert AuditEvent.objects.filter(action="oauth.connection_removed", object_id=str(setup.connection.pk)).exists()


def test_the_claim_deactivates_the_partner_accounts_own_apps(
    setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    other_partners_app = setup.connection.app
    _reset(setup.user, django_capture_on_commit_callbacks)
    setup.app.refresh_from_db()
    other_partners_app.refresh_from_db()
    assert not setup.app.is_active and other_partners_app.is_active
    assert AuditEvent.objects.filter(action="oauth_app.deactivated", object_id=str(setup.app.pk)).exists()


def test_the_claim_disables_webhook_endpoints_and_destinations_and_closes_the_links_that_deliver(
    setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    _reset(setup.user, django_capture_on_commit_callbacks)
    setup.endpoint.refresh_from_db()
    assert not setup.endpoint.enabled
    assert Destination.objects.get(pk=setup.destination.pk).status == DestinationStatus.DISABLED
    assert AuditEvent.objects.filter(action="destination.disabled", object_id=str(setup.destination.pk)).exists()
    assert UploadSession.objects.get(pk=setup.link.pk).status == SessionStatus.CLOSED
    # A link of a project that sends nowhere only fills the owner's own storage: it stays open.
    assert UploadSession.objects.get(pk=setup.quiet_link.pk).status == SessionStatus.OPEN


def test_the_claim_clears_the_paypal_address_and_its_pending_link(
    setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    assert setup.paypal_link
    assert Partner.objects.get(pk=setup.partner.pk).verified_paypal_email == "squatter@paypal.example"
    _reset(setup.user, django_capture_on_commit_callbacks)
    partner = Partner.objects.get(pk=setup.partner.pk)
    assert (partner.paypal_email, partner.paypal_pending_email, partner.paypal_token_hash) == ("", "", "")
    assert payable_reason(partner) == Reason.NO_VERIFIED_EMAIL
    with pytest.raises(paypal.InvalidPayPalLink):
        paypal.confirm(token=setup.paypal_link)
    assert AuditEvent.objects.filter(action="partner.paypal_cleared", object_id=str(partner.pk)).exists()


def test_one_audit_event_counts_what_the_claim_turned_off_and_holds_no_secret(
    setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    reset = _reset(setup.user, django_capture_on_commit_callbacks)
    event = AuditEvent.objects.get(action="user.account_claimed", object_id=str(setup.user.pk))
    assert event.data == {
        "via": "password_reset",
        "turned_off": {
            "api_keys_revoked": 1,
            "oauth_connections_revoked": 1,
            "oauth_apps_deactivated": 1,
            "destinations_disabled": 1,
            "webhook_endpoints_disabled": 1,
            "upload_links_closed": 1,
            "paypal_email_cleared": 1,
        },
    }
    assert {item.what: item.count for item in reset.turned_off} == event.data["turned_off"]
    text = str(event.data)
    for secret in (setup.api_key, setup.access_token, setup.refresh_token, setup.endpoint.secret):
        assert secret not in text


def test_the_owner_is_told_on_the_page_and_in_the_email(setup: Setup, django_capture_on_commit_callbacks: Any) -> None:
    owner = Client()
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post("/password-reset", {"email": "ada@example.com"}).status_code == 302
    link = re.search(r"http://localhost:8000(/password-reset/\S+)", mail.outbox[-1].body)
    assert link
    set_url = owner.get(link.group(1), follow=True).redirect_chain[-1][0]
    with django_capture_on_commit_callbacks(execute=True):
        done = owner.post(set_url, {"new_password1": OWNER_PASSWORD, "new_password2": OWNER_PASSWORD})
    assert done.status_code == 302
    page = owner.get(done["Location"])
    html = page.content.decode()
    assert "We turned off what was set up before you" in html
    for line in ("1 project API key revoked", "1 connected app disconnected", "1 webhook endpoint disabled"):
        assert line in html
    assert "set up again" in html and "no-cache" in page["Cache-Control"]
    assert "can be enabled again from its page" in html
    # Shown once: a reload (or the next visitor of a shared computer) sees the plain page.
    assert "We turned off" not in owner.get(done["Location"]).content.decode()
    changed = [m for m in mail.outbox if m.subject == "Your Apertur password was changed"][-1]
    assert "- 1 project API key revoked" in changed.body and "- 1 upload destination disabled" in changed.body
    assert "- 1 PayPal email for payouts removed" in changed.body and "set up again" in changed.body
    assert "can be enabled again from its page" in changed.body
    # What the page and email say can be done: the owner enables the endpoint again, from its page.
    owner.force_login(User.objects.get(email="ada@example.com"))  # with the new password's session hash
    endpoint_page = f"/projects/{setup.endpoint.project.public_id}/webhooks/{setup.endpoint.public_id}/"
    assert f'href="{endpoint_page}enable"' in owner.get(endpoint_page).content.decode()
    owner.post(f"{endpoint_page}enable")
    setup.endpoint.refresh_from_db()
    assert setup.endpoint.enabled


def test_a_reset_of_a_confirmed_account_turns_nothing_off(
    settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    made = _set_up(django_capture_on_commit_callbacks, "grace@example.com", confirmed=True)
    reset = _reset(made.user, django_capture_on_commit_callbacks)
    assert reset.turned_off == []
    assert _api(made.api_key) == 200 and _api(made.access_token) == 200
    made.endpoint.refresh_from_db()
    made.app.refresh_from_db()
    assert made.endpoint.enabled and made.app.is_active
    assert Destination.objects.get(pk=made.destination.pk).status == DestinationStatus.ACTIVE
    assert UploadSession.objects.get(pk=made.link.pk).status == SessionStatus.OPEN
    assert Partner.objects.get(pk=made.partner.pk).paypal_pending_email == "squatter2@paypal.example"
    assert not AuditEvent.objects.filter(action="user.account_claimed").exists()
    changed = [m for m in mail.outbox if m.subject == "Your Apertur password was changed"][-1]
    assert "turned them off" not in changed.body


def test_a_payment_does_not_spare_an_unconfirmed_account(setup: Setup, django_capture_on_commit_callbacks: Any) -> None:
    """Unlike the referral rule (which keeps a paying customer's attribution for the commissions it earned),
    paying proves nothing about the address: anyone can pay for the account they squat. The claim applies."""
    Payment.objects.create(
        project=setup.project,
        customer=setup.user,
        external_id="in_1",
        amount_cents=2_900,
        amount_cad_cents=2_900,
        paid_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )
    _reset(setup.user, django_capture_on_commit_callbacks)
    assert _api(setup.api_key) == 401 and _api(setup.access_token) == 401


def test_a_second_reset_after_the_claim_turns_nothing_off_again(
    setup: Setup, django_capture_on_commit_callbacks: Any
) -> None:
    _reset(setup.user, django_capture_on_commit_callbacks)
    user = User.objects.get(pk=setup.user.pk)
    again = create_api_key(project=setup.project, name="Owner's", actor=user).secret
    assert _reset(user, django_capture_on_commit_callbacks).turned_off == []
    assert _api(again) == 200
    assert AuditEvent.objects.filter(action="user.account_claimed").count() == 1


def test_a_claim_of_an_account_with_nothing_set_up_says_so_quietly(django_capture_on_commit_callbacks: Any) -> None:
    user = create_user(email="new@example.com", password=SQUATTER_PASSWORD, send_confirmation=False)
    make_user("bystander@example.com")
    reset = _reset(user, django_capture_on_commit_callbacks)
    assert reset.turned_off == []
    event = AuditEvent.objects.get(action="user.account_claimed")
    assert event.data == {"via": "password_reset", "turned_off": {}}
