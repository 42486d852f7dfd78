from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from apertur.accounts.models import User
from apertur.core import tokens
from apertur.core.validation import has_nul
from apertur.oauth.errors import AppNotFound
from apertur.oauth.models import Connection, KeyMode, OAuthApp, PublicKey
from apertur.partners.models import Partner
from apertur.projects.models import Project


def app_list(*, partner: Partner) -> QuerySet[OAuthApp]:
    """The partner's apps, each annotated with ``connected_projects`` (active connections)."""
    return (
        OAuthApp.objects.filter(partner=partner)
        .prefetch_related("redirect_uris", "allowed_domains")
        .annotate(connected_projects=Count("connections", filter=Q(connections__revoked_at__isnull=True)))
        .order_by("created_at", "id")  # the aggregate drops Meta.ordering; pages need a stable order
    )


def app_count(*, partner: Partner) -> int:
    """How many apps the partner has (the portal overview's number): a count of their rows, without
    :func:`app_list`'s redirect URIs, allowed domains and connections of every app."""
    return OAuthApp.objects.filter(partner=partner).count()


def unusable_app_ids() -> QuerySet[OAuthApp, Any]:
    """The ids of the apps whose credentials do not work now (deactivated, or their partner suspended: the
    complement of ``OAuthApp.objects.usable()``), as a subquery for rows holding an app's id: the webhook
    endpoints an app created are paused meanwhile."""
    return OAuthApp.objects.exclude(pk__in=OAuthApp.objects.usable().values("pk")).values("pk")


def app_for_partner(*, partner: Partner, client_id: str) -> OAuthApp:
    if not lookable(client_id):  # from the URL: a NUL there is a 404, not a database error
        raise AppNotFound()
    app = (
        OAuthApp.objects.filter(partner=partner, client_id=client_id)
        .select_related("partner")
        .annotate(connected_projects=Count("connections", filter=Q(connections__revoked_at__isnull=True)))
        .first()
    )
    if app is None:
        raise AppNotFound()
    return app


def active_public_key(*, app: OAuthApp, mode: KeyMode) -> PublicKey:
    return app.public_keys.get(mode=mode, is_active=True)


@dataclass(frozen=True, slots=True)
class PublicKeyMatch:
    app: OAuthApp
    mode: KeyMode

    @property
    def livemode(self) -> bool:
        return self.mode == KeyMode.LIVE


def lookable(value: str) -> bool:
    """Can ``value`` be looked up as a client id or a key? A NUL (``%00`` in a query string, ``\\u0000`` in
    JSON) is in none of them, and PostgreSQL refuses it in a query parameter; a lone surrogate (JSON's
    ``\\ud800``) cannot be encoded for any database (both were 500s): such a value is simply unknown."""
    if has_nul(value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def app_for_public_key(key: str) -> PublicKeyMatch | None:
    """The usable app behind an active publishable key, or ``None`` (→ ``invalid_public_key``)."""
    if not lookable(key):
        return None
    match = (
        PublicKey.objects.filter(key=key, is_active=True, app__in=OAuthApp.objects.usable())
        .select_related("app", "app__partner")
        .first()
    )
    return PublicKeyMatch(app=match.app, mode=KeyMode(match.mode)) if match else None


def authenticate_client(*, client_id: str, client_secret: str) -> OAuthApp | None:
    """RFC 6749 §2.3.1 client authentication: the usable app whose secret matches, compared in
    constant time, or ``None``. Unknown ids still pay for one hash so timing does not tell them apart."""
    app = OAuthApp.objects.usable().select_related("partner").filter(client_id=client_id).first()
    if app is None:
        tokens.secret_matches(client_secret, "0" * 64)
        return None
    return app if app.client_secret_matches(client_secret) else None


def connections_for_project(*, project: Project) -> QuerySet[Connection]:
    """The apps connected to a project, as its owner sees them."""
    return (
        Connection.objects.filter(project=project, revoked_at__isnull=True)
        .select_related("app__partner")
        .order_by("-updated_at", "-id")  # the id breaks ties, so a paged list shows each row once
    )


def connection_for_owner(*, owner: User, connection_id: int) -> Connection | None:
    """One of the owner's connections, removed (``revoked_at`` set) or not: a second Disconnect is told the app is
    already disconnected, not that there is no such connection."""
    return (
        Connection.objects.filter(pk=connection_id, project__owner=owner)
        .select_related("app__partner", "project")
        .first()
    )
