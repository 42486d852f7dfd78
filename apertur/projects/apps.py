from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_plans(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """Create any missing plan of the price list (never overwrites one staff edited). Runs after every
    migrate and after a flush, which is how test databases are emptied between transactional tests."""
    from apertur.projects.models import Plan
    from apertur.projects.plans import PLANS

    for spec in PLANS:
        Plan.objects.using(using).get_or_create(
            name=spec["name"], defaults={k: v for k, v in spec.items() if k != "name"}
        )


class ProjectsConfig(AppConfig):
    name = "apertur.projects"
    label = "projects"

    def ready(self) -> None:
        from apertur.accounts.signals import mailbox_proven

        post_migrate.connect(ensure_plans, sender=self)
        mailbox_proven.connect(_claimed, dispatch_uid="projects-unproven-signup-claimed")


def _claimed(sender: Any, *, user: Any, via: str, was_confirmed: bool, **kwargs: Any) -> Any:
    """An account claimed from whoever signed up with its address: their API keys stop working."""
    from apertur.accounts.signals import claimed_from_signup

    if not claimed_from_signup(via=via, was_confirmed=was_confirmed):
        return None
    from apertur.projects.services import revoke_keys_of_claimed_account

    return revoke_keys_of_claimed_account(user=user)
