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
        from apertur.accounts.signals import when_claimed
        from apertur.projects import services

        post_migrate.connect(ensure_plans, sender=self)
        # An account claimed from whoever signed up with its address: their API keys stop working.
        when_claimed(services.revoke_keys_of_claimed_account, dispatch_uid="projects-unproven-signup-claimed")
