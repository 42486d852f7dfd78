"""Issuing and revoking codes and tokens: the persistence side of the OAuth server.

Only SHA-256 hashes of codes, access tokens and refresh tokens are stored (ARCHITECTURE section 7).
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import transaction
from django.db.models import Q

from apertur.accounts.models import User
from apertur.core import audit, clock, tokens
from apertur.core.tokens import Prefix
from apertur.oauth.models import AuthorizationCode, Connection, OAuthApp, Token
from apertur.projects.models import Project

CODE_TTL = dt.timedelta(minutes=10)  # RFC 6749 §4.1.2: "A maximum ... lifetime of 10 minutes"
ACCESS_TTL = dt.timedelta(hours=1)
REFRESH_IDLE_TTL = dt.timedelta(days=60)  # a refresh token unused for 60 days dies; each use renews it


def new_access_token() -> str:
    return tokens.generate(Prefix.ACCESS_TOKEN, 40)


def new_refresh_token() -> str:
    return tokens.generate(Prefix.REFRESH_TOKEN, 48)


def new_code() -> str:
    return tokens.generate(Prefix.AUTHORIZATION_CODE, 40)


@transaction.atomic
def connect(*, app: OAuthApp, project: Project, user: User, scopes: list[str], ip: str | None = None) -> Connection:
    """Record the customer's consent: create the app × project connection or update it (re-authorizing
    replaces its scopes and brings a disconnected one back)."""
    now = clock.now()
    connection, created = Connection.objects.select_for_update().get_or_create(
        app=app, project=project, defaults={"user": user, "scopes": " ".join(scopes), "created_at": now}
    )
    if not created:
        # Consenting again to fewer scopes takes effect at once: token families holding more die.
        narrowed = set(connection.scope_list) - set(scopes)
        if narrowed:
            for family in (
                Token.objects.filter(connection=connection, refresh_revoked_at__isnull=True)
                .values_list("family", flat=True)
                .distinct()
            ):
                revoke_family(family=family)
        connection.user = user
        connection.scopes = " ".join(scopes)
        connection.updated_at = now
        if connection.revoked_at is not None:
            connection.revoked_at = None
            connection.created_at = now
        connection.save()
    audit.record(
        action="oauth.consent_granted",
        obj=connection,
        actor=user,
        ip=ip,
        data={"client_id": app.client_id, "project": project.public_id, "scopes": scopes},
    )
    return connection


def save_code(
    *,
    code: str,
    app: OAuthApp,
    user: User,
    project: Project,
    scopes: list[str],
    redirect_uri: str,
    code_challenge: str,
    code_challenge_method: str,
    livemode: bool,
) -> AuthorizationCode:
    now = clock.now()
    return AuthorizationCode.objects.create(
        code_hash=tokens.hash_secret(code),
        app=app,
        user=user,
        project=project,
        scopes=" ".join(scopes),
        redirect_uri=redirect_uri,
        code_challenge=code_challenge,
        code_challenge_method=code_challenge_method,
        livemode=livemode,
        created_at=now,
        expires_at=now + CODE_TTL,
    )


def issue(
    *,
    connection: Connection,
    scopes: list[str],
    livemode: bool,
    access_token: str,
    refresh_token: str,
    code: AuthorizationCode | None = None,
    parent: Token | None = None,
) -> Token:
    now = clock.now()
    refresh_scopes = " ".join(parent.refresh_scope_list) if parent else ""
    return Token.objects.create(
        refresh_scopes=refresh_scopes if refresh_scopes != " ".join(scopes) else "",
        access_token_hash=tokens.hash_secret(access_token),
        refresh_token_hash=tokens.hash_secret(refresh_token),
        app_id=connection.app_id,
        connection=connection,
        project_id=connection.project_id,
        user_id=connection.user_id,
        scopes=" ".join(scopes),
        livemode=livemode,
        family=parent.family if parent else uuid.uuid4(),
        authorization_code=code if code is not None else (parent.authorization_code if parent else None),
        parent=parent,
        issued_at=now,
        access_expires_at=now + ACCESS_TTL,
        refresh_expires_at=now + REFRESH_IDLE_TTL,
    )


def _revoke(rows: Q) -> int:
    now = clock.now()
    access = Token.objects.filter(rows, access_revoked_at__isnull=True).update(access_revoked_at=now)
    refresh = Token.objects.filter(rows, refresh_revoked_at__isnull=True).update(refresh_revoked_at=now)
    return max(access, refresh)


def revoke_family(*, family: uuid.UUID) -> int:
    return _revoke(Q(family=family))


def revoke_from_code(*, code: AuthorizationCode) -> int:
    """RFC 6749 §4.1.2: a code used twice revokes every token issued from it (and their rotations)."""
    families = Token.objects.filter(authorization_code=code).values("family")
    return _revoke(Q(family__in=families))


def revoke_access(*, token: Token) -> None:
    Token.objects.filter(pk=token.pk, access_revoked_at__isnull=True).update(access_revoked_at=clock.now())


def rotate(*, token: Token) -> None:
    now = clock.now()
    Token.objects.filter(pk=token.pk).update(refresh_revoked_at=now, rotated_at=now)


def find_by_access_token(value: str) -> Token | None:
    return Token.objects.filter(access_token_hash=tokens.hash_secret(value)).first()


def find_by_refresh_token(value: str, *, lock: bool = False) -> Token | None:
    qs = Token.objects.filter(refresh_token_hash=tokens.hash_secret(value))
    if lock:
        qs = qs.select_for_update()
    return qs.first()


def access_is_live(token: Token, *, at: dt.datetime | None = None) -> bool:
    return token.access_revoked_at is None and token.access_expires_at > (at or clock.now())


def refresh_is_live(token: Token, *, at: dt.datetime | None = None) -> bool:
    now = at or clock.now()
    return token.refresh_revoked_at is None and token.refresh_expires_at is not None and token.refresh_expires_at > now


@transaction.atomic
def disconnect(*, connection: Connection, actor: User | None, ip: str | None = None) -> Connection:
    """The customer removes an app from a project: the connection and every token it holds die at once."""
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    if connection.revoked_at is None:
        connection.revoked_at = clock.now()
        connection.save(update_fields=["revoked_at"])
        count = _revoke(Q(connection=connection))
        audit.record(
            action="oauth.connection_removed",
            obj=connection,
            actor=actor,
            ip=ip,
            data={"client_id": connection.app.client_id, "tokens_revoked": count},
        )
    return connection
