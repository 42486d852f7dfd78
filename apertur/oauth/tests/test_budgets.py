"""Budgets on a partner's OAuth app writes that leave rows behind: apps created (the cap is freed by deleting one; the
audit trail of each creation and deletion stays) and credential changes (client secret rotations and public key
regenerations, each audited). One rule in the services, so the portal refuses with a message, and a refusal writes
nothing. ``apertur app create`` is the operators' and is not counted."""

from __future__ import annotations

import pytest
from django.test import Client
from typer.testing import CliRunner

from apertur.cli import app as cli
from apertur.oauth import services
from apertur.oauth.models import KeyMode, OAuthApp
from apertur.testing import lower_budget, make_app, make_partner, refused_by_budget

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
