"""The OAuth app admin: deleting an app there is a deletion like the partner's own (``services.delete_app``), so it
is in the audit log with the staff member who did it."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.oauth.models import OAuthApp
from apertur.testing import PASSWORD, make_app, make_staff

pytestmark = pytest.mark.django_db


def _staff_browser() -> tuple[Client, object]:
    staff = make_staff()
    browser = Client()
    assert browser.login(email=staff.email, password=PASSWORD)
    return browser, staff


def test_deleting_an_app_in_the_admin_is_audited_with_the_staff_member() -> None:
    app = make_app().app
    browser, staff = _staff_browser()
    response = browser.post(f"/admin/oauth/oauthapp/{app.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not OAuthApp.objects.filter(pk=app.pk).exists()
    event = AuditEvent.objects.get(action="oauth_app.deleted")
    assert event.actor == staff and event.object_id == str(app.pk)
    assert event.data == {"client_id": app.client_id, "name": app.name}


def test_deleting_apps_with_the_list_action_audits_each_one() -> None:
    apps = [make_app().app, make_app(name="Other").app]
    browser, staff = _staff_browser()
    response = browser.post(
        "/admin/oauth/oauthapp/",
        {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(a.pk) for a in apps], "post": "yes"},
    )
    assert response.status_code == 302
    assert not OAuthApp.objects.exists()
    events = AuditEvent.objects.filter(action="oauth_app.deleted").order_by("object_id")
    assert [(e.object_id, e.actor) for e in events] == [(str(a.pk), staff) for a in apps]
