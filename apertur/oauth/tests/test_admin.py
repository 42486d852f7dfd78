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


def _change_form(browser: Client, app: OAuthApp) -> dict[str, object]:
    """What the app's admin page posts back unchanged: its editable fields and the inlines' management forms."""
    page = browser.get(f"/admin/oauth/oauthapp/{app.pk}/change/")
    assert page.status_code == 200
    data: dict[str, object] = {}
    for name, value in page.context["adminform"].form.initial.items():
        if name in page.context["adminform"].form.fields:
            data[name] = "" if value is None else value
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        for form in inline.formset.forms:
            data[form.add_prefix("id")] = form.instance.pk
            data[form.add_prefix("app")] = app.pk
    return data


def test_an_app_edited_in_the_admin_goes_through_the_apps_rules_and_the_audit_log() -> None:
    """Staff renaming an app (its name is on every consent page) is the partner's "edit app" done by staff:
    the same rules (services.clean_app_details) and an ``oauth_app.updated`` event naming who did it."""
    app = make_app().app
    browser, staff = _staff_browser()
    url = f"/admin/oauth/oauthapp/{app.pk}/change/"
    data = _change_form(browser, app)
    too_short = browser.post(url, {**data, "name": "x"})
    assert too_short.status_code == 200 and "Enter the app" in too_short.content.decode()
    app.refresh_from_db()
    assert app.name == "Snapflow"
    saved = browser.post(url, {**data, "name": "  Snapflow   Photos ", "website": "snapflow.example"})
    assert saved.status_code == 302
    app.refresh_from_db()
    assert (app.name, app.website) == ("Snapflow Photos", "https://snapflow.example")
    assert list(app.redirect_uris.values_list("uri", flat=True)) == ["https://snapflow.example/callback"]
    event = AuditEvent.objects.get(action="oauth_app.updated")
    assert event.actor == staff and event.object_id == str(app.pk)


def test_the_apps_records_of_what_happened_are_not_editable_in_the_admin() -> None:
    """When the previous secret was last used and the last failed authentication are evidence the partner reads
    before expiring a secret: staff see them, nobody types them."""
    app = make_app().app
    browser, _ = _staff_browser()
    form = browser.get(f"/admin/oauth/oauthapp/{app.pk}/change/").context["adminform"].form
    assert not {"previous_client_secret_last_used_at", "last_failed_auth_at", "last_failed_auth_ip"} & set(form.fields)


@pytest.mark.parametrize("page", ["partner", "account"])
def test_the_partner_of_an_app_cannot_be_deleted_in_the_admin(page: str) -> None:
    """What ``services.before_staff_delete`` relies on: deleting a partner (or its account) would delete its apps
    by cascade, without their deletion's waits, audit events or ``app_lost_project``. The partner's referral links
    (made at approval, which an app needs, and never deleted in the admin) hold it: the admin refuses."""
    app = make_app().app
    browser, _ = _staff_browser()
    partner = app.partner
    url = {
        "partner": f"/admin/partners/partner/{partner.pk}/delete/",
        "account": f"/admin/accounts/user/{partner.user_id}/delete/",
    }[page]
    response = browser.post(url, {"post": "yes"})
    assert response.status_code == 403, response.status_code  # PermissionDenied: referral link
    assert OAuthApp.objects.filter(pk=app.pk).exists()
