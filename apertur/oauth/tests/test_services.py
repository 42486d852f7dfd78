from __future__ import annotations

import pytest

from apertur.core import tokens
from apertur.core.models import AuditEvent
from apertur.oauth import selectors, server, services
from apertur.oauth.domains import InvalidDomainPattern, InvalidRedirectURI
from apertur.oauth.errors import AppNotFound, ConfirmationRequired, InvalidAppInput
from apertur.oauth.models import KeyMode, OAuthApp, PublicKey, RedirectURI
from apertur.partners import services as partner_services
from apertur.partners.errors import PartnerNotApproved
from apertur.partners.models import Partner, PartnerStatus
from apertur.testing import make_app, make_partner

pytestmark = pytest.mark.django_db


def test_create_app_returns_secret_once_and_stores_only_its_hash() -> None:
    created = make_app(allowed_domains=["*.example.com"], website="https://snapflow.example")
    app = OAuthApp.objects.get(pk=created.app.pk)
    assert created.client_secret.startswith("aptr_cs_")
    assert created.client_secret not in app.client_secret_hash
    assert app.client_secret_hash == tokens.hash_secret(created.client_secret)
    assert app.client_secret_last4 == created.client_secret[-4:]
    assert app.client_id.startswith("aptr_ci_")
    assert created.public_key.startswith("aptr_live_pk_")
    assert created.test_public_key.startswith("aptr_test_pk_")
    assert list(app.redirect_uris.values_list("uri", flat=True)) == ["https://snapflow.example/callback"]
    assert list(app.allowed_domains.values_list("pattern", flat=True)) == ["*.example.com"]
    assert AuditEvent.objects.filter(action="oauth_app.created", object_id=str(app.pk)).exists()


def test_client_authentication() -> None:
    created = make_app()
    cid = created.app.client_id
    assert selectors.authenticate_client(client_id=cid, client_secret=created.client_secret) == created.app
    assert selectors.authenticate_client(client_id=cid, client_secret=created.client_secret + "x") is None
    assert selectors.authenticate_client(client_id="aptr_ci_unknown", client_secret=created.client_secret) is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"redirect_uris": ["http://snapflow.example/cb"]}, InvalidRedirectURI, "must use https"),
        ({"redirect_uris": []}, InvalidRedirectURI, "at least one"),
        ({"redirect_uris": ["https://snapflow.example/cb#x"]}, InvalidRedirectURI, "fragment"),
        ({"allowed_domains": ["https://example.com"]}, InvalidDomainPattern, "without a scheme"),
        ({"allowed_domains": ["*"]}, InvalidDomainPattern, "bare *"),
        ({"name": " "}, InvalidAppInput, "name"),
        ({"website": "not a url"}, InvalidAppInput, "full address"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(kwargs: dict, error: type, message: str) -> None:
    partner = make_partner()
    with pytest.raises(error) as info:
        make_app(partner, **kwargs)
    assert message in info.value.message
    assert OAuthApp.objects.count() == 0
    assert RedirectURI.objects.count() == 0
    assert PublicKey.objects.count() == 0
    assert not AuditEvent.objects.filter(action="oauth_app.created").exists()


def test_only_approved_partners_create_apps() -> None:
    partner = make_partner(approved=False)
    with pytest.raises(PartnerNotApproved):
        make_app(partner)
    assert OAuthApp.objects.count() == 0


def test_rotate_secret_kills_the_old_one() -> None:
    created = make_app()
    new = services.rotate_secret(app=created.app)
    cid = created.app.client_id
    assert new != created.client_secret
    assert selectors.authenticate_client(client_id=cid, client_secret=created.client_secret) is None
    assert selectors.authenticate_client(client_id=cid, client_secret=new) is not None
    assert AuditEvent.objects.filter(action="oauth_app.secret_rotated").count() == 1


def test_a_roll_keeps_the_replaced_secret_for_the_overlap_and_audits_no_secret() -> None:
    import datetime as dt

    import time_machine

    from apertur.core import housekeeping

    created = make_app()
    app, cid = created.app, created.app.client_id
    start = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        new = services.rotate_secret(app=app, expire_previous_in=dt.timedelta(hours=24))
        app.refresh_from_db()
        assert app.previous_client_secret_hash == tokens.hash_secret(created.client_secret)
        assert app.previous_client_secret_last4 == created.client_secret[-4:]
        assert app.previous_secret_valid_until(start) == start + dt.timedelta(hours=24)
        for secret in (created.client_secret, new):
            assert selectors.authenticate_client(client_id=cid, client_secret=secret) == app
    event = AuditEvent.objects.get(action="oauth_app.secret_rotated")
    assert event.data == {
        "last4": new[-4:],
        "previous_last4": created.client_secret[-4:],
        "previous_secret_expires_at": "2026-12-07T12:00:00+00:00",
        "dropped_older_previous_secret": False,
    }
    assert created.client_secret not in str(event.data) and new not in str(event.data)
    later = start + dt.timedelta(hours=24)
    with time_machine.travel(later, tick=False):
        assert selectors.authenticate_client(client_id=cid, client_secret=created.client_secret) is None
        assert housekeeping.prune(now=later)["previous_client_secrets"] == 1  # the hash is forgotten once past
    app.refresh_from_db()
    assert (app.previous_client_secret_hash, app.previous_client_secret_last4) == ("", "")
    assert app.previous_client_secret_expires_at is None
    assert selectors.authenticate_client(client_id=cid, client_secret=new) == app


@pytest.mark.parametrize("overlap", [-1, 7 * 24 * 3600 + 1])
def test_a_roll_overlap_outside_zero_to_seven_days_is_refused_and_changes_nothing(overlap: int) -> None:
    import datetime as dt

    created = make_app()
    with pytest.raises(InvalidAppInput) as refused:
        services.rotate_secret(app=created.app, expire_previous_in=dt.timedelta(seconds=overlap))
    assert refused.value.field == "expire_previous_in" and "up to 7 days" in refused.value.message
    created.app.refresh_from_db()
    assert created.app.client_secret_hash == tokens.hash_secret(created.client_secret)
    assert not AuditEvent.objects.filter(action="oauth_app.secret_rotated").exists()


@pytest.mark.parametrize("mode", [KeyMode.LIVE, KeyMode.TEST])
def test_regenerate_public_key(mode: KeyMode) -> None:
    created = make_app()
    old = created.public_key if mode == KeyMode.LIVE else created.test_public_key
    other = created.test_public_key if mode == KeyMode.LIVE else created.public_key
    new = services.regenerate_public_key(app=created.app, mode=mode)
    assert new.key.startswith(f"aptr_{mode}_pk_")
    assert selectors.app_for_public_key(old) is None
    match = selectors.app_for_public_key(new.key)
    assert match is not None and match.mode == mode and match.livemode is (mode == KeyMode.LIVE)
    assert selectors.app_for_public_key(other) is not None  # the other mode's key is untouched


def test_deactivate_and_reactivate() -> None:
    created = make_app()
    services.deactivate_app(app=created.app)
    assert selectors.app_for_public_key(created.public_key) is None
    assert selectors.authenticate_client(client_id=created.app.client_id, client_secret=created.client_secret) is None
    services.reactivate_app(app=created.app)
    assert selectors.app_for_public_key(created.public_key) is not None
    actions = list(AuditEvent.objects.filter(object_id=str(created.app.pk)).values_list("action", flat=True))
    assert "oauth_app.deactivated" in actions and "oauth_app.reactivated" in actions


def test_suspended_partner_apps_stop_at_once_and_restore() -> None:
    created = make_app()
    partner = created.app.partner
    partner_services.suspend(partner=partner, reviewer=None, reason="Chargeback fraud investigation")
    assert selectors.app_for_public_key(created.public_key) is None
    assert selectors.app_for_public_key(created.test_public_key) is None
    assert selectors.authenticate_client(client_id=created.app.client_id, client_secret=created.client_secret) is None
    partner_services.restore(partner=partner, reviewer=None)
    assert selectors.app_for_public_key(created.public_key) is not None
    assert (
        selectors.authenticate_client(client_id=created.app.client_id, client_secret=created.client_secret) is not None
    )


def test_delete_requires_typing_the_name() -> None:
    created = make_app()
    with pytest.raises(ConfirmationRequired):
        services.delete_app(app=created.app, confirm_name="snapflow")
    assert OAuthApp.objects.filter(pk=created.app.pk).exists()
    services.delete_app(app=created.app, confirm_name="Snapflow")
    assert not OAuthApp.objects.filter(pk=created.app.pk).exists()
    assert PublicKey.objects.count() == 0
    event = AuditEvent.objects.get(action="oauth_app.deleted")
    assert event.data["client_id"] == created.app.client_id


def test_an_app_deleted_twice_at_once_is_deleted_and_recorded_once() -> None:
    """Two tabs (or two staff) delete the same app: the second, holding the app as it read it before the first
    committed, is told the app is gone (AppNotFound) instead of recording a second deletion of nothing."""
    created = make_app()
    stale = OAuthApp.objects.get(pk=created.app.pk)
    services.delete_app(app=created.app, confirm_name="Snapflow")
    with pytest.raises(AppNotFound):
        services.delete_app(app=stale, confirm_name="Snapflow")
    assert AuditEvent.objects.filter(action="oauth_app.deleted").count() == 1


def test_update_app_replaces_lists_and_rejects_bad_input_atomically() -> None:
    created = make_app(allowed_domains=["example.com"])
    services.update_app(
        app=created.app,
        name="Snapflow 2",
        redirect_uris=["https://snapflow.example/callback", "http://localhost:3000/cb"],
        allowed_domains=["*.example.com"],
    )
    app = OAuthApp.objects.get(pk=created.app.pk)
    assert app.name == "Snapflow 2"
    assert sorted(app.redirect_uris.values_list("uri", flat=True)) == [
        "http://localhost:3000/cb",
        "https://snapflow.example/callback",
    ]
    assert list(app.allowed_domains.values_list("pattern", flat=True)) == ["*.example.com"]
    with pytest.raises(InvalidDomainPattern):
        services.update_app(
            app=app, name="Renamed", redirect_uris=["https://x.example/cb"], allowed_domains=["a.*.com"]
        )
    app.refresh_from_db()
    assert app.name == "Snapflow 2"
    assert app.redirect_uris.count() == 2


@pytest.mark.parametrize("active", [True, False])
@pytest.mark.parametrize("status", [s.value for s in PartnerStatus])
def test_app_usable_is_the_usable_queryset(active: bool, status: str) -> None:
    """``server.app_usable`` (client authentication from a code's or token's row, the grant checks) and
    ``OAuthApp.objects.usable()`` (client authentication by query) are one rule."""
    created = make_app()
    OAuthApp.objects.filter(pk=created.app.pk).update(is_active=active)
    Partner.objects.filter(pk=created.app.partner_id).update(status=status)
    in_queryset = OAuthApp.objects.usable().filter(pk=created.app.pk).exists()
    assert server.app_usable(app_active=active, partner_status=status) is in_queryset


def test_app_details_report_every_problem_the_first_as_before() -> None:
    """The first problem is raised as it was alone (its class, code, field); the others ride along in order."""
    from apertur.oauth.domains import InvalidRedirectURI

    with pytest.raises(InvalidAppInput) as raised:
        services.clean_app_details(
            name=" ",
            description="",
            website="not a url",
            redirect_uris=["http://a.example/cb", "https://ok.example/cb", "ftp://b.example/cb"],
            allowed_domains=["*", "example.com", "https://c.example"],
        )
    problems = raised.value.problems
    assert [(p.code, p.field) for p in problems] == [
        ("invalid_app", "name"),
        ("invalid_app", "website"),
        ("invalid_redirect_uri", "redirect_uris"),
        ("invalid_redirect_uri", "redirect_uris"),
        ("invalid_allowed_domain", "allowed_domains"),
        ("invalid_allowed_domain", "allowed_domains"),
    ]
    assert "ftp://b.example/cb" in problems[3].message and "https://c.example" in problems[5].message
    # One problem: the same error as before, nothing riding along.
    with pytest.raises(InvalidRedirectURI) as alone:
        services.create_app(partner=make_partner(), name="Snapflow", redirect_uris=["http://a.example/cb"])
    assert alone.value.problems == [alone.value]
    assert OAuthApp.objects.count() == 0


def test_a_use_of_an_older_secret_is_not_credited_to_the_secret_a_later_roll_replaced() -> None:
    """A token request reads the app's credentials, authenticates with the previous secret, and writes its use
    after another roll committed meanwhile (another worker, or the process's cached copy): the use was of the
    secret that roll dropped, not of the one it now keeps working. The page must not say "last used" of a secret
    no server presented."""
    import datetime as dt

    import time_machine

    from apertur.oauth.models import SecretMatch

    created = make_app()
    start = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        services.rotate_secret(app=created.app, expire_previous_in=dt.timedelta(days=1))
        read = OAuthApp.objects.get(pk=created.app.pk)  # what the token request authenticated against
        assert read.matching_client_secret(created.client_secret) is SecretMatch.PREVIOUS
        services.rotate_secret(app=created.app, expire_previous_in=dt.timedelta(days=1))  # drops the first secret
        services.record_previous_secret_use(app=read)
    app = OAuthApp.objects.get(pk=created.app.pk)
    assert app.previous_client_secret_last4 != created.client_secret[-4:]
    assert app.previous_client_secret_last_used_at is None


def test_a_failed_authentication_is_kept_only_with_its_audit_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's "Last failed authentication" and its ``oauth_app.client_auth_failed`` audit event are one change:
    introspection runs in autocommit, where the row's UPDATE committed on its own before the audit INSERT, and a
    failing INSERT left a failure on the page that the audit log never recorded (and the once-a-minute claim
    spent, so the next failures were not audited either)."""
    from apertur.core import audit

    created = make_app()

    def broken(**kwargs: object) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        services.record_failed_authentication(app=created.app, ip="203.0.113.7", endpoint="introspection")
    app = OAuthApp.objects.get(pk=created.app.pk)
    assert (app.last_failed_auth_at, app.last_failed_auth_ip) == (None, None)
