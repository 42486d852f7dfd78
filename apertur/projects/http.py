"""What the project pages of every app (projects, uploads, webhooks) share: the signed-in owner's project."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from apertur.accounts.models import User
from apertur.projects import selectors
from apertur.projects.models import Project


def owned_project(request: HttpRequest, public_id: str) -> Project:
    """The signed-in owner's project ``public_id``, or 404 (another owner's project is "no such project" too)."""
    assert isinstance(request.user, User)
    project = selectors.project_for_owner(owner=request.user, public_id=public_id)
    if project is None:
        raise Http404("No such project.")
    return project
