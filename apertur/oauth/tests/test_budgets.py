"""Budgets on a partner's OAuth app writes that leave rows behind: apps created (the cap is freed by deleting one; the
audit trail of each creation and deletion stays), credential changes (client secret rotations and public key
regenerations, each audited) and app changes (settings edits and reactivations, each audited). One rule in the
services, so the portal refuses with a message, and a refusal writes nothing. ``apertur app create`` and staff in the
admin are the operators' and are not counted; deactivating an app is never refused."""

from __future__ import annotations

import pytest
from django.test import Client
from typer.testing import CliRunner

from apertur.cli import app as cli
from apertur.core.models import AuditEvent
from apertur.oauth import services
from apertur.oauth.models import KeyMode, OAuthApp
from apertur.testing import PASSWORD, lower_budget, make_app, make_partner, make_staff, refused_by_budget

pytestmark = pytest.mark.django_db


def test_apps_created_up_to_the_budget_then_refused_even_after_deleting(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "APPS_CREATED_PER_PARTNER", 2)
    partner = make_partner()
    for _ in range(2):  # created and deleted at once: the count cap never bites
        app = make_app(partner).app
        services.delete_app(app=app, confirm_name=app.name)
    refused_by_budget(lambda: make_app(partner), "new OAuth apps")
    assert OAuthApp.objects.filter(partner=partner).count() == 0
    make_app(make_partner())  # per partner


def test_the_operators_cli_is_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "APPS_CREATED_PER_PARTNER", 0)
    partner = make_partner()
    args = ["app", "create", "--partner-email", partner.user.email, "--name", "Snapflow"]
    result = CliRunner().invoke(cli, [*args, "--redirect-uri", "https://snapflow.example/callback"])
    assert result.exit_code == 0, result.output
    assert OAuthApp.objects.filter(partner=partner).count() == 1


def test_credential_changes_up_to_the_budget_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    lower_budget(monkeypatch, services, "CREDENTIAL_CHANGES_PER_APP", 2)
    app = make_app().app
    services.rotate_secret(app=app)
    services.regenerate_public_key(app=app, mode=KeyMode.TEST)
    hash_before = OAuthApp.objects.get(pk=app.pk).client_secret_hash
    refused_by_budget(lambda: services.rotate_secret(app=app), "credential changes")
    refused_by_budget(lambda: services.regenerate_public_key(app=app, mode=KeyMode.LIVE), "credential changes")
    assert OAuthApp.objects.get(pk=app.pk).client_secret_hash == hash_before
    services.rotate_secret(app=make_app(app.partner, name="Other").app)  # per app


def test_the_portal_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    created = make_app()
    lower_budget(monkeypatch, services, "APPS_CREATED_PER_PARTNER", 0)
    lower_budget(monkeypatch, services, "CREDENTIAL_CHANGES_PER_APP", 0)
    partner, app = created.app.partner, created.app
    browser = Client()
    browser.force_login(partner.user)
    form = {"name": "Snapflow 2", "redirect_uris": "https://snapflow.example/callback"}
    refused = browser.post("/partners/apps/new", form)
    assert refused.status_code == 400 and "Too many new OAuth apps" in refused.content.decode()
    assert OAuthApp.objects.filter(partner=partner).count() == 1
    rolled = browser.post(f"/partners/apps/{app.client_id}/rotate-secret", {"expire_previous_in": "0"}, follow=True)
    assert "Too many credential changes" in rolled.content.decode()
    regenerated = browser.post(f"/partners/apps/{app.client_id}/regenerate-test-key", follow=True)
    assert "Too many credential changes" in regenerated.content.decode()
    assert OAuthApp.objects.get(pk=app.pk).client_secret_hash == app.client_secret_hash


def test_the_real_budgets_leave_room_for_real_use() -> None:
    assert services.APPS_CREATED_PER_PARTNER.max_hits >= services.MAX_APPS_PER_PARTNER
    assert services.CREDENTIAL_CHANGES_PER_APP.max_hits >= 3
    assert services.APP_CHANGES_PER_APP.max_hits >= 50


def _edit(app: OAuthApp, name: str) -> OAuthApp:
    return services.update_app(
        app=app, name=name, redirect_uris=["https://snapflow.example/callback"], allowed_domains=["snapflow.example"]
    )


def test_app_changes_up_to_the_budget_then_refused_and_deactivating_still_goes_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every edit is audited, even one that changes nothing, and a deactivate-reactivate loop writes two events a turn:
    edits and reactivations share one budget per app. Deactivating stops the app's credentials: never refused."""
    lower_budget(monkeypatch, services, "APP_CHANGES_PER_APP", 3)
    app = make_app().app
    _edit(app, "Snapflow 2")
    services.deactivate_app(app=app)  # not counted
    services.reactivate_app(app=app)
    services.reactivate_app(app=app)  # already active: writes nothing, spends nothing
    _edit(app, "Snapflow 3")
    refused_by_budget(lambda: _edit(app, "Snapflow 4"), "changes to this app")
    assert OAuthApp.objects.get(pk=app.pk).name == "Snapflow 3"
    services.deactivate_app(app=app)  # past the budget, turning the app off still goes through
    assert OAuthApp.objects.get(pk=app.pk).is_active is False
    assert AuditEvent.objects.filter(action="oauth_app.deactivated").count() == 2
    refused_by_budget(lambda: services.reactivate_app(app=app), "changes to this app")
    assert OAuthApp.objects.get(pk=app.pk).is_active is False
    _edit(make_app(app.partner, name="Other").app, "Other 2")  # per app


def test_the_portal_says_so_and_deactivating_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app().app
    lower_budget(monkeypatch, services, "APP_CHANGES_PER_APP", 0)
    browser = Client()
    browser.force_login(app.partner.user)
    form = {"name": "Renamed", "redirect_uris": "https://snapflow.example/callback"}
    audits = AuditEvent.objects.count()
    refused = browser.post(f"/partners/apps/{app.client_id}/edit", form)
    assert refused.status_code == 400 and "Too many changes to this app. Try again in" in refused.content.decode()
    assert OAuthApp.objects.get(pk=app.pk).name == "Snapflow" and AuditEvent.objects.count() == audits
    deactivated = browser.post(f"/partners/apps/{app.client_id}/deactivate", follow=True)
    assert "App deactivated." in deactivated.content.decode()
    assert OAuthApp.objects.get(pk=app.pk).is_active is False
    audits = AuditEvent.objects.count()
    reactivated = browser.post(f"/partners/apps/{app.client_id}/reactivate")
    assert reactivated.status_code == 400
    assert "Too many changes to this app. Try again in" in reactivated.content.decode()
    assert OAuthApp.objects.get(pk=app.pk).is_active is False and AuditEvent.objects.count() == audits


def test_staff_editing_an_app_in_the_admin_answer_to_no_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.oauth.tests.test_admin import _change_form

    lower_budget(monkeypatch, services, "APP_CHANGES_PER_APP", 0)
    app = make_app().app
    browser = Client()
    assert browser.login(email=make_staff().email, password=PASSWORD)
    url = f"/admin/oauth/oauthapp/{app.pk}/change/"
    saved = browser.post(url, {**_change_form(browser, app), "name": "By staff"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert OAuthApp.objects.get(pk=app.pk).name == "By staff"


def test_the_demo_adding_its_sites_address_is_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.demo import ensure_demo

    lower_budget(monkeypatch, services, "APP_CHANGES_PER_APP", 0)
    ensure_demo()
    moved = ensure_demo(site_url="http://partner.localhost:8123")  # the partner site served on another port
    assert "http://partner.localhost:8123/callback" in moved["app"]["redirect_uris"]
