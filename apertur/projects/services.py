from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from django.db import IntegrityError, transaction

from apertur.accounts.models import User
from apertur.accounts.services import create_user
from apertur.accounts.signals import TurnedOff
from apertur.core import audit, clock, ratelimit, tokens
from apertur.core.counts import ensure_room, lock_row
from apertur.projects import signals
from apertur.projects.errors import (
    ApiKeyLimitReached,
    InvalidApiKeyName,
    InvalidProjectName,
    InvalidProjectSettings,
    ProjectLimitReached,
    ProjectNameTaken,
)
from apertur.projects.models import ApiKey, Plan, Project
from apertur.projects.selectors import plan_by_name

DEFAULT_PLAN = "Free"
DEFAULT_PROJECT_NAME = "My project"
#: Projects one account may own (docs/api.md, "How many of each"): far more than a studio runs at once, few enough
#: that a script holding a session cannot fill the database. Staff adding one in the admin are not held to it.
MAX_PROJECTS_PER_ACCOUNT = 100
#: API keys in use (not revoked) per project and mode (docs/api.md): one per server or integration, with room to
#: roll them. A revoked key no longer counts.
MAX_API_KEYS_PER_PROJECT = 20
#: API keys created per project in an hour, live and test together. The cap above counts keys in use, so it is freed
#: by revoking; a revoked key's row and the audit events of its creation and revocation stay. Fifty is the cap twice
#: over plus room: a CI that makes a throwaway key per run, or a team replacing every key after a leak.
API_KEYS_CREATED_PER_PROJECT = ratelimit.Limit("api-key-create-project", 50, 60 * 60)
#: Settings changes per project in an hour (page, API, CLI; not staff in the admin). Each is audited, and each save
#: of a project voids every app process's access-token cache (``oauth.token_cache``): a PATCH loop was both a
#: growing audit log and a cache flush for every caller. Sixty is one a minute, sustained.
SETTINGS_CHANGES_PER_PROJECT = ratelimit.Limit("project-settings-project", 60, 60 * 60)


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= 100:
        raise InvalidProjectName(field="name")
    return cleaned


def _lock_owner(owner_id: int) -> None:
    """Take turns with the owner's other project name changes: names are unique per owner whatever their case,
    which the check in code enforces (the constraint is on the exact name), so it must see what a creation or
    rename in flight commits. FOR NO KEY UPDATE: rows referring to the user (a new project) are not held up."""
    lock_row(User, owner_id)


@transaction.atomic
def create_project(*, owner: User, name: str, plan: Plan | None = None, ip: str | None = None) -> Project:
    _clean_name(name)  # refused before waiting for the owner's lock
    ensure_room(  # the owner's lock (_lock_owner's) is also the one the name check below needs
        owner=owner,
        existing=Project.objects.filter(owner_id=owner.pk),
        limit=MAX_PROJECTS_PER_ACCOUNT,
        error=ProjectLimitReached(
            f"An account can have at most {MAX_PROJECTS_PER_ACCOUNT} projects. Rename one you no longer use "
            "(on its Settings page) and use it instead, or write to support if you need more."
        ),
    )
    cleaned = str(clean_settings(owner_id=owner.pk, project_id=None, name=name)["name"])
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


@dataclass(frozen=True, slots=True)
class CreatedApiKey:
    key: ApiKey
    secret: str  # shown once


@transaction.atomic
def create_api_key(
    *, project: Project, name: str, livemode: bool = True, actor: User | None = None, ip: str | None = None
) -> CreatedApiKey:
    clean = " ".join(name.split())
    if not 1 <= len(clean) <= 80:
        raise InvalidApiKeyName(field="name")
    mode = "live" if livemode else "test"
    ensure_room(
        owner=project,
        existing=ApiKey.objects.filter(project=project, livemode=livemode, revoked_at__isnull=True),
        limit=MAX_API_KEYS_PER_PROJECT,
        error=ApiKeyLimitReached(
            f"A project can have at most {MAX_API_KEYS_PER_PROJECT} {mode} API keys in use. Revoke one you no "
            "longer use, then create the new one."
        ),
    )
    ratelimit.hit(API_KEYS_CREATED_PER_PROJECT, str(project.pk), what="new API keys")
    secret = tokens.generate(tokens.Prefix.LIVE_SECRET_KEY if livemode else tokens.Prefix.TEST_SECRET_KEY, 40)
    key = ApiKey.objects.create(
        project=project,
        name=clean,
        livemode=livemode,
        key_hash=tokens.hash_secret(secret),
        last4=tokens.last_four(secret),
        created_by=actor,
    )
    audit.record(action="api_key.created", obj=key, actor=actor, ip=ip, data={"livemode": livemode, "last4": key.last4})
    return CreatedApiKey(key=key, secret=secret)


@transaction.atomic
def revoke_api_key(*, key: ApiKey, actor: User | None = None, ip: str | None = None) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        key.save(update_fields=["revoked_at"])
        audit.record(action="api_key.revoked", obj=key, actor=actor, ip=ip, data={"last4": key.last4})
    return key


def revoke_keys_of_claimed_account(*, user: User) -> list[TurnedOff]:
    """An account claimed from whoever signed up with its address (``accounts.signals.claimed_from_signup``):
    the API keys of its projects were made by someone who may not own it, and would keep working for them.
    Each is revoked as the project page revokes one (audited ``api_key.revoked``)."""
    keys = list(ApiKey.objects.filter(project__owner=user, revoked_at__isnull=True).order_by("pk"))
    for key in keys:
        revoke_api_key(key=key, actor=user)
    return [TurnedOff.of("api_keys_revoked", len(keys), one="project API key revoked", many="project API keys revoked")]


class _Unset(Enum):
    TOKEN = 0


UNSET = _Unset.TOKEN  # "leave this field as it is", distinct from None ("clear it")


def clean_settings(
    *,
    owner_id: int,
    project_id: int | None,
    name: str | None = None,
    description: str | None = None,
    default_session_days: int | _Unset | None = UNSET,
    default_max_files: int | _Unset | None = UNSET,
) -> dict[str, object]:
    """The rules of a project's settings, in one place (the owner's page and API through :func:`update_settings`,
    :func:`create_project`, the staff admin's form): the values to store by field, for the fields given; raises
    the first field's error. A name is unique per owner whatever its case (``project_id``: the project being
    renamed, which may keep its own); callers that save hold the owner's lock (:func:`_lock_owner`)."""
    values: dict[str, object] = {}
    if name is not None:
        cleaned = _clean_name(name)
        taken = Project.objects.filter(owner_id=owner_id, name__iexact=cleaned)
        if taken.exclude(pk=project_id).exists() if project_id is not None else taken.exists():
            raise ProjectNameTaken(field="name")
        values["name"] = cleaned
    if description is not None:
        text = description.strip()  # what is stored is what is measured: a pasted trailing line break is not text
        if len(text) > 500:
            raise InvalidProjectSettings("The description is at most 500 characters.", field="description")
        values["description"] = text
    if not isinstance(default_session_days, _Unset):
        if default_session_days is not None and not 1 <= default_session_days <= 3650:
            raise InvalidProjectSettings(
                "The default link expiry is a number of days between 1 and 3,650.", field="default_session_days"
            )
        values["default_session_days"] = default_session_days
    if not isinstance(default_max_files, _Unset):
        if default_max_files is not None and not 1 <= default_max_files <= 100_000:
            raise InvalidProjectSettings(
                "The default max files is a number between 1 and 100,000.", field="default_max_files"
            )
        values["default_max_files"] = default_max_files
    return values


@transaction.atomic
def update_settings(
    *,
    project: Project,
    name: str | None = None,
    description: str | None = None,
    default_session_days: int | _Unset | None = UNSET,
    default_max_files: int | _Unset | None = UNSET,
    notify_owner_on_upload: bool | None = None,
    actor: User | None = None,
    ip: str | None = None,
    via: str | None = None,
    budgeted: bool = True,
) -> Project:
    """Change the fields given; ``None`` clears the two defaults, leaving a field out keeps it. ``via``: the API
    caller that asked (recorded in the audit event, as closing a link through the API records it). Past
    :data:`SETTINGS_CHANGES_PER_PROJECT`: :class:`RateLimited`, nothing changed; ``budgeted=False`` for staff in
    the admin, who answer to no customer's budget."""
    if name is not None:
        _lock_owner(project.owner_id)  # before the project's row, in the order create_project takes them
    # The project row only (``of``): the plan row joined to it is every project on that plan's.
    project = Project.objects.select_for_update(of=("self",)).select_related("plan").get(pk=project.pk)
    before = project.settings_json()
    values = clean_settings(
        owner_id=project.owner_id,
        project_id=project.pk,
        name=name,
        description=description,
        default_session_days=default_session_days,
        default_max_files=default_max_files,
    )
    if budgeted:  # counted once the input is known good: a refused change spends nothing
        ratelimit.hit(SETTINGS_CHANGES_PER_PROJECT, str(project.pk), what="changes to the project's settings")
    for field, value in values.items():
        setattr(project, field, value)
    if notify_owner_on_upload is not None:
        project.notify_owner_on_upload = notify_owner_on_upload
    project.save()
    audit.record(
        action="project.settings_changed",
        obj=project,
        actor=actor,
        ip=ip,
        data={"before": before, "after": project.settings_json(), **({"via": via} if via else {})},
    )
    return project


@transaction.atomic
def change_plan(*, project: Project, plan: Plan, actor: User | None = None, ip: str | None = None) -> Project:
    """Move a project to another plan (billing events and staff call this); sends ``signals.plan_changed`` (the
    webhooks app emits ``plan.changed`` from it)."""
    # The project row only (``of``): the plan row joined to it is every project on that plan's.
    project = Project.objects.select_for_update(of=("self",)).select_related("plan").get(pk=project.pk)
    old = project.plan
    if old.pk == plan.pk:
        return project
    project.plan = plan
    project.save(update_fields=["plan"])
    audit.record(
        action="project.plan_changed", obj=project, actor=actor, ip=ip, data={"from": old.name, "to": plan.name}
    )
    signals.plan_changed.send(sender=Project, project=project, old_plan=old, new_plan=plan)
    return project
