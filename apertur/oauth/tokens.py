"""Issuing and revoking codes and tokens: the persistence side of the OAuth server.

Only SHA-256 hashes of codes, access tokens and refresh tokens are stored (ARCHITECTURE section 7).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q

from apertur.accounts.models import User
from apertur.core import audit, clock, housekeeping, tokens
from apertur.core.models import AuditEvent
from apertur.core.tokens import Prefix
from apertur.oauth import token_cache
from apertur.oauth.compiled import CompiledInsert, CompiledLookup, CompiledUpdate
from apertur.oauth.errors import AppNotFound
from apertur.oauth.models import CREDENTIAL_FIELDS, AuthorizationCode, Connection, OAuthApp, Token
from apertur.oauth.signals import app_lost_project
from apertur.projects.models import Plan, Project

CODE_TTL = dt.timedelta(minutes=10)  # RFC 6749 §4.1.2: "A maximum ... lifetime of 10 minutes"
ACCESS_TTL = dt.timedelta(hours=1)
REFRESH_IDLE_TTL = dt.timedelta(days=60)  # a refresh token unused for 60 days dies; each use renews it
#: How long a dead token row or code is kept before the housekeeping deletes it (:func:`prune_dead_tokens`).
DEAD_KEPT = dt.timedelta(days=30)


def new_access_token() -> str:
    return tokens.generate(Prefix.ACCESS_TOKEN, 40)


def new_refresh_token() -> str:
    return tokens.generate(Prefix.REFRESH_TOKEN, 48)


def new_code() -> str:
    return tokens.generate(Prefix.AUTHORIZATION_CODE, 40)


_insert_token = CompiledInsert(Token)
_insert_audit = CompiledInsert(AuditEvent)


def record_audit(*, action: str, obj: Any, ip: str | None = None, data: dict[str, Any] | None = None) -> None:
    """``apertur.core.audit.record`` (no actor: the token endpoints act for a client) with the INSERT built
    once: the token endpoint writes one per exchange and refresh."""
    _insert_audit.save(audit.event(action=action, obj=obj, ip=ip, data=data))


@transaction.atomic
def deny(*, app: OAuthApp, user: User, ip: str | None = None) -> None:
    """Record that the customer denied the app's request on the consent page (audited ``oauth.consent_denied``);
    nothing else changes: an existing connection keeps its scopes."""
    audit.record(action="oauth.consent_denied", obj=app, actor=user, ip=ip)


@transaction.atomic
def connect(*, app: OAuthApp, project: Project, user: User, scopes: list[str], ip: str | None = None) -> Connection:
    """Record the customer's consent: create the app × project connection or update it (re-authorizing
    replaces its scopes and brings a disconnected one back)."""
    now = clock.now()
    # The app's row first, FOR NO KEY UPDATE as services.delete_app takes it before reading what to delete: a
    # deletion in flight finishes first and this consent then finds no app (AppNotFound, not a connection to a
    # deleted app failing its foreign key at commit: a 500), and a deletion that comes second waits for this
    # consent, then deletes the connection and code it made. Consents to one app take turns for milliseconds.
    if not list(OAuthApp.objects.select_for_update(no_key=True).filter(pk=app.pk).values_list("pk", flat=True)):
        raise AppNotFound("This app no longer exists: its developer deleted it.")
    # FOR NO KEY UPDATE (PostgreSQL): a code exchange holds its code's row lock while its token INSERT checks
    # the foreign key to this row (FOR KEY SHARE), which FOR UPDATE would block, while withdrawing that code
    # waits for the exchange: a deadlock. This way the withdrawal just waits for the exchange to commit.
    connection, created = Connection.objects.select_for_update(no_key=True).get_or_create(
        app=app, project=project, defaults={"user": user, "scopes": " ".join(scopes), "created_at": now}
    )
    if not created:
        # Consenting again to fewer scopes takes effect at once: unused codes and token families holding more
        # die. Codes first: an exchange in flight finishes (its code is then used, not withdrawn) before the
        # families are read, so the tokens it issued are revoked too. Consenting again to the same or more
        # scopes leaves earlier codes alone (a second tab, a repeated authorization): their scopes are still
        # consented to.
        narrowed = set(connection.scope_list) - set(scopes)
        if narrowed:
            withdraw_codes(connection=connection)
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


def withdraw_codes(*, connection: Connection) -> int:
    """End the unused codes of a connection whose consent was withdrawn or narrowed. RFC 6749 §4.1.2 and §10.5
    bind a code to the authorization it came from, and RFC 9700 §2.2 limits a token to the privileges the
    resource owner granted: a code must not outlive its consent and bring back scopes the user took away. They
    expire now, which the token endpoint already checks with the code it reads (no query added to the
    exchange); used codes keep their ``used_at``, so a replay is still detected."""
    now = clock.now()
    return AuthorizationCode.objects.filter(connection=connection, used_at__isnull=True, expires_at__gt=now).update(
        expires_at=now
    )


def save_code(
    *,
    code: str,
    connection: Connection,
    user: User,
    scopes: list[str],
    redirect_uri: str,
    code_challenge: str,
    code_challenge_method: str,
    livemode: bool,
) -> AuthorizationCode:
    now = clock.now()
    return AuthorizationCode.objects.create(
        code_hash=tokens.hash_secret(code),
        connection=connection,
        app_id=connection.app_id,
        user=user,
        project_id=connection.project_id,
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
    row = Token(
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
        # ids, not objects: reading ``parent.authorization_code`` would cost a query per refresh
        authorization_code_id=code.pk if code is not None else (parent.authorization_code_id if parent else None),
        issued_at=now,
        access_expires_at=now + ACCESS_TTL,
        refresh_expires_at=now + REFRESH_IDLE_TTL,
    )
    return _insert_token.save(row)


#: How long after its refresh token expired a row is still revoked with its family (:func:`_revoke`): a refresh that
#: read it live just before may insert its successor a moment later. Far shorter than :data:`DEAD_KEPT`, so a
#: revocation never touches a row the housekeeping may be deleting.
REFRESH_IN_FLIGHT = dt.timedelta(days=1)


def _revoke(rows: Q) -> int:
    """Revoke every access and refresh token of ``rows``, including those a refresh in flight is issuing.

    On PostgreSQL (READ COMMITTED) an UPDATE that waited for a row lock sees only the rows that existed when it
    started: when a refresh of one of the rows holds its lock, the token that refresh inserts is missed by the
    UPDATE that waited, though not by the next statement. So the UPDATEs run again until none finds a row and no
    usable token is left: the row a refresh holds is one the refresh UPDATE waits for (its refresh token is not yet
    rotated), and once that refresh has committed, the token it inserted is found by the next round (the refresh
    UPDATE that waited skips the rotated row and may count nothing: a round that counts nothing ends the loop only
    if no usable token is left). On SQLite writers take turns and the second round finds nothing.

    Only tokens still usable are marked: an expired one refuses itself, and the rows whose every token is dead are
    the housekeeping's to delete (:func:`prune_dead_tokens`). Marking them too had this UPDATE lock rows a pass
    may be deleting, in another order than the pass: a deadlock, and a revocation rolled back. A refresh token that
    expired less than :data:`REFRESH_IN_FLIGHT` ago still counts as usable here (a refresh may have read it live)."""
    now = clock.now()
    access_total = refresh_total = 0
    live_access = Q(access_revoked_at__isnull=True, access_expires_at__gt=now)
    live_refresh = Q(
        refresh_revoked_at__isnull=True,
        refresh_token_hash__isnull=False,
        refresh_expires_at__gt=now - REFRESH_IN_FLIGHT,
    )
    while True:
        access = Token.objects.filter(rows, live_access).update(access_revoked_at=now)
        refresh = Token.objects.filter(rows, live_refresh).update(refresh_revoked_at=now)
        access_total += access
        refresh_total += refresh
        if not access and not refresh and not Token.objects.filter(rows).filter(live_access | live_refresh).exists():
            break
    if access_total:
        token_cache.invalidate_all()
    return max(access_total, refresh_total)


def revoke_family(*, family: uuid.UUID) -> int:
    return _revoke(Q(family=family))


def revoke_from_code(*, code: AuthorizationCode) -> int:
    """RFC 6749 §4.1.2: a code used twice revokes every token issued from it (and their rotations)."""
    families = Token.objects.filter(authorization_code=code).values("family")
    return _revoke(Q(family__in=families))


def revoke_access(*, token: Token) -> None:
    if Token.objects.filter(pk=token.pk, access_revoked_at__isnull=True).update(access_revoked_at=clock.now()):
        token_cache.invalidate_all()


_rotate = CompiledUpdate(Token, ("refresh_revoked_at", "rotated_at"))
_code_used = CompiledUpdate(AuthorizationCode, ("used_at",))


def rotate(*, token: Token) -> None:
    """Retire the refresh token of a row (the access token stays valid until it expires)."""
    now = clock.now()
    _rotate.run(token.pk, now, now)


def mark_code_used(*, code: AuthorizationCode) -> None:
    _code_used.run(code.pk, clock.now())


# One query each, compiled once (apertur.oauth.compiled), with what their callers read joined in, and only
# the columns they read (each timestamp column costs a conversion, each joined row an instance; a deferred
# column read anyway would cost a query: the query-count tests would see it).
#: The plan as the token response and the API report it (``Plan.as_json``), read through the project.
PLAN_COLUMNS = tuple(f"project__plan__{field.name}" for field in Plan._meta.concrete_fields)
# Introspection and revocation read these token columns, the connection (revocation records its audit event
# on it), and what they report or check of the app, partner, customer and project as annotations: one
# query, two instances (a deferred column would cost a query when read: the query-count tests would see it).
_REPORTED = (
    "scopes",
    "refresh_scopes",
    "livemode",
    "family",
    "app_id",
    "connection_id",
    "project_id",
    "user_id",
    "issued_at",
    "access_expires_at",
    "refresh_expires_at",
    "access_revoked_at",
    "refresh_revoked_at",
    "connection__revoked_at",
)
#: The app a code or token was issued to, read with it: whether its grant still stands (app active, partner
#: approved) and its credentials. When that app is the client presenting the code or token, client
#: authentication needs no query of its own (``apertur.oauth.server.presented_client``).
APP_CREDENTIALS = {
    "grant_app_active": F("app__is_active"),
    "grant_partner_status": F("app__partner__status"),
    "app_client_id": F("app__client_id"),
    **{f"app_{name}": F(f"app__{name}") for name in CREDENTIAL_FIELDS},
}
_REPORTED_ANNOTATIONS = {
    **APP_CREDENTIALS,
    "grant_user_active": F("user__is_active"),
    "report_username": F("user__email"),
    "report_sub": F("user__public_id"),
    "report_project_id": F("project__public_id"),
}


def _reported_by(hash_column: str) -> CompiledLookup[Token]:
    return CompiledLookup(
        lambda v: (
            Token.objects.select_related("connection")
            .only(*_REPORTED)
            .annotate(**_REPORTED_ANNOTATIONS)
            .filter(**{hash_column: v})
        )
    )


_by_access = _reported_by("access_token_hash")
_by_refresh = _reported_by("refresh_token_hash")

# A refresh reads the old token's grant (scopes, family, expiry, rotation), its connection (for the new
# token and the audit event), whether the customer is still active, the project and plan it reports, and its
# app's credentials (the client authenticates against them: APP_CREDENTIALS).
# The row lock is on the token only (``of=self``): locking the joined plan row would make every refresh of
# every project on that plan wait for each other on PostgreSQL.
_by_refresh_locked = CompiledLookup(
    lambda v: (
        Token.objects.select_related("connection", "user", "project__plan")
        .only(
            "scopes",
            "refresh_scopes",
            "livemode",
            "family",
            "app_id",
            "connection_id",
            "project_id",
            "user_id",
            "authorization_code_id",
            "refresh_expires_at",
            "refresh_revoked_at",
            "rotated_at",
            "connection__app_id",
            "connection__project_id",
            "connection__user_id",
            "connection__revoked_at",
            "user__is_active",
            "project__public_id",
            *PLAN_COLUMNS,
        )
        .annotate(**APP_CREDENTIALS)
        .select_for_update(of=("self",))
        .filter(refresh_token_hash=v)
    )
)


def find_by_access_token(value: str) -> Token | None:
    return _by_access.first(tokens.hash_secret(value))


def fetch_reported_by_access_hash(token_hash: str) -> tuple[Any, ...] | None:
    """:func:`find_by_access_token`'s row as values, which the local token cache keeps (introspection)."""
    return _by_access.fetch(token_hash)


def reported_row(values: tuple[Any, ...]) -> Token:
    """New instances from :func:`fetch_reported_by_access_hash`'s values: what :func:`find_by_access_token`
    returns."""
    return _by_access.build(values)


# The bearer check reads the token's expiry, revocation, scopes and ids, and — as annotations, not as model
# instances — the app's and partner's state, the connection's revocation and the customer's state; the caller
# gets the whole project and its plan. Nothing else is selected or built (three instances instead of seven on
# the API's hottest path); the token never leaves apertur.oauth.bearer.
_bearer = CompiledLookup(
    lambda v: (
        Token.objects.select_related("project__plan")
        .only(
            "scopes",
            "livemode",
            "app_id",
            "project_id",
            "access_expires_at",
            "access_revoked_at",
            "project",
        )
        .annotate(
            grant_app_active=F("app__is_active"),
            grant_partner_status=F("app__partner__status"),
            grant_connection_revoked_at=F("connection__revoked_at"),
            grant_user_active=F("user__is_active"),
        )
        .filter(access_token_hash=v)
    )
)


def find_for_bearer(token_hash: str) -> Token | None:
    return _bearer.first(token_hash)


def fetch_for_bearer(token_hash: str) -> tuple[Any, ...] | None:
    """The bearer check's row as values, which the local token cache keeps (apertur.oauth.token_cache)."""
    return _bearer.fetch(token_hash)


def bearer_row(values: tuple[Any, ...]) -> Token:
    """New instances from :func:`fetch_for_bearer`'s values: what :func:`find_for_bearer` returns."""
    return _bearer.build(values)


def find_by_refresh_token(value: str, *, lock: bool = False) -> Token | None:
    return (_by_refresh_locked if lock else _by_refresh).first(tokens.hash_secret(value))


def access_is_live(token: Token, *, at: dt.datetime | None = None) -> bool:
    return token.access_revoked_at is None and token.access_expires_at > (at or clock.now())


def refresh_is_live(token: Token, *, at: dt.datetime | None = None) -> bool:
    now = at or clock.now()
    return token.refresh_revoked_at is None and token.refresh_expires_at is not None and token.refresh_expires_at > now


@transaction.atomic
def disconnect(*, connection: Connection, actor: User | None, ip: str | None = None) -> Connection:
    """The customer removes an app from a project: the connection, its unused codes and every token it holds
    die at once (a reconnection later does not bring the codes back)."""
    # NO KEY and codes before tokens: as in connect().
    connection = Connection.objects.select_for_update(no_key=True).get(pk=connection.pk)
    if connection.revoked_at is None:
        connection.revoked_at = clock.now()
        connection.save(update_fields=["revoked_at"])
        codes = withdraw_codes(connection=connection)
        count = _revoke(Q(connection=connection))
        audit.record(
            action="oauth.connection_removed",
            obj=connection,
            actor=actor,
            ip=ip,
            data={"client_id": connection.app.client_id, "tokens_revoked": count, "codes_withdrawn": codes},
        )
        app_lost_project.send(
            sender=Connection,
            app_id=connection.app_id,
            client_id=connection.app.client_id,
            project_id=connection.project_id,
        )
    return connection


def prune_dead_tokens(at: dt.datetime) -> int:
    """The hourly housekeeping's pass for token rows (every refresh adds one: a connection refreshed hourly leaves
    24 a day). A row is deleted :data:`DEAD_KEPT` after it can no longer be used: its access token expired and its
    refresh token (if any) expired, was revoked or was rotated. Until then a replay is still recognised: a rotated
    refresh token presented again revokes its family (RFC 9700 §4.14.2), so that check holds for 30 days after the
    rotation; afterwards the token is unknown (the same ``invalid_grant``, and nothing to revoke that a live
    refresh could not have revoked). Live rows, the family's newest row included, are never touched."""
    cutoff = at - DEAD_KEPT
    dead = Token.objects.filter(access_expires_at__lt=cutoff).filter(
        Q(refresh_token_hash__isnull=True) | Q(refresh_expires_at__lt=cutoff) | Q(refresh_revoked_at__lt=cutoff)
    )
    with token_cache.deleting_dead_rows():  # no cached check to void: each of them already refuses its token
        return housekeeping.delete_in_batches(dead)


def prune_dead_codes(at: dt.datetime) -> int:
    """The hourly housekeeping's pass for authorization codes: a code is deleted :data:`DEAD_KEPT` after it
    expired, once no token row issued from it is left (:func:`prune_dead_tokens`). A used code is kept as long as
    its tokens are: RFC 6749 §4.1.2 has a code used twice revoke what was issued from it, which needs the code."""
    issued = Token.objects.filter(authorization_code=OuterRef("pk"))
    return housekeeping.delete_in_batches(
        AuthorizationCode.objects.filter(expires_at__lt=at - DEAD_KEPT).exclude(Exists(issued))
    )
