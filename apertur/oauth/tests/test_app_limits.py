"""How many OAuth apps a partner may register: one rule in ``create_app``, so the portal and ``apertur app create``
refuse alike (``limit_reached``), and a refusal creates nothing."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from typer.testing import CliRunner

from apertur.cli import app as cli
from apertur.core.errors import AperturError
from apertur.oauth import services
from apertur.oauth.models import OAuthApp
from apertur.testing import make_app, make_partner

pytestmark = pytest.mark.django_db


def test_apps_up_to_the_limit_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_APPS_PER_PARTNER", 2, raising=False)
    partner, other = make_partner(), make_partner()
    first = make_app(partner).app
    services.deactivate_app(app=make_app(partner).app)  # a deactivated app still counts
    with pytest.raises(AperturError) as refused:
        make_app(partner)
    assert (refused.value.code, refused.value.status) == ("limit_reached", 409)
    assert "at most 2 OAuth apps" in refused.value.message and "Delete one" in refused.value.message
    assert OAuthApp.objects.filter(partner=partner).count() == 2
    make_app(other)  # per partner
    services.delete_app(app=first, confirm_name=first.name)
    make_app(partner)  # deleting one frees its slot


def test_the_portal_shows_the_limit_above_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_APPS_PER_PARTNER", 1, raising=False)
    partner = make_partner()
    make_app(partner)
    browser = Client()
    browser.force_login(partner.user)
    refused = browser.post(
        "/partners/apps/new", {"name": "Snapflow", "redirect_uris": "https://snapflow.example/callback"}
    )
    assert refused.status_code == 400
    html = refused.content.decode()
    assert 'role="alert"' in html and "at most 1 OAuth apps" in html
    assert OAuthApp.objects.filter(partner=partner).count() == 1


def test_the_cli_exits_non_zero_with_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "MAX_APPS_PER_PARTNER", 1, raising=False)
    partner = make_partner()
    make_app(partner)
    args = ["app", "create", "--partner-email", partner.user.email, "--name", "Snapflow"]
    args += ["--redirect-uri", "https://snapflow.example/callback"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "at most 1 OAuth apps" in result.stderr
    as_json = CliRunner().invoke(cli, [*args, "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "limit_reached"
    assert OAuthApp.objects.filter(partner=partner).count() == 1
