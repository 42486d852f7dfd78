from __future__ import annotations

from django.db.models import QuerySet

from apertur.projects.models import Project
from apertur.webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoint_list(*, project: Project, livemode: bool = True) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(project=project, livemode=livemode)


def endpoint_for_project(*, project: Project, public_id: str, livemode: bool = True) -> WebhookEndpoint | None:
    return endpoint_list(project=project, livemode=livemode).filter(public_id=public_id).first()


def delivery_log(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event").prefetch_related("attempt_log")
