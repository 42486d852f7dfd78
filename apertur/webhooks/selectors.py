from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from apertur.oauth.selectors import unusable_app_ids
from apertur.projects.models import Project
from apertur.webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoint_list(*, project: Project, livemode: bool = True) -> QuerySet[WebhookEndpoint]:
    """Each annotated with ``app_paused``: created by an app that may not be used now (deactivated, its partner
    suspended), so no event is sent to it meanwhile (``services.emit``)."""
    paused = Exists(unusable_app_ids().filter(pk=OuterRef("created_by_app_id")))
    return WebhookEndpoint.objects.filter(project=project, livemode=livemode).annotate(app_paused=paused)


def endpoint_for_project(*, project: Project, public_id: str, livemode: bool = True) -> WebhookEndpoint | None:
    return endpoint_list(project=project, livemode=livemode).filter(public_id=public_id).first()


def delivery_log(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event").prefetch_related("attempt_log")
