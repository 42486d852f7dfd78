from __future__ import annotations

import pytest
from django.test import Client

from apertur.core import tokens
from apertur.core.models import AuditEvent
from apertur.oauth.models import OAuthApp
from apertur.oauth.tokens import connect
from apertur.projects.services import create_project
from apertur.testing import make_app, make_partner, make_user

pytestmark = pytest.mark.django_db

NEW_APP = {
    "name": "Snapflow",
    "description": "Guest photos for events",
    "website": "https://snapflow.example",
    "redirect_uris": "https://snapflow.example/callback\nhttp://localhost:3000/callback",
    "allowed_domains": "snapflow.example\n*.snapflow.example",
}


def _client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_create_app_shows_secret_once() -> None:
    partner = make_partner()
    client = _client_for(partner.user)
    response = client.post("/partners/apps/new", NEW_APP, follow=True)
    assert response.status_code == 200
    app = OAuthApp.objects.get()
    html = response.content.decode()
    assert "You will not be able to see it again" in html
    secret = response.context["secret"]
    assert secret.startswith("aptr_cs_") and secret in html
    assert app.client_id in html
    assert response["Cache-Control"].startswith("max-age=0")
    again = client.get(f"/partners/apps/{app.client_id}/").content.decode()
    assert secret not in again
    assert f"••••••••{app.client_secret_last4}" in again


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("redirect_uris", "http://snapflow.example/callback", "must use https"),
        ("redirect_uris", "/callback", "must be absolute"),
        ("allowed_domains", "app.*.example.com", "whole first label"),
        ("allowed_domains", "https://snapflow.example", "without a scheme"),
    ],
)
def test_bad_input_shows_why_and_stores_nothing(field: str, value: str, message: str) -> None:
    partner = make_partner()
    client = _client_for(partner.user)
    response = client.post("/partners/apps/new", {**NEW_APP, field: value})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert OAuthApp.objects.count() == 0


def test_pending_partner_cannot_reach_app_tools() -> None:
    partner = make_partner(approved=False)
    client = _client_for(partner.user)
    response = client.post("/partners/apps/new", NEW_APP)
    assert response.status_code == 403
    assert OAuthApp.objects.count() == 0


def test_other_partners_app_is_not_found() -> None:
    created = make_app()
    intruder = make_partner(user=make_user())
    client = _client_for(intruder.user)
    assert client.get(f"/partners/apps/{created.app.client_id}/").status_code == 404
    assert client.post(f"/partners/apps/{created.app.client_id}/deactivate").status_code == 404
    created.app.refresh_from_db()
    assert created.app.is_active


@pytest.mark.parametrize("path", ["aptr_ci_%00/", "aptr_ci_%00/edit", "aptr_ci_%00/deactivate"])
def test_a_client_id_with_a_nul_is_not_found(path: str) -> None:
    """PostgreSQL refuses a NUL in a query parameter: the app lookup failed with a 500."""
    partner = make_partner()
    make_app(partner)
    client = _client_for(partner.user)
    assert client.get(f"/partners/apps/{path}").status_code == 404


def test_destructive_actions_confirm_first_then_act() -> None:
    created = make_app()
    client = _client_for(created.app.partner.user)
    base = f"/partners/apps/{created.app.client_id}"
    page = client.get(f"{base}/rotate-secret")
    assert page.status_code == 200 and "Choose how long the current one keeps working" in page.content.decode()
    created.app.refresh_from_db()
    old_hash = created.app.client_secret_hash
    shown = client.post(f"{base}/rotate-secret", follow=True)  # no choice posted: at once, as before overlaps
    created.app.refresh_from_db()
    assert created.app.client_secret_hash != old_hash and created.app.previous_client_secret_hash == ""
    assert shown.context["secret"].startswith("aptr_cs_")
    assert "The old one no longer works." in shown.content.decode()

    client.post(f"{base}/deactivate")
    created.app.refresh_from_db()
    assert not created.app.is_active
    client.post(f"{base}/reactivate")
    created.app.refresh_from_db()
    assert created.app.is_active

    wrong = client.post(f"{base}/delete", {"confirm_name": "nope"})
    assert wrong.status_code == 400 and "Type Snapflow exactly" in wrong.content.decode()
    assert OAuthApp.objects.filter(pk=created.app.pk).exists()
    client.post(f"{base}/delete", {"confirm_name": "Snapflow"})
    assert not OAuthApp.objects.filter(pk=created.app.pk).exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "oauth_app.secret_rotated",
        "oauth_app.deactivated",
        "oauth_app.reactivated",
        "oauth_app.deleted",
    } <= actions


def test_actions_need_csrf_token() -> None:
    created = make_app()
    client = Client(enforce_csrf_checks=True)
    client.force_login(created.app.partner.user)
    response = client.post(f"/partners/apps/{created.app.client_id}/deactivate")
    assert response.status_code == 403
    created.app.refresh_from_db()
    assert created.app.is_active


def test_regenerate_key_from_portal() -> None:
    created = make_app()
    client = _client_for(created.app.partner.user)
    client.post(f"/partners/apps/{created.app.client_id}/regenerate-live-key")
    page = client.get(f"/partners/apps/{created.app.client_id}/").content.decode()
    assert created.public_key not in page
    assert created.test_public_key in page


def test_edit_app() -> None:
    created = make_app()
    client = _client_for(created.app.partner.user)
    response = client.post(f"/partners/apps/{created.app.client_id}/edit", {**NEW_APP, "name": "Snapflow Pro"})
    assert response.status_code == 302
    created.app.refresh_from_db()
    assert created.app.name == "Snapflow Pro"
    assert created.app.redirect_uris.count() == 2


def _queries(client: Client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_portal_pages_query_count_does_not_grow_with_apps() -> None:
    partner = make_partner()
    make_app(partner)
    client = _client_for(partner.user)
    one = {url: _queries(client, url) for url in ("/partners/", "/partners/apps/")}
    for i in range(4):
        make_app(partner, name=f"App {i}", allowed_domains=["example.com"])
    five = {url: _queries(client, url) for url in ("/partners/", "/partners/apps/")}
    assert one == five


def test_app_detail_query_count() -> None:
    created = make_app(allowed_domains=["example.com", "*.example.com"])
    client = _client_for(created.app.partner.user)
    url = f"/partners/apps/{created.app.client_id}/"
    # session, user, partner, app, live key, test key, redirect URIs, allowed domains
    assert _queries(client, url) == 8


def test_app_list_pages_by_25_and_each_public_key_link_has_its_own_name() -> None:
    partner = make_partner()
    apps = [make_app(partner, name=f"App {i:02d}").app for i in range(27)]
    client = _client_for(partner.user)
    first = client.get("/partners/apps/")
    assert [a.name for a in first.context["apps"]] == [f"App {i:02d}" for i in range(25)]
    html = first.content.decode()
    assert "Page 1 of 2 (27 apps)" in html and 'href="?page=2"' in html
    second = client.get("/partners/apps/?page=2")
    assert [a.name for a in second.context["apps"]] == ["App 25", "App 26"]
    assert client.get("/partners/apps/?page=99").context["apps"] == second.context["apps"]  # the nearest page
    detail = client.get(f"/partners/apps/{apps[0].client_id}/").content.decode()
    assert 'aria-label="Regenerate live key"' in detail and 'aria-label="Regenerate test key"' in detail


def test_two_redirect_uris_on_one_line_are_refused_not_joined() -> None:
    partner = make_partner()
    form = {**NEW_APP, "redirect_uris": "https://a.example/cb,https://b.example/cb"}
    response = _client_for(partner.user).post("/partners/apps/new", form)
    assert response.status_code == 400 or response.status_code == 200
    assert "Put each redirect URI on its own line" in response.content.decode()
    assert not OAuthApp.objects.exists()
    # A comma inside one URI is still a URI.
    ok = {**NEW_APP, "redirect_uris": "https://a.example/cb?tags=a,b"}
    assert _client_for(partner.user).post("/partners/apps/new", ok).status_code == 302
    assert list(OAuthApp.objects.get().redirect_uris.values_list("uri", flat=True)) == ["https://a.example/cb?tags=a,b"]


def test_deleting_or_deactivating_says_how_many_connected_projects_lose_access() -> None:
    """The partner is about to cut off customers: the confirmation page counts them."""
    partner = make_partner()
    app = make_app(partner).app
    owner = make_user()
    for name in ("Weddings", "Galas"):
        connect(app=app, project=create_project(owner=owner, name=name), user=owner, scopes=["plan:read"])
    client = _client_for(partner.user)
    delete = client.get(f"/partners/apps/{app.client_id}/delete").content.decode()
    assert "<strong>2 connected projects</strong> are disconnected" in delete
    deactivate = client.get(f"/partners/apps/{app.client_id}/deactivate").content.decode()
    assert "<strong>2 connected projects</strong> cannot be reached" in deactivate
    alone = make_app(partner, name="Alone").app
    assert "connected project" not in client.get(f"/partners/apps/{alone.client_id}/delete").content.decode()


def test_a_head_request_does_not_use_up_the_new_client_secret() -> None:
    partner = make_partner()
    client = _client_for(partner.user)
    created = client.post("/partners/apps/new", NEW_APP)
    assert client.head(created["Location"]).status_code == 200
    assert "You will not be able to see it again" in client.get(created["Location"]).content.decode()


def test_reactivating_an_active_app_or_deactivating_an_inactive_one_asks_nothing() -> None:
    """Nothing to confirm (an old tab, a bookmark): the app page says where it stands instead."""
    partner = make_partner()
    app = make_app(partner).app
    client = _client_for(partner.user)
    page = client.get(f"/partners/apps/{app.client_id}/reactivate", follow=True).content.decode()
    assert "is already active" in page and "Reactivate app</button>" not in page
    client.post(f"/partners/apps/{app.client_id}/deactivate")
    page = client.get(f"/partners/apps/{app.client_id}/deactivate", follow=True).content.decode()
    assert "is already deactivated" in page and "Deactivate app</button>" not in page


def test_rotate_secret_offers_an_overlap_and_the_app_page_says_until_when() -> None:
    created = make_app()
    client = _client_for(created.app.partner.user)
    base = f"/partners/apps/{created.app.client_id}"
    html = client.get(f"{base}/rotate-secret").content.decode()
    for value, label in (("0", "Now"), ("3600", "In 1 hour"), ("86400", "In 24 hours"), ("604800", "In 7 days")):
        assert f'value="{value}"' in html and label in html
    assert 'value="0" checked' in html and ">Rotate client secret</button>" in html  # the old one stops, unless…

    refused = client.post(f"{base}/rotate-secret", {"expire_previous_in": "31536000"})
    assert refused.status_code == 400 and "Choose when the current secret stops working." in refused.content.decode()
    created.app.refresh_from_db()
    assert created.app.client_secret_hash == tokens.hash_secret(created.client_secret)

    shown = client.post(f"{base}/rotate-secret", {"expire_previous_in": "3600"}, follow=True)
    page = shown.content.decode()
    assert shown.context["secret"].startswith("aptr_cs_") and "The old one keeps working until" in page
    assert f"The previous secret <code>••••••••{created.client_secret[-4:]}</code> also works until" in page
    assert "It has not been used since the rotation." in page
    from apertur.testing import exchange, get_code

    customer = make_user()
    create_project(owner=customer, name="P")
    browser = Client()
    browser.force_login(customer)
    code = get_code(browser, created.app.client_id)
    assert exchange(Client(), code, created.app.client_id, created.client_secret).status_code == 200
    assert "It was last used <time" in client.get(f"{base}/").content.decode()
    again = client.get(f"{base}/rotate-secret").content.decode()  # a second roll would end that overlap: said so
    assert "stops working now: only the current secret overlaps with the new one" in again


def test_staff_see_a_roll_in_admin_but_never_a_secret_hash() -> None:
    import datetime as dt

    from apertur.oauth import services
    from apertur.testing import make_staff

    created = make_app()
    services.rotate_secret(app=created.app, expire_previous_in=dt.timedelta(hours=1))
    created.app.refresh_from_db()
    staff = Client()
    staff.force_login(make_staff())
    page = staff.get(f"/admin/oauth/oauthapp/{created.app.pk}/change/").content.decode()
    assert created.client_secret[-4:] in page  # the previous secret's last four, read-only
    assert created.app.client_secret_hash not in page and created.app.previous_client_secret_hash not in page
    assert 'name="previous_client_secret_hash"' not in page and 'name="client_secret_hash"' not in page


def _field_errors(html: str) -> dict[str, list[str]]:
    """Each field's error messages, read from where the page shows them: inside that field's block."""
    import html as html_lib
    import re

    found: dict[str, list[str]] = {}
    for field, block in re.findall(r'<div class="field has-error">\s*<label for="id_(\w+)">(.*?)</div>', html, re.S):
        messages = re.findall(r'<p class="field-error" role="alert">(.*?)</p>', block, re.S)
        found[field] = [html_lib.unescape(m) for m in messages]
    return found


THREE_MISTAKES = {
    "name": "",
    "description": "Guest photos for events",
    "website": "snapflow",
    "redirect_uris": "http://snapflow.example/callback\nhttps://snapflow.example/ok\n/relative",
    "allowed_domains": "app.*.example.com\nsnapflow.example",
}


@pytest.mark.parametrize("editing", [False, True])
def test_every_mistake_shows_at_once_by_its_field_with_the_input_kept(editing: bool) -> None:
    """A missing name, a bad website, two bad redirect URIs and a bad domain: one answer says all of it."""
    partner = make_partner()
    client = _client_for(partner.user)
    url = "/partners/apps/new"
    if editing:
        created = make_app(partner)
        url = f"/partners/apps/{created.app.client_id}/edit"
    response = client.post(url, THREE_MISTAKES)
    assert response.status_code == 400
    html = response.content.decode()
    errors = _field_errors(html)
    assert set(errors) == {"name", "website", "redirect_uris", "allowed_domains"}
    assert errors["name"] == ["Enter the app's name (2 to 80 characters)."]
    assert "full address" in errors["website"][0]
    assert len(errors["redirect_uris"]) == 2
    assert "must use https" in errors["redirect_uris"][0] and "must be absolute" in errors["redirect_uris"][1]
    assert errors["allowed_domains"] == [
        "app.*.example.com: a wildcard is allowed only as the whole first label, like *.example.com."
    ]
    assert 'class="alert error"' not in html  # nothing left over above the form
    # What was typed is still there, to correct.
    assert 'value="snapflow"' in html and "/relative</textarea>" in html and "app.*.example.com\nsnapflow" in html
    if editing:
        created.app.refresh_from_db()
        assert created.app.name == "Snapflow" and created.app.redirect_uris.count() == 1
    else:
        assert OAuthApp.objects.count() == 0


def test_a_line_the_form_cannot_read_shows_with_the_other_mistakes() -> None:
    """Two URIs on one line is the form's own finding; the service's findings on the other fields still show."""
    partner = make_partner()
    client = _client_for(partner.user)
    joined = "https://a.example/cb,https://b.example/cb"
    response = client.post("/partners/apps/new", {**NEW_APP, "name": "x", "redirect_uris": joined})
    assert response.status_code == 400
    errors = _field_errors(response.content.decode())
    assert errors == {
        "name": ["Enter the app's name (2 to 80 characters)."],
        "redirect_uris": ["Put each redirect URI on its own line: this line holds two URIs."],
    }
    assert OAuthApp.objects.count() == 0


def test_deleting_without_typing_the_name_says_what_to_type_once() -> None:
    """An empty confirmation showed two messages by the field: Django's "This field is required." and ours."""
    created = make_app()
    client = _client_for(created.app.partner.user)
    response = client.post(f"/partners/apps/{created.app.client_id}/delete", {"confirm_name": ""})
    assert response.status_code == 400
    assert response.context["form"].errors == {"confirm_name": ["Type Snapflow exactly to confirm."]}
    assert OAuthApp.objects.filter(pk=created.app.pk).exists()


def test_a_long_non_ascii_redirect_uri_is_refused_by_its_field_not_a_500() -> None:
    """2,000 characters is the rule; 1,900 CJK characters in a path passed it but are 5,700 bytes, beyond what
    PostgreSQL's unique index on (app, uri) takes: the save failed with a 500. The length counts UTF-8 bytes."""
    path = "".join(chr(0x4E00 + (i * 7919) % 0x5000) for i in range(1900))  # varied: no index compression
    partner = make_partner()
    client = _client_for(partner.user)
    response = client.post("/partners/apps/new", {**NEW_APP, "redirect_uris": f"https://snapflow.example/{path}"})
    assert response.status_code == 400
    assert "at most 2000 characters" in str(response.context["form"].errors["redirect_uris"])
    assert OAuthApp.objects.count() == 0
    fits = "ä" * 900  # 1,800 bytes: still stored
    assert (
        client.post("/partners/apps/new", {**NEW_APP, "redirect_uris": f"https://snapflow.example/{fits}"}).status_code
        == 302
    )


@pytest.mark.parametrize(
    "name",
    [
        "Snapflow\u202e tneilc lanoitnetni",  # RIGHT-TO-LEFT OVERRIDE: reverses the consent sentence that follows
        "Snap\u2066flow",  # LEFT-TO-RIGHT ISOLATE
        "Snap\u200fflow",  # RIGHT-TO-LEFT MARK
        "Snap\x07flow",  # a C0 control
        "Snap\x9bflow",  # a C1 control (NEL, U+0085, is a space to str.split and folds into one)
    ],
)
def test_an_app_name_with_controls_or_text_direction_characters_is_refused(name: str) -> None:
    """The app's name is what users read on the consent page: a bidi override in it reorders the page's own words
    after it, and a control character shows as nothing. Refused with the field's message; nothing changes."""
    created = make_app()
    client = _client_for(created.app.partner.user)
    response = client.post(f"/partners/apps/{created.app.client_id}/edit", {**NEW_APP, "name": name})
    assert response.status_code == 400
    assert "control characters or text-direction marks" in response.content.decode()
    created.app.refresh_from_db()
    assert created.app.name == "Snapflow"
    new = client.post("/partners/apps/new", {**NEW_APP, "name": name})
    assert new.status_code == 400 and OAuthApp.objects.count() == 1


def test_an_app_description_keeps_its_line_breaks() -> None:
    created = make_app()
    client = _client_for(created.app.partner.user)
    response = client.post(
        f"/partners/apps/{created.app.client_id}/edit", {**NEW_APP, "description": "Line one.\r\nLine two.\tTab."}
    )
    assert response.status_code == 302
    created.app.refresh_from_db()
    assert "\n" in created.app.description and "Line two.\tTab." in created.app.description
