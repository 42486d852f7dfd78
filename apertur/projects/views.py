from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apertur.accounts.models import User
from apertur.core.errors import AperturError
from apertur.core.forms import add_problems
from apertur.core.http import client_ip, pop_once, show_once
from apertur.core.pages import PAGE_SIZE, Page, page_of
from apertur.oauth.selectors import connection_for_owner, connections_for_project
from apertur.oauth.tokens import disconnect
from apertur.projects import selectors, services
from apertur.projects.forms import ProjectForm, ProjectSettingsForm
from apertur.projects.http import owned_project
from apertur.projects.models import Project
from apertur.uploads.selectors import destination_list, session_list
from apertur.uploads.services import month_start, usage
from apertur.uploads.views import pop_upload_link_draft
from apertur.webhooks.selectors import endpoint_list


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@dataclass(frozen=True, slots=True)
class _Card:
    """One of the project page's lists that can grow without bound. The page's card shows its first
    ``CARD_SIZE`` rows with the count and a "View all" link to its own page, which pages them all."""

    title: str  # the card's heading, and its page's
    noun: str  # one row, for the counts ("3 API keys")
    order: str  # how the rows are sorted, in words
    rows: Callable[[Project], QuerySet[Any]]
    template: str  # the rows' markup, the same on the card and on the page

    @property
    def pager_label(self) -> str:
        return f"{self.title} pages"


CARD_SIZE = 10
_CARDS = {
    "destinations": _Card(
        "Destinations",
        "destination",
        "newest first",
        lambda project: destination_list(project=project),
        "uploads/_destinations.html",
    ),
    "api-keys": _Card(
        "API keys",
        "API key",
        "newest first",
        lambda project: selectors.api_key_list(project=project),
        "projects/_api_keys.html",
    ),
    "webhooks": _Card(
        "Event webhooks",
        "webhook endpoint",
        "newest first",
        lambda project: endpoint_list(project=project),
        "webhooks/_endpoints.html",
    ),
    "connections": _Card(
        "Connected apps",
        "connected app",
        "most recently connected or changed first",
        lambda project: connections_for_project(project=project),
        "projects/_connections.html",
    ),
}


def _card_page(card: str, project: Project, *, page: int | str | None, size: int) -> Page[Any]:
    return page_of(_CARDS[card].rows(project), page=page, size=size, rows=list)


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = ProjectForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                project = services.create_project(owner=user, name=form.cleaned_data["name"], ip=client_ip(request))
            except AperturError as exc:
                form.add_error("name", exc.message)
            else:
                messages.success(request, f"Project “{project.name}” created on the {project.plan.name} plan.")
                return redirect("projects:detail", public_id=project.public_id)
        status = 400
    context = {
        "projects": page_of(
            selectors.project_list(owner=user), page=request.GET.get("page"), size=PAGE_SIZE, rows=list
        ),
        "plans": list(selectors.plan_list()),
        "form": form,
    }
    return render(request, "projects/list.html", context, status=status)


# never_cache (no-store): the page shows a new API key's secret once; without it the browser's Back button
# brings the page back from its cache with the secret on it.
@never_cache
@login_required
def project_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    project = owned_project(request, public_id)
    once = pop_once(request, _KEY_ONCE, page=project.public_id)
    sessions = page_of(session_list(project=project), page=request.GET.get("page"), size=PAGE_SIZE, rows=list)
    context = {
        "project": project,
        "sessions": sessions,
        # Each card's first rows and their count (two queries each, however many rows there are).
        "connections": _card_page("connections", project, page=1, size=CARD_SIZE),
        "api_keys": _card_page("api-keys", project, page=1, size=CARD_SIZE),
        "webhooks": _card_page("webhooks", project, page=1, size=CARD_SIZE),
        "destinations": _card_page("destinations", project, page=1, size=CARD_SIZE),
        "new_key": once,
        "session_draft": pop_upload_link_draft(request, project.public_id),
        "key_draft": pop_once(request, _KEY_DRAFT, page=project.public_id),
    }
    return render(request, "projects/detail.html", context)


@login_required
@require_safe
def billing(request: HttpRequest, public_id: str) -> HttpResponse:
    """The project's plan, subscription, live usage this month and payments (paged, newest first): what
    ``GET /api/v1/billing`` answers, for the customer. Test mode has a budget of its own and no billing."""
    project = owned_project(request, public_id)
    payments = page_of(selectors.payment_list(project=project), page=request.GET.get("page"), size=PAGE_SIZE, rows=list)
    context = {
        "project": project,
        "subscription": selectors.current_subscription(project=project),
        "usage": usage(project=project, livemode=True),
        "month": month_start(),
        "payments": payments,
        "support_email": settings.SUPPORT_EMAIL,
    }
    return render(request, "projects/billing.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, public_id: str) -> HttpResponse:
    """The owner's Settings page: what ``PATCH /api/v1/project/settings`` changes, by the same service and rules.
    Only the fields the owner changed since the page was opened are sent (as the API's PATCH and the staff admin
    do): the audit event says what changed, and a setting an app changed meanwhile is not written back over."""
    project = owned_project(request, public_id)
    form = ProjectSettingsForm(request.POST or None, initial=project.settings_json())
    status = 200
    if request.method == "POST":
        if form.is_valid():
            changed = {name: form.cleaned_data[name] for name in form.changed_data}
            if not changed:
                messages.info(request, "Nothing to save: the settings are as they were.")
                return redirect("projects:settings", public_id=project.public_id)
            try:
                services.update_settings(project=project, **changed, actor=_user(request), ip=client_ip(request))
            except AperturError as exc:
                add_problems(form, exc)
            else:
                messages.success(request, "Project settings saved.")
                return redirect("projects:settings", public_id=project.public_id)
        status = 400
    return render(request, "projects/settings.html", {"project": project, "form": form}, status=status)


@login_required
@require_safe
def card_list(request: HttpRequest, public_id: str, card: str) -> HttpResponse:
    """All the rows of one of the project page's cards ("View all"), by pages of ``PAGE_SIZE``."""
    project = owned_project(request, public_id)
    context = {
        "project": project,
        "card": _CARDS[card],
        "page": _card_page(card, project, page=request.GET.get("page"), size=PAGE_SIZE),
    }
    return render(request, "projects/card_list.html", context)


# A new key's secret travels to the page that shows it once in the session, and is popped there.
_KEY_ONCE = "api_key_once"
# A refused key's form, shown again once by the project page: the name typed, the reason beside it.
_KEY_DRAFT = "api_key_draft"


@login_required
@require_POST
def api_key_create(request: HttpRequest, public_id: str) -> HttpResponse:
    project = owned_project(request, public_id)
    try:
        created = services.create_api_key(
            project=project,
            name=request.POST.get("name", ""),
            livemode=request.POST.get("mode", "live") != "test",
            actor=_user(request),
            ip=client_ip(request),
        )
    except AperturError as exc:
        # A flash message named no field: the form came back empty, its field unmarked (a screen reader heard an
        # alert about a form it could not find the fault in).
        show_once(
            request,
            _KEY_DRAFT,
            page=project.public_id,
            name=request.POST.get("name", ""),
            mode="test" if request.POST.get("mode") == "test" else "live",
            error=exc.message,
            field=exc.field,
        )
        return redirect(reverse("projects:detail", args=[public_id]) + "#api-keys")
    show_once(request, _KEY_ONCE, page=project.public_id, secret=created.secret, name=created.key.name)
    return redirect("projects:detail", public_id=public_id)


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, public_id: str, key_id: int) -> HttpResponse:
    project = selectors.project_for_owner(owner=_user(request), public_id=public_id)
    key = selectors.api_key_list(project=project).filter(pk=key_id).first() if project else None
    if key is None:
        raise Http404("No such API key.")
    if key.revoked_at is not None:
        # Revoked already (a double click, another tab): what this page asks for is done; say so.
        messages.info(request, f"API key “{key.name}” is already revoked.")
        return redirect("projects:detail", public_id=public_id)
    if request.method == "POST":
        services.revoke_api_key(key=key, actor=_user(request), ip=client_ip(request))
        messages.success(request, f"API key “{key.name}” revoked.")
        return redirect("projects:detail", public_id=public_id)
    return render(request, "projects/revoke_key.html", {"project": project, "key": key})


@login_required
@require_http_methods(["GET", "POST"])
def disconnect_app(request: HttpRequest, public_id: str, connection_id: int) -> HttpResponse:
    """Confirm (GET), then remove the connection and every token it holds (POST)."""
    connection = connection_for_owner(owner=_user(request), connection_id=connection_id)
    if connection is None or connection.project.public_id != public_id:
        raise Http404("No such connection.")
    if connection.revoked_at is not None:
        # Disconnected already (a double click, another tab): what this page asks for is done; say so.
        messages.info(request, f"{connection.app.name} is already disconnected from {connection.project.name}.")
        return redirect("projects:detail", public_id=public_id)
    if request.method == "POST":
        disconnect(connection=connection, actor=_user(request), ip=client_ip(request))
        messages.success(request, f"{connection.app.name} is disconnected from {connection.project.name}.")
        return redirect("projects:detail", public_id=public_id)
    return render(request, "projects/disconnect.html", {"connection": connection})
