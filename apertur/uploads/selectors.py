from __future__ import annotations

from django.db.models import Count, QuerySet

from apertur.projects.models import Project
from apertur.uploads.models import Destination, DestinationDelivery, Upload, UploadSession


def session_list(*, project: Project, livemode: bool = True) -> QuerySet[UploadSession]:
    """The project's upload links, newest first (the upload count's aggregate drops Meta.ordering: say it)."""
    return (
        UploadSession.objects.filter(project=project, livemode=livemode)
        .annotate(upload_count=Count("uploads"))
        .order_by("-created_at", "-id")
    )


def session_for_project(*, project: Project, public_id: str, livemode: bool = True) -> UploadSession | None:
    return session_list(project=project, livemode=livemode).filter(public_id=public_id).first()


def session_by_token(token: str) -> UploadSession | None:
    return UploadSession.objects.select_related("project__plan").filter(token=token).first()


def upload_list(*, project: Project, livemode: bool = True, session: UploadSession | None = None) -> QuerySet[Upload]:
    qs = Upload.objects.filter(project=project, livemode=livemode).select_related("session")
    if session is not None:
        qs = qs.filter(session=session)
    return qs


def destination_list(*, project: Project, livemode: bool = True) -> QuerySet[Destination]:
    """The project's destinations, newest first (as its other lists on the project page)."""
    return Destination.objects.filter(project=project, livemode=livemode).order_by("-created_at", "-id")


def destination_deliveries(*, destination: Destination) -> QuerySet[DestinationDelivery]:
    """The destination's copies, newest first (one per upload, made when it arrives), with their uploads."""
    return DestinationDelivery.objects.filter(destination=destination).select_related("upload").order_by("-id")
