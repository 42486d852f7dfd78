from __future__ import annotations

from django.db import IntegrityError, transaction

from apertur.accounts.models import User
from apertur.accounts.services import create_user
from apertur.core import audit
from apertur.projects.errors import InvalidProjectName, ProjectNameTaken
from apertur.projects.models import Plan, Project
from apertur.projects.selectors import plan_by_name

DEFAULT_PLAN = "Free"
DEFAULT_PROJECT_NAME = "My project"


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 100:
        raise InvalidProjectName(field="name")
    return cleaned


@transaction.atomic
def create_project(*, owner: User, name: str, plan: Plan | None = None, ip: str | None = None) -> Project:
    cleaned = _clean_name(name)
    if Project.objects.filter(owner=owner, name__iexact=cleaned).exists():
        raise ProjectNameTaken(field="name")
    try:
        with transaction.atomic():
            project = Project.objects.create(owner=owner, name=cleaned, plan=plan or plan_by_name(DEFAULT_PLAN))
    except IntegrityError as exc:
        raise ProjectNameTaken(field="name") from exc
    audit.record(action="project.created", obj=project, actor=owner, ip=ip, data={"plan": project.plan.name})
    return project


@transaction.atomic
def create_customer(
    *,
    email: str,
    password: str,
    project_name: str = DEFAULT_PROJECT_NAME,
    plan_name: str = DEFAULT_PLAN,
    email_confirmed: bool = False,
    ip: str | None = None,
) -> User:
    """Sign a customer up: the account and their first project, or nothing at all."""
    plan = plan_by_name(plan_name)
    user = create_user(email=email, password=password, email_confirmed=email_confirmed, ip=ip)
    create_project(owner=user, name=project_name, plan=plan, ip=ip)
    return user
