from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from apertur.core import tokens
from apertur.oauth.errors import AppNotFound
from apertur.oauth.models import KeyMode, OAuthApp, PublicKey
from apertur.partners.models import Partner


def app_list(*, partner: Partner) -> QuerySet[OAuthApp]:
    return OAuthApp.objects.filter(partner=partner).prefetch_related("redirect_uris", "allowed_domains")


def app_for_partner(*, partner: Partner, client_id: str) -> OAuthApp:
    app = OAuthApp.objects.filter(partner=partner, client_id=client_id).select_related("partner").first()
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


def app_for_public_key(key: str) -> PublicKeyMatch | None:
    """The usable app behind an active publishable key, or ``None`` (→ ``invalid_public_key``)."""
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
    return app if tokens.secret_matches(client_secret, app.client_secret_hash) else None
