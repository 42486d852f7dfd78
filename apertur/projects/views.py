from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from apertur.accounts.models import User
from apertur.core.errors import AperturError
from apertur.core.http import client_ip, pop_once, show_once
from apertur.core.pages import PAGE_SIZE, page_of
from apertur.oauth.selectors import connection_for_owner, connections_for_project
from apertur.oauth.tokens import disconnect
from apertur.projects import selectors, services
from apertur.projects.forms import ProjectForm
from apertur.uploads.selectors import session_list
from apertur.uploads.views import pop_upload_link_draft
from apertur.webhooks.selectors import endpoint_list


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


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
    project = selectors.project_for_owner(owner=_user(request), public_id=public_id)
    if project is None:
        raise Http404("No such project.")
    once = pop_once(request, _KEY_ONCE, page=project.public_id)
    sessions = page_of(session_list(project=project), page=request.GET.get("page"), size=PAGE_SIZE, rows=list)
    context = {
        "project": project,
        "connections": list(connections_for_project(project=project)),
        "sessions": sessions,
        "api_keys": list(selectors.api_key_list(project=project)),
        "webhooks": list(endpoint_list(project=project)),
        "destinations": list(project.destinations.filter(livemode=True)),
        "new_key": once,
        "session_draft": pop_upload_link_draft(request, project.public_id),
    }
    return render(request, "projects/detail.html", context)


# A new key's secret travels to the page that shows it once in the session, and is popped there.
_KEY_ONCE = "api_key_once"


@login_required
@require_POST
def api_key_create(request: HttpRequest, public_id: str) -> HttpResponse:
    project = selectors.project_for_owner(owner=_user(request), public_id=public_id)
    if project is None:
        raise Http404("No such project.")
    try:
        created = services.create_api_key(
            project=project,
            name=request.POST.get("name", ""),
            livemode=request.POST.get("mode", "live") != "test",
            actor=_user(request),
            ip=client_ip(request),
        )
    except AperturError as exc:
        messages.error(request, exc.message)
    else:
        show_once(request, _KEY_ONCE, page=project.public_id, secret=created.secret, name=created.key.name)
    return redirect("projects:detail", public_id=public_id)


@login_required
@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, public_id: str, key_id: int) -> HttpResponse:
    project = selectors.project_for_owner(owner=_user(request), public_id=public_id)
    key = (
        selectors.api_key_list(project=project).filter(pk=key_id, revoked_at__isnull=True).first() if project else None
    )
    if key is None:
        raise Http404("No such API key.")
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
    if request.method == "POST":
        disconnect(connection=connection, actor=_user(request), ip=client_ip(request))
        messages.success(request, f"{connection.app.name} is disconnected from {connection.project.name}.")
        return redirect("projects:detail", public_id=public_id)
    return render(request, "projects/disconnect.html", {"connection": connection})
