"""The project page (projects/views.py)."""

from __future__ import annotations

import datetime as dt
import re
from html import escape as html_escape
from html.parser import HTMLParser
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.oauth.tokens import connect
from apertur.projects.services import create_project
from apertur.testing import make_app, make_partner, make_user

pytestmark = pytest.mark.django_db


def test_the_page_that_shows_a_new_api_key_is_never_stored_by_the_browser() -> None:
    """The secret is shown once; a cached copy of the page would show it again on Back (or from history)."""
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    shown = browser.post(f"/projects/{project.public_id}/api-keys", {"name": "Server"}, follow=True)
    assert re.search(r'data-testid="api-key-secret">aptr_', shown.content.decode())
    assert "no-store" in shown["Cache-Control"]
    assert "no-store" in browser.get(f"/projects/{project.public_id}/")["Cache-Control"]


def test_connected_apps_say_what_each_app_can_do_in_the_consent_pages_words() -> None:
    """The owner allowed "See the project's name and details"; the list of connected apps says the same."""
    partner = make_partner()
    app = make_app(partner, name="Snapflow").app
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    connect(app=app, project=project, user=user, scopes=["plan:read", "project:read"])
    browser = Client()
    browser.force_login(user)
    html = browser.get(f"/projects/{project.public_id}/").content.decode()
    connected = html.split("<h2>Connected apps</h2>")[1]
    assert "See which Apertur plan the project is on and its limits" in connected
    assert "See the project&#x27;s name and details" in connected


def test_the_project_page_shows_times_in_toronto_naming_the_zone() -> None:
    """03:30 UTC on 2026-03-01 is the evening of 2026-02-28 in Toronto; a time shown says its zone."""
    partner = make_partner()
    app = make_app(partner, name="Snapflow").app
    user = make_user()
    with time_machine.travel(dt.datetime(2026, 3, 1, 3, 30, tzinfo=dt.UTC), tick=False):
        project = create_project(owner=user, name="Weddings")
        connect(app=app, project=project, user=user, scopes=["plan:read"])
    browser = Client()
    browser.force_login(user)
    html = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert "<dt>Created</dt><dd>2026-02-28 22:30 EST</dd>" in html
    assert '<td role="cell" data-label="Connected since">2026-02-28 22:30 EST</td>' in html


def test_a_new_api_key_waits_for_its_own_projects_page() -> None:
    """Another project's page (a second tab) must not use up the one showing of the secret."""
    user = make_user()
    weddings, galas = create_project(owner=user, name="Weddings"), create_project(owner=user, name="Galas")
    browser = Client()
    browser.force_login(user)
    browser.post(f"/projects/{weddings.public_id}/api-keys", {"name": "Server"})
    assert 'data-testid="api-key-secret"' not in browser.get(f"/projects/{galas.public_id}/").content.decode()
    assert 'data-testid="api-key-secret"' in browser.get(f"/projects/{weddings.public_id}/").content.decode()


def test_a_refused_key_name_comes_back_in_its_form_marked_with_the_reason() -> None:
    """The refusal was a flash message above the page: the form came back empty and its field unmarked."""
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    refused = browser.post(f"/projects/{project.public_id}/api-keys", {"name": "   ", "mode": "test"})
    assert refused.status_code == 302 and refused["Location"].endswith("#api-keys")
    html = browser.get(refused["Location"]).content.decode()
    assert '<div class="alert error" role="alert" id="key-form-error"><p>Name the key' in html
    assert (
        'name="name" value="   " maxlength="80" required placeholder="Production server" aria-invalid="true" '
        'aria-describedby="key-form-error"' in html
    )
    assert '<option value="test" selected>' in html
    assert 'id="key-form-error"' not in browser.get(f"/projects/{project.public_id}/").content.decode()  # once
    assert not project.api_keys.exists()


def test_a_project_without_api_keys_says_so() -> None:
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    html = browser.get(f"/projects/{project.public_id}/").content.decode()
    keys = html.split("<h2>API keys</h2>")[1].split("</section>")[0]
    assert '<p class="muted">No API keys yet.</p>' in keys


def test_a_head_request_does_not_use_up_the_new_api_key() -> None:
    """A HEAD (a link checker, a prefetch) gets no body: it must leave the one showing for the GET."""
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    browser.post(f"/projects/{project.public_id}/api-keys", {"name": "Server"})
    assert browser.head(f"/projects/{project.public_id}/").status_code == 200
    assert 'data-testid="api-key-secret"' in browser.get(f"/projects/{project.public_id}/").content.decode()


def test_the_projects_list_pages_by_25_oldest_first() -> None:
    import datetime as dt

    import time_machine

    user = make_user()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(27):
        with time_machine.travel(start + dt.timedelta(hours=n), tick=False):
            create_project(owner=user, name=f"Project {n:02d}")
    browser = Client()
    browser.force_login(user)
    first = browser.get("/projects/").content.decode()
    second = browser.get("/projects/?page=2").content.decode()
    assert "Project 00" in first and "Project 24" in first and "Project 25" not in first
    assert "Project 25" in second and "Project 26" in second and "Project 24" not in second
    assert "Page 1 of 2 (27 projects)" in first and 'rel="next"' in first
    assert "Create project" in second  # the form is on every page


# --- the project page's cards and their "View all" pages ------------------------------------------------


def _add_rows(project, *, start: int, count: int, only: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """``count`` more of each list the project page shows (or ``only`` the one under that heading), numbered from
    ``start`` (a higher number is newer)."""
    import datetime as dt

    import time_machine

    from apertur.projects.services import create_api_key
    from apertur.uploads.destinations import create_https_destination
    from apertur.webhooks.services import create_endpoint

    partner = make_partner()
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(start, start + count):
        with time_machine.travel(base + dt.timedelta(minutes=n), tick=False):
            if only in (None, "API keys"):
                create_api_key(project=project, name=f"Key {n:02d}")
            if only in (None, "Event webhooks"):
                create_endpoint(project=project, url=f"https://hooks.example.com/h{n:02d}")
            if only in (None, "Destinations"):
                create_https_destination(project=project, name=f"Dest {n:02d}", url=f"https://in.example.com/d{n:02d}")
            if only in (None, "Connected apps"):
                app = make_app(partner, name=f"App {n:02d}", website=f"https://app{n:02d}.example").app
                connect(app=app, project=project, user=project.owner, scopes=["plan:read", "project:read"])


def _queries(browser: Client, url: str) -> tuple[int, str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = browser.get(url)
    assert response.status_code == 200
    return len(captured), response.content.decode()


def _card(html: str, heading: str) -> str:
    return html.split(f"<h2>{heading}</h2>")[1].split("</section>")[0]


# What one row of each list looks like on the page, to count them.
_ROW = {
    "Destinations": r'href="/projects/\w+/destinations/\w+/delete"',
    "API keys": r"<td>Key \d\d</td>",
    "Event webhooks": r"<code>https://hooks\.example\.com/h\d\d</code>",
    "Connected apps": r">Disconnect</a>",
}


def test_the_project_page_shows_the_newest_rows_of_each_card_for_the_same_queries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 10 and the portal audit: constant queries whatever the number of rows, and no unbounded card."""
    from apertur.projects.views import CARD_SIZE
    from apertur.uploads import destinations

    # More rows than a card shows, whatever the limits (a project has at most 10 destinations).
    monkeypatch.setattr(destinations, "MAX_DESTINATIONS_PER_PROJECT", CARD_SIZE + 5)

    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    page = f"/projects/{project.public_id}/"
    _add_rows(project, start=0, count=1)
    one, html = _queries(browser, page)
    for heading, row in _ROW.items():
        assert len(re.findall(row, _card(html, heading))) == 1, heading
        assert "View all" not in _card(html, heading)  # everything is on the card already
    _add_rows(project, start=1, count=CARD_SIZE + 4)
    many, html = _queries(browser, page)
    assert many == one
    total = CARD_SIZE + 5
    for (heading, row), (path, noun) in zip(
        _ROW.items(),
        [
            ("destinations", "destinations"),
            ("api-keys", "API keys"),
            ("webhooks", "webhook endpoints"),
            ("connections", "connected apps"),
        ],
        strict=True,
    ):
        card = _card(html, heading)
        assert len(re.findall(row, card)) == CARD_SIZE, heading
        assert f"Showing {CARD_SIZE} of {total}." in card, heading
        assert f'<a href="/projects/{project.public_id}/{path}/">View all {total} {noun}</a>' in card, heading
    # Newest first: the last one made is on its card, the first is only on the View all page.
    keys = _card(html, "API keys")
    assert f"Key {total - 1:02d}" in keys and "Key 00" not in keys
    assert "App 14" in _card(html, "Connected apps") and "App 00" not in _card(html, "Connected apps")


@pytest.mark.parametrize(
    ("path", "heading"),
    [
        ("api-keys", "API keys"),
        ("destinations", "Destinations"),
        ("webhooks", "Event webhooks"),
        ("connections", "Connected apps"),
    ],
)
def test_each_view_all_page_pages_by_25_for_the_same_queries(
    path: str, heading: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apertur.core.pages import PAGE_SIZE
    from apertur.projects import services as project_services
    from apertur.uploads import destinations
    from apertur.webhooks import services as webhook_services

    # More rows than a page holds, whatever the limits (these are at most 10 to 20 a project).
    for module, limit in (
        (project_services, "MAX_API_KEYS_PER_PROJECT"),
        (destinations, "MAX_DESTINATIONS_PER_PROJECT"),
        (webhook_services, "MAX_ENDPOINTS_PER_PROJECT"),
    ):
        monkeypatch.setattr(module, limit, 1000)

    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    url = f"/projects/{project.public_id}/{path}/"
    _add_rows(project, start=0, count=1, only=heading)
    one, html = _queries(browser, url)
    assert f"<h1>{heading}</h1>" in html and len(re.findall(_ROW[heading], html)) == 1
    _add_rows(project, start=1, count=PAGE_SIZE + 2, only=heading)
    many, first = _queries(browser, url)
    assert many == one
    assert len(re.findall(_ROW[heading], first)) == PAGE_SIZE
    assert f"Page 1 of 2 ({PAGE_SIZE + 3} " in first and 'rel="next"' in first
    second = browser.get(f"{url}?page=2").content.decode()
    assert len(re.findall(_ROW[heading], second)) == 3
    # Newest first, each row once across the pages: the oldest three are on page 2.
    numbers = re.findall(r"(?:Key|Dest|App) (\d\d)|/h(\d\d)</code>", first + second)
    seen = [int(a or b) for a, b in numbers if (a or b)]
    if heading != "Connected apps":  # its website link repeats the number
        assert seen == sorted(seen, reverse=True) == list(range(PAGE_SIZE + 2, -1, -1))


def test_a_view_all_page_is_only_the_owners() -> None:
    owner, other = make_user(), make_user()
    project = create_project(owner=owner, name="Weddings")
    browser = Client()
    browser.force_login(other)
    for path in ("api-keys", "destinations", "webhooks", "connections"):
        assert browser.get(f"/projects/{project.public_id}/{path}/").status_code == 404
        assert Client().get(f"/projects/{project.public_id}/{path}/").status_code == 302  # to the login page


def test_the_plans_say_one_active_upload_session_in_the_singular() -> None:
    user = make_user()
    browser = Client()
    browser.force_login(user)
    html = browser.get("/projects/").content.decode()
    assert "<li>1 active upload session</li>" in html  # the Free plan
    assert "<li>20 active upload sessions</li>" in html  # Pro
    assert "1 active upload sessions" not in html


def _billing_world() -> tuple[Any, Any, Client]:
    import datetime as dt

    from apertur.projects.models import Payment, Plan, Refund, Subscription
    from apertur.testing import image_file
    from apertur.uploads import services as uploads

    user = make_user()
    project = create_project(owner=user, name="Weddings")
    pro = Plan.objects.get(name__iexact="pro")
    Subscription.objects.create(
        project=project,
        external_id="sub_1",
        plan=pro,
        started_at=dt.datetime(2026, 11, 3, 15, tzinfo=dt.UTC),
        current_period_end=dt.datetime(2026, 12, 3, 15, tzinfo=dt.UTC),
    )
    usd = Payment.objects.create(
        project=project,
        customer=user,
        external_id="in_usd",
        amount_cents=2_499,
        currency="USD",
        amount_cad_cents=3_400,
        description="Pro (monthly)",
        paid_at=dt.datetime(2026, 11, 3, 15, tzinfo=dt.UTC),
    )
    Refund.objects.create(payment=usd, external_id="re_1", amount_cents=500, created_at=usd.paid_at)
    Refund.objects.create(  # failed: returned nothing
        payment=usd, external_id="re_2", amount_cents=700, created_at=usd.paid_at, voided_at=usd.paid_at
    )
    session = uploads.create_session(project=project, title="Party")
    uploads.accept_upload(session=session, file=image_file())
    uploads.accept_upload(
        session=uploads.create_session(project=project, title="Test", livemode=False), file=image_file()
    )
    browser = Client()
    browser.force_login(user)
    return user, project, browser


def test_the_billing_page_shows_plan_subscription_live_usage_and_payments() -> None:
    from apertur.projects.models import Payment

    _, project, browser = _billing_world()
    detail = browser.get(f"/projects/{project.public_id}/").content.decode()
    url = f"/projects/{project.public_id}/billing"
    assert f'<a href="{url}">Billing and usage</a>' in detail
    html = browser.get(url).content.decode()
    assert "<h1>Billing and usage</h1>" in html
    assert '<span class="pill ok">Active</span> · Pro since' in html and "2026-12-03" in html
    # Live usage only: the test-mode upload and link are not counted.
    assert re.search(r'data-testid="usage-uploads">1<', html) and re.search(r'data-testid="usage-sessions">1<', html)
    row = html.split("<code>in_usd</code>")[1].split("</tr>")[0]
    assert "$24.99 USD" in row and "$5.00 USD" in row  # the failed refund returned nothing
    assert "support@apertur.ca" in html and project.public_id in html
    for n in range(30):
        Payment.objects.create(
            project=project, external_id=f"in_{n:02d}", amount_cents=1_000, paid_at=dt_at(n), description="Pro"
        )
    first = browser.get(url).content.decode()
    assert len(re.findall(r"<code>in_\d\d</code>", first)) == 25 and "Page 1 of 2 (31 payments)" in first
    assert "<code>in_29</code>" in first and "<code>in_usd</code>" not in first  # newest first
    assert "<code>in_usd</code>" in browser.get(f"{url}?page=2").content.decode()


def test_each_table_of_the_billing_page_scrolls_in_its_own_box() -> None:
    """The usage table, three columns in a card, pushed a 320 px page 41 px sideways (WCAG 1.4.10): like every
    other table, it scrolls inside a .table-wrap instead."""
    _, project, browser = _billing_world()
    html = browser.get(f"/projects/{project.public_id}/billing").content.decode()
    tables = html.count("<table")
    assert tables == 2 and len(re.findall(r'<div class="table-wrap">\s*<table', html)) == tables


def dt_at(n: int) -> Any:
    import datetime as dt

    return dt.datetime(2026, 11, 10, tzinfo=dt.UTC) + dt.timedelta(hours=n)


def test_the_billing_page_costs_the_same_queries_for_one_payment_or_many() -> None:
    from apertur.projects.models import Payment

    _, project, browser = _billing_world()
    url = f"/projects/{project.public_id}/billing"
    one, _ = _queries(browser, url)
    for n in range(30):
        Payment.objects.create(project=project, external_id=f"in_{n:02d}", amount_cents=1_000, paid_at=dt_at(n))
    many, _ = _queries(browser, url)
    assert many == one


def test_a_free_project_without_payments_says_so_and_the_page_is_only_the_owners() -> None:
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client()
    browser.force_login(user)
    url = f"/projects/{project.public_id}/billing"
    html = browser.get(url).content.decode()
    assert f"the {project.plan.name} plan is free" in html and "No payments yet." in html
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.get(url).status_code == 404
    assert Client().get(url)["Location"] == f"/login?next={url}"


def test_revoking_a_key_twice_says_it_is_already_revoked_instead_of_not_found() -> None:
    """A double click on Revoke key (or the confirmation page left open in another tab): the second request found
    no unrevoked key and answered the 404 page, as if the revocation had failed. It says the key is revoked."""
    from apertur.core.models import AuditEvent
    from apertur.projects.services import create_api_key

    user = make_user()
    project = create_project(owner=user, name="Weddings")
    key = create_api_key(project=project, name="Server").key
    browser = Client()
    browser.force_login(user)
    url = f"/projects/{project.public_id}/api-keys/{key.pk}/revoke"
    assert browser.post(url).status_code == 302
    again = browser.post(url, follow=True)
    assert again.status_code == 200 and again.redirect_chain[-1][0] == f"/projects/{project.public_id}/"
    assert "“Server” is already revoked" in again.content.decode()
    confirm = browser.get(url, follow=True)  # the confirmation page asked for again: nothing to confirm
    assert confirm.status_code == 200 and "“Server” is already revoked" in confirm.content.decode()
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1
    other = Client()
    other.force_login(make_user())
    assert other.post(url).status_code == 404  # still nobody else's business


# --- the owner's Settings page ---------------------------------------------------------------------------


def _settings_url(project) -> str:  # type: ignore[no-untyped-def]
    return f"/projects/{project.public_id}/settings"


class _FormValues(HTMLParser):
    """What the page's form would send as it stands: each input's and textarea's name and value (a checkbox only
    when ticked), hidden ones included."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name") and (a.get("type") != "checkbox" or "checked" in a):
            self.values[str(a["name"])] = a.get("value") or ("on" if a.get("type") == "checkbox" else "")
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.values[str(self._textarea)] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            if self._textarea:  # Django writes a newline after <textarea>, which browsers drop
                self.values[self._textarea] = self.values[self._textarea].removeprefix("\n")
            self._textarea = None


def _form(html: str, **changes: str | None) -> dict[str, str]:
    """The page's form as the browser would send it, with ``changes`` typed in (``None``: a box unticked)."""
    parser = _FormValues()
    parser.feed(html.split('<form method="post" novalidate>')[1].split("</form>")[0])
    values = parser.values
    for name, value in changes.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    return values


def _field_error(html: str, field: str) -> str:
    """The error shown next to ``field`` (``_field.html``), or ''."""
    found = re.search(rf'<div id="id_{field}_error"><p class="field-error" role="alert">(.*?)</p></div>', html)
    return found.group(1) if found else ""


def _owner_browser(**extra: Any) -> tuple[Any, Any, Client]:
    user = make_user()
    project = create_project(owner=user, name="Weddings")
    browser = Client(**extra)
    browser.force_login(user)
    return user, project, browser


def test_the_project_page_links_its_settings_page() -> None:
    _, project, browser = _owner_browser()
    html = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert f'href="{_settings_url(project)}">Project settings</a>' in html


def test_the_new_link_form_says_what_an_empty_field_means_with_the_projects_defaults() -> None:
    """Left empty, a new link's expiry and max files take the project's defaults; the placeholders said "never" and
    "no limit" all the same."""
    from apertur.projects.services import update_settings

    _, project, browser = _owner_browser()
    html = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert 'placeholder="never"' in html and 'placeholder="no limit"' in html
    update_settings(project=project, default_session_days=30, default_max_files=500)
    html = browser.get(f"/projects/{project.public_id}/").content.decode()
    assert 'placeholder="30 (project default)"' in html and 'placeholder="500 (project default)"' in html


def test_the_settings_page_shows_the_current_settings_in_labelled_fields() -> None:
    from apertur.projects.services import update_settings

    _, project, browser = _owner_browser()
    update_settings(
        project=project,
        description="Summer & winter",
        default_session_days=30,
        default_max_files=500,
        notify_owner_on_upload=True,
    )
    html = browser.get(_settings_url(project)).content.decode()
    for label in (
        "Project name",
        "Description",
        "Default link expiry (days)",
        "Default max files",
        "Email me when a guest uploads",
    ):
        assert re.search(rf'<label for="id_\w+">{re.escape(label)}</label>', html), label
    assert _form(html) == {
        "csrfmiddlewaretoken": _form(html)["csrfmiddlewaretoken"],
        "name": "Weddings",
        "initial-name": "Weddings",
        "description": "Summer & winter",
        "initial-description": "Summer & winter",
        "default_session_days": "30",
        "initial-default_session_days": "30",
        "default_max_files": "500",
        "initial-default_max_files": "500",
        "notify_owner_on_upload": "on",
        "initial-notify_owner_on_upload": "True",
    }
    assert '<p class="help" id="id_default_session_days_helptext">' in html


@pytest.mark.parametrize(
    ("field", "typed", "stored"),
    [
        ("name", "  Weddings   2027 ", "Weddings 2027"),  # tidied by the service, as through the API
        ("description", "Ana & Ben's summer", "Ana & Ben's summer"),
        ("default_session_days", "14", 14),
        ("default_max_files", "250", 250),
        ("notify_owner_on_upload", "on", True),
    ],
)
def test_the_owner_saves_each_setting(field: str, typed: str, stored: object) -> None:
    from apertur.projects.models import Project

    _, project, browser = _owner_browser()
    before = Project.objects.get(pk=project.pk).settings_json()
    page = browser.get(_settings_url(project)).content.decode()
    saved = browser.post(_settings_url(project), _form(page, **{field: typed}), follow=True)
    assert saved.redirect_chain == [(_settings_url(project), 302)]
    assert "Project settings saved." in saved.content.decode()
    after = Project.objects.get(pk=project.pk).settings_json()
    assert after == {**before, field: stored}  # that field, and only that one


def test_emptying_the_defaults_clears_them_and_unticking_turns_the_mails_off() -> None:
    from apertur.projects.models import Project
    from apertur.projects.services import update_settings

    _, project, browser = _owner_browser()
    update_settings(project=project, default_session_days=30, default_max_files=500, notify_owner_on_upload=True)
    page = browser.get(_settings_url(project)).content.decode()
    form = _form(page, default_session_days="", default_max_files="", notify_owner_on_upload=None)
    assert browser.post(_settings_url(project), form).status_code == 302
    project = Project.objects.get(pk=project.pk)
    assert (project.default_session_days, project.default_max_files, project.notify_owner_on_upload) == (
        None,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("name", "   ", "Enter a project name (1 to 100 characters)."),
        ("name", "galas", "You already have a project with this name."),  # another of the owner's, any case
        ("description", "x" * 501, "The description is at most 500 characters."),
        ("default_session_days", "0", "The default link expiry is a number of days between 1 and 3,650."),
        ("default_session_days", "3651", "The default link expiry is a number of days between 1 and 3,650."),
        ("default_max_files", "100001", "The default max files is a number between 1 and 100,000."),
        ("default_max_files", "-1", "The default max files is a number between 1 and 100,000."),
        ("default_max_files", "ten", "Enter a whole number."),  # unreadable: the form says so, nothing is cleared
    ],
)
def test_a_refused_setting_is_explained_by_its_field_and_changes_nothing(field: str, typed: str, message: str) -> None:
    from apertur.core.models import AuditEvent
    from apertur.projects.models import Project
    from apertur.projects.services import clean_settings

    user, project, browser = _owner_browser()
    create_project(owner=user, name="Galas")
    before = Project.objects.get(pk=project.pk).settings_json()
    page = browser.get(_settings_url(project)).content.decode()
    # Another field changed too: nothing of the form is saved while one field is refused.
    other = "description" if field != "description" else "default_max_files"
    sent = _form(page, **{field: typed, other: "42"})
    refused = browser.post(_settings_url(project), sent)
    html = refused.content.decode()
    assert refused.status_code == 400
    assert _field_error(html, field) == html_escape(message)
    others = {"name", "description", "default_session_days", "default_max_files", "notify_owner_on_upload"} - {field}
    assert all(_field_error(html, name) == "" for name in others)
    assert Project.objects.get(pk=project.pk).settings_json() == before
    assert not AuditEvent.objects.filter(action="project.settings_changed").exists()
    # What was typed is still there to correct, and the page still knows what it was opened with.
    again = _form(html)
    assert again[field] == sent[field] and again[other] == "42"
    assert again[f"initial-{field}"] == sent[f"initial-{field}"]
    if message != "Enter a whole number.":  # the service's own words: one rule set, the API's
        from apertur.core.errors import AperturError

        with pytest.raises(AperturError, match=re.escape(message)):
            clean_settings(
                owner_id=user.pk,
                project_id=project.pk,
                **{field: int(typed) if field.startswith("default_") else typed},  # type: ignore[arg-type]
            )


def test_saving_records_who_changed_what_from_where() -> None:
    from apertur.core.models import AuditEvent

    user, project, browser = _owner_browser(REMOTE_ADDR="203.0.113.9")
    page = browser.get(_settings_url(project)).content.decode()
    browser.post(_settings_url(project), _form(page, name="Galas", default_max_files="20"))
    [event] = AuditEvent.objects.filter(action="project.settings_changed")
    assert event.actor == user and event.ip == "203.0.113.9"
    assert event.object_id == str(project.pk)
    assert event.data["before"]["name"] == "Weddings" and event.data["after"]["name"] == "Galas"
    assert event.data["before"]["default_max_files"] is None and event.data["after"]["default_max_files"] == 20


def test_saving_sends_only_what_the_owner_changed_so_an_apps_change_meanwhile_stays() -> None:
    """A connected app changed the description (PATCH /api/v1/project/settings) while the page was open; the owner
    renames the project. The app's description is kept, not written back over with the page's stale copy."""
    from apertur.projects.models import Project
    from apertur.projects.services import update_settings

    _, project, browser = _owner_browser()
    page = browser.get(_settings_url(project)).content.decode()
    update_settings(project=project, description="Set by Snapflow")
    assert browser.post(_settings_url(project), _form(page, name="Galas")).status_code == 302
    project = Project.objects.get(pk=project.pk)
    assert (project.name, project.description) == ("Galas", "Set by Snapflow")


def test_saving_an_unchanged_form_changes_nothing_and_says_so() -> None:
    from apertur.core.models import AuditEvent

    _, project, browser = _owner_browser()
    page = browser.get(_settings_url(project)).content.decode()
    again = browser.post(_settings_url(project), _form(page), follow=True)
    assert again.redirect_chain == [(_settings_url(project), 302)]
    assert "Nothing to save: the settings are as they were." in again.content.decode()
    assert not AuditEvent.objects.filter(action="project.settings_changed").exists()


def test_the_settings_page_is_only_the_owners() -> None:
    from apertur.projects.models import Project

    _, project, owner_browser = _owner_browser()
    form = _form(owner_browser.get(_settings_url(project)).content.decode(), name="Mine now")
    stranger = Client()
    stranger.force_login(make_user())
    assert stranger.get(_settings_url(project)).status_code == 404
    assert stranger.post(_settings_url(project), form).status_code == 404
    assert Client().get(_settings_url(project))["Location"] == f"/login?next={_settings_url(project)}"
    assert Client().post(_settings_url(project), form).status_code == 302  # to the login page
    assert Project.objects.get(pk=project.pk).name == "Weddings"


def test_saving_settings_needs_the_pages_csrf_token() -> None:
    from apertur.projects.models import Project

    _, project, browser = _owner_browser(enforce_csrf_checks=True)
    form = _form(browser.get(_settings_url(project)).content.decode(), name="Galas")
    without = {name: value for name, value in form.items() if name != "csrfmiddlewaretoken"}
    assert browser.post(_settings_url(project), without).status_code == 403
    assert Project.objects.get(pk=project.pk).name == "Weddings"
    assert browser.post(_settings_url(project), form).status_code == 302  # with it, the same form is saved
    assert Project.objects.get(pk=project.pk).name == "Galas"


def test_the_settings_page_costs_the_same_queries_however_much_the_project_holds() -> None:
    user, project, browser = _owner_browser()
    one, _ = _queries(browser, _settings_url(project))
    _add_rows(project, start=0, count=3)
    for n in range(3):
        create_project(owner=user, name=f"Other {n}")
    many, _ = _queries(browser, _settings_url(project))
    assert many == one
