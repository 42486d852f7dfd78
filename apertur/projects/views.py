from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apertur.accounts.models import User
from apertur.core.errors import AperturError
from apertur.core.http import client_ip
from apertur.oauth.selectors import connection_for_owner, connections_for_project
from apertur.oauth.tokens import disconnect
from apertur.projects import selectors, services
from apertur.projects.forms import ProjectForm
from apertur.uploads.selectors import session_list


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
        "projects": list(selectors.project_list(owner=user)),
        "plans": list(selectors.plan_list()),
        "form": form,
    }
    return render(request, "projects/list.html", context, status=status)


@login_required
def project_detail(request: HttpRequest, public_id: str) -> HttpResponse:
    project = selectors.project_for_owner(owner=_user(request), public_id=public_id)
    if project is None:
        raise Http404("No such project.")
    context = {
        "project": project,
        "connections": list(connections_for_project(project=project)),
        "sessions": list(session_list(project=project)[:50]),
    }
    return render(request, "projects/detail.html", context)


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
