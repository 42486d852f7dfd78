"""OAuth app registration: the partner's client credentials, redirect URIs, allowed domains and
publishable keys. Every change is audited in the same transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.db.models import Q

from apertur.accounts.models import User
from apertur.accounts.signals import TurnedOff
from apertur.core import audit, clock, ratelimit, tokens
from apertur.core.counts import ensure_room
from apertur.core.rolling import ROLL_OVERLAP_MESSAGE, check_replacing, roll_overlap_is_valid
from apertur.core.tokens import Prefix
from apertur.core.validation import Checks, clean_text
from apertur.core.validation import clean_website as clean_website_rule
from apertur.oauth.domains import validate_domain_patterns, validate_redirect_uris
from apertur.oauth.errors import AppLimitReached, AppNotFound, ConfirmationRequired, InvalidAppInput
from apertur.oauth.models import (
    APP_NAME_MAX_LENGTH,
    AllowedDomain,
    AuthorizationCode,
    KeyMode,
    OAuthApp,
    PublicKey,
    RedirectURI,
    Token,
)
from apertur.oauth.signals import app_lost_project
from apertur.partners.errors import PartnerNotApproved
from apertur.partners.models import Partner
from apertur.projects.models import Project

_KEY_PREFIX = {KeyMode.LIVE: Prefix.LIVE_PUBLIC_KEY, KeyMode.TEST: Prefix.TEST_PUBLIC_KEY}
#: OAuth apps one partner may register (docs/oauth-apps.md), deactivated ones included: an app per product and
#: environment is far below it.
MAX_APPS_PER_PARTNER = 50
#: Apps a partner creates in the portal in a day. The cap above is freed by deleting one, and the audit trail of each
#: creation and deletion stays: create-delete loops grew it without end. A hundred is every slot filled twice.
#: ``apertur app create`` (operators) is not counted.
APPS_CREATED_PER_PARTNER = ratelimit.Limit("oauth-app-create-partner", 100, 24 * 60 * 60)
#: Client secret rotations and public key regenerations of one app in an hour, each audited. A leak needs one; ten
#: leaves room for mistakes and for a partner rotating on a schedule.
CREDENTIAL_CHANGES_PER_APP = ratelimit.Limit("oauth-app-credentials", 10, 60 * 60)
#: Settings edits and reactivations of one app in an hour, each audited (an edit even when nothing changed). A
#: partner trying redirect URIs while building saves a few dozen times; a hundred bounds only a script. Deactivating
#: is never counted nor refused (it stops the app's credentials: what a partner does when something goes wrong);
#: staff in the admin and the demo are not counted.
APP_CHANGES_PER_APP = ratelimit.Limit("oauth-app-change", 100, 60 * 60)


@dataclass(frozen=True, slots=True)
class CreatedApp:
    app: OAuthApp
    client_secret: str  # shown once; only its hash is stored
    public_key: str
    test_public_key: str


@dataclass(frozen=True, slots=True)
class AppDetails:
    name: str
    description: str
    website: str
    redirect_uris: list[str]
    allowed_domains: list[str]


def clean_app_details(
    *, name: str, description: str, website: str, redirect_uris: Sequence[str], allowed_domains: Sequence[str]
) -> AppDetails:
    """An app's settings as stored, or ``InvalidAppInput``/``InvalidRedirectURI``/``InvalidDomainPattern`` for
    the first problem with every other one in its ``others``: the portal's form shows them all at once, each by
    its field. The one rule set for apps, whoever registers them (portal, CLI, demo)."""
    checks = Checks()
    clean_name = checks.run(
        partial(
            clean_text,
            name,
            low=2,
            high=APP_NAME_MAX_LENGTH,
            field="name",
            error=InvalidAppInput,
            collapse_spaces=True,
            message=f"Enter the app's name (2 to {APP_NAME_MAX_LENGTH} characters).",
        ),
        fallback="",
    )
    clean_description = checks.run(
        partial(
            clean_text,
            description,
            low=0,
            high=2000,
            field="description",
            error=InvalidAppInput,
            message="The description is at most 2,000 characters.",
        ),
        fallback="",
    )
    clean_website = (
        checks.run(partial(clean_website_rule, website, error=InvalidAppInput), fallback="") if website.strip() else ""
    )
    nothing: list[str] = []
    clean_uris = checks.run(partial(validate_redirect_uris, redirect_uris), fallback=nothing)
    clean_domains = checks.run(partial(validate_domain_patterns, allowed_domains), fallback=nothing)
    checks.done()
    return AppDetails(
        name=clean_name,
        description=clean_description,
        website=clean_website,
        redirect_uris=clean_uris,
        allowed_domains=clean_domains,
    )


def _require_approved(partner: Partner) -> None:
    if not partner.is_approved:
        raise PartnerNotApproved()


def _new_secret(app: OAuthApp) -> str:
    secret = tokens.generate(Prefix.CLIENT_SECRET, 48)
    app.client_secret_hash = tokens.hash_secret(secret)
    app.client_secret_last4 = tokens.last_four(secret)
    app.client_secret_rotated_at = clock.now()
    return secret


def _new_public_key(app: OAuthApp, mode: KeyMode) -> PublicKey:
    return PublicKey.objects.create(app=app, mode=mode, key=tokens.generate(_KEY_PREFIX[mode], 32))


def _replace_lists(app: OAuthApp, details: AppDetails) -> None:
    app.redirect_uris.exclude(uri__in=details.redirect_uris).delete()
    have = set(app.redirect_uris.values_list("uri", flat=True))
    RedirectURI.objects.bulk_create([RedirectURI(app=app, uri=u) for u in details.redirect_uris if u not in have])
    app.allowed_domains.exclude(pattern__in=details.allowed_domains).delete()
    have = set(app.allowed_domains.values_list("pattern", flat=True))
    AllowedDomain.objects.bulk_create(
        [AllowedDomain(app=app, pattern=p) for p in details.allowed_domains if p not in have]
    )


@transaction.atomic
def create_app(
    *,
    partner: Partner,
    name: str,
    redirect_uris: Sequence[str],
    allowed_domains: Sequence[str] = (),
    description: str = "",
    website: str = "",
    actor: User | None = None,
    ip: str | None = None,
    budgeted: bool = True,
) -> CreatedApp:
    """Register an app for an approved partner. Returns the client secret in clear this one time. Past
    :data:`APPS_CREATED_PER_PARTNER`: :class:`RateLimited`, nothing created; ``budgeted=False`` for operators
    (``apertur app create``, the demo)."""
    _require_approved(partner)
    details = clean_app_details(
        name=name,
        description=description,
        website=website,
        redirect_uris=redirect_uris,
        allowed_domains=allowed_domains,
    )
    ensure_room(
        owner=partner,
        existing=OAuthApp.objects.filter(partner=partner),
        limit=MAX_APPS_PER_PARTNER,
        error=AppLimitReached(
            f"A partner can have at most {MAX_APPS_PER_PARTNER} OAuth apps. Delete one you no longer use, then "
            "create the new one."
        ),
    )
    if budgeted:
        ratelimit.hit(APPS_CREATED_PER_PARTNER, str(partner.pk), what="new OAuth apps")
    app = OAuthApp(
        partner=partner,
        name=details.name,
        description=details.description,
        website=details.website,
        client_id=tokens.generate(Prefix.CLIENT_ID, 24),
    )
    secret = _new_secret(app)
    app.save()
    _replace_lists(app, details)
    live = _new_public_key(app, KeyMode.LIVE)
    test = _new_public_key(app, KeyMode.TEST)
    audit.record(
        action="oauth_app.created",
        obj=app,
        actor=actor or partner.user,
        ip=ip,
        data={
            "client_id": app.client_id,
            "redirect_uris": details.redirect_uris,
            "allowed_domains": details.allowed_domains,
        },
    )
    return CreatedApp(app=app, client_secret=secret, public_key=live.key, test_public_key=test.key)


@transaction.atomic
def update_app(
    *,
    app: OAuthApp,
    name: str,
    redirect_uris: Sequence[str],
    allowed_domains: Sequence[str],
    description: str = "",
    website: str = "",
    actor: User | None = None,
    ip: str | None = None,
    budgeted: bool = True,
) -> OAuthApp:
    """Replace the app's settings; audited ``oauth_app.updated``. Past :data:`APP_CHANGES_PER_APP`:
    :class:`RateLimited`, nothing changed; ``budgeted=False`` for operators (staff in the admin, the demo)."""
    details = clean_app_details(
        name=name,
        description=description,
        website=website,
        redirect_uris=redirect_uris,
        allowed_domains=allowed_domains,
    )
    app = OAuthApp.objects.select_for_update().get(pk=app.pk)
    if budgeted:  # counted once the input is known good: a refused change spends nothing
        ratelimit.hit(APP_CHANGES_PER_APP, str(app.pk), what="changes to this app")
    before = {
        "redirect_uris": list(app.redirect_uris.values_list("uri", flat=True)),
        "allowed_domains": list(app.allowed_domains.values_list("pattern", flat=True)),
    }
    app.name, app.description, app.website = details.name, details.description, details.website
    app.updated_at = clock.now()
    app.save()
    _replace_lists(app, details)
    audit.record(
        action="oauth_app.updated",
        obj=app,
        actor=actor,
        ip=ip,
        data={
            "before": before,
            "after": {"redirect_uris": details.redirect_uris, "allowed_domains": details.allowed_domains},
        },
    )
    return app


def rotate_secret(
    *,
    app: OAuthApp,
    actor: User | None = None,
    ip: str | None = None,
    expire_previous_in: dt.timedelta = dt.timedelta(0),
    replacing: str | None = None,
) -> str:
    """A new client secret (returned: shown once, only its hash is stored). The current one keeps authenticating
    the client for ``expire_previous_in`` (``core.rolling``: zero, the default, stops it when this commits; at most
    7 days), so the partner's servers can switch without a failed token request meanwhile. Rolling again during an
    overlap ends the older secret at once: at most two secrets work. Tokens already issued are not touched."""
    if not roll_overlap_is_valid(expire_previous_in):
        raise InvalidAppInput(ROLL_OVERLAP_MESSAGE, field="expire_previous_in")
    with transaction.atomic():
        app = OAuthApp.objects.select_for_update().get(pk=app.pk)
        check_replacing(current=app.client_secret_hash, replacing=replacing)  # the roll form's (core.rolling)
        ratelimit.hit(CREDENTIAL_CHANGES_PER_APP, str(app.pk), what="credential changes")
        now = clock.now()
        dropped_older = app.previous_secret_valid_until(now) is not None
        if expire_previous_in:
            app.previous_client_secret_hash = app.client_secret_hash
            app.previous_client_secret_last4 = app.client_secret_last4
            app.previous_client_secret_expires_at = now + expire_previous_in
        else:
            app.previous_client_secret_hash = app.previous_client_secret_last4 = ""
            app.previous_client_secret_expires_at = None
        app.previous_client_secret_last_used_at = None  # its use as the previous secret starts now
        secret = _new_secret(app)
        app.updated_at = now
        app.save(
            update_fields=[
                "client_secret_hash",
                "client_secret_last4",
                "client_secret_rotated_at",
                "previous_client_secret_hash",
                "previous_client_secret_last4",
                "previous_client_secret_expires_at",
                "previous_client_secret_last_used_at",
                "updated_at",
            ]
        )
        expires = app.previous_client_secret_expires_at
        audit.record(
            action="oauth_app.secret_rotated",
            obj=app,
            actor=actor,
            ip=ip,
            data={
                "last4": app.client_secret_last4,
                "previous_last4": app.previous_client_secret_last4 or None,
                "previous_secret_expires_at": expires.isoformat() if expires else None,
                "dropped_older_previous_secret": dropped_older,
            },
        )
    return secret


#: How often, at most, a use of an app's previous secret or a failed authentication of the client is written down:
#: a client's every request must not write a row, and the app's page needs the minute, not the millisecond.
CREDENTIAL_USE_INTERVAL = dt.timedelta(minutes=1)


def record_previous_secret_use(*, app: OAuthApp) -> None:
    """The client authenticated with the secret a roll replaced (``SecretMatch.PREVIOUS``): the app's page says
    when it was last used, so the partner knows whether a server still holds it before it stops working. Read
    with the credentials (``CREDENTIAL_FIELDS``), so a use within the interval costs no query. An app served
    from the token cache keeps the time it was cached with: the UPDATE is conditional on the stored time too,
    so it writes at most once a minute whatever the copy says (and across processes). It is conditional on the
    previous secret being still the one that matched: a roll committed since the credentials were read has made
    another secret the previous one, which this request did not present."""
    now = clock.now()
    last = app.previous_client_secret_last_used_at
    if last is None or now - last >= CREDENTIAL_USE_INTERVAL:
        recent = Q(previous_client_secret_last_used_at__gt=now - CREDENTIAL_USE_INTERVAL)
        OAuthApp.objects.filter(pk=app.pk, previous_client_secret_hash=app.previous_client_secret_hash).exclude(
            recent
        ).update(previous_client_secret_last_used_at=now)


def record_failed_authentication(*, app: OAuthApp, ip: str | None, endpoint: str) -> None:
    """A request named this client with a secret that does not authenticate it (wrong, or a roll's previous one
    past its overlap): kept for the app's page and audited, at most once a minute per app (the write is
    conditional on the last one's time, so concurrent failures write once). The answer to the request stays the
    same ``invalid_client`` as for an unknown client (RFC 6749 §5.2). The record and its audit event are one
    transaction (introspection calls this in autocommit)."""
    now = clock.now()
    recent = Q(last_failed_auth_at__gt=now - CREDENTIAL_USE_INTERVAL)
    with transaction.atomic():
        written = (
            OAuthApp.objects.filter(pk=app.pk).exclude(recent).update(last_failed_auth_at=now, last_failed_auth_ip=ip)
        )
        if written:
            audit.record(action="oauth_app.client_auth_failed", obj=app, ip=ip, data={"endpoint": endpoint})


def clear_expired_previous_secrets(at: dt.datetime) -> int:
    """Forget the hashes of rolled client secrets whose overlap has ended (the hourly housekeeping): they
    authenticate nothing more. The filter is on the expiry, so a roll made meanwhile is never cleared."""
    return OAuthApp.objects.filter(previous_client_secret_expires_at__lte=at).update(
        previous_client_secret_hash="", previous_client_secret_last4="", previous_client_secret_expires_at=None
    )


@transaction.atomic
def regenerate_public_key(
    *, app: OAuthApp, mode: KeyMode, actor: User | None = None, ip: str | None = None
) -> PublicKey:
    """Replace the app's live or test publishable key; the old one becomes ``invalid_public_key``. Counted with the
    secret's rotations (:data:`CREDENTIAL_CHANGES_PER_APP`)."""
    app = OAuthApp.objects.select_for_update().get(pk=app.pk)
    ratelimit.hit(CREDENTIAL_CHANGES_PER_APP, str(app.pk), what="credential changes")
    old = list(app.public_keys.filter(mode=mode, is_active=True))
    app.public_keys.filter(mode=mode, is_active=True).update(is_active=False, deactivated_at=clock.now())
    key = _new_public_key(app, mode)
    audit.record(
        action="oauth_app.public_key_regenerated",
        obj=app,
        actor=actor,
        ip=ip,
        data={"mode": str(mode), "old": [k.key for k in old], "new": key.key},
    )
    return key


def _set_active(*, app: OAuthApp, active: bool, actor: User | None, ip: str | None) -> OAuthApp:
    app = OAuthApp.objects.select_for_update().get(pk=app.pk)
    if app.is_active != active:
        if active:  # deactivating is never refused; reactivating an active app writes nothing, so spends nothing
            ratelimit.hit(APP_CHANGES_PER_APP, str(app.pk), what="changes to this app")
        app.is_active = active
        app.updated_at = clock.now()
        app.save(update_fields=["is_active", "updated_at"])
        audit.record(action="oauth_app.reactivated" if active else "oauth_app.deactivated", obj=app, actor=actor, ip=ip)
    return app


@transaction.atomic
def deactivate_app(*, app: OAuthApp, actor: User | None = None, ip: str | None = None) -> OAuthApp:
    """Credentials, keys and (once the OAuth server exists) tokens of the app stop working at once."""
    return _set_active(app=app, active=False, actor=actor, ip=ip)


@transaction.atomic
def reactivate_app(*, app: OAuthApp, actor: User | None = None, ip: str | None = None) -> OAuthApp:
    """Counted with the app's edits (:data:`APP_CHANGES_PER_APP`): past it, :class:`RateLimited`, still
    deactivated."""
    return _set_active(app=app, active=True, actor=actor, ip=ip)


@transaction.atomic
def delete_app(*, app: OAuthApp, confirm_name: str, actor: User | None = None, ip: str | None = None) -> None:
    """Delete for good. The caller must type the app's name, as GitHub asks for a repository's."""
    if confirm_name.strip() != app.name:
        raise ConfirmationRequired(f"Type {app.name} exactly to confirm.", field="confirm_name")
    record_app_deleted(app=app, actor=actor, ip=ip)
    app.delete()


def _wait_for_exchanges_in_flight(app: OAuthApp) -> None:
    """Before the delete reads what to remove with the app. A code exchange or a refresh in flight holds its code's
    or refresh token's row lock until it commits the token it issues, which the delete would not have read: the
    token's foreign keys then failed the delete (a 500, the app still there). Locking those rows first waits for
    such requests; the tokens they issued are then read and deleted with the app, and a request arriving meanwhile
    finds its code or token gone (``invalid_client``: the client no longer exists). FOR NO KEY UPDATE throughout:
    the token a request inserts checks its foreign keys to the app and the code (FOR KEY SHARE) when it commits,
    which FOR UPDATE would block while the delete waits for that request (a deadlock, as ``tokens.connect``
    explains)."""
    if not list(OAuthApp.objects.filter(pk=app.pk).select_for_update(no_key=True).values_list("pk", flat=True)):
        # Another deletion committed while this one waited for the row (two tabs, two staff): nothing to delete,
        # and no second audit event of it.
        raise AppNotFound("This app has already been deleted.")
    _lock_rows_in_flight(Q(app=app))


def _lock_rows_in_flight(rows: Q) -> None:
    """Wait for the code exchanges and refreshes in flight on the codes and tokens ``rows`` selects, by locking the
    rows such a request holds: a refresh token not yet rotated or revoked, an unused code (a row a request changes
    while the lock waits is re-read and skipped once that request has committed). Tokens first, then codes, as
    every caller does."""
    for found in (
        Token.objects.filter(rows, rotated_at__isnull=True, refresh_revoked_at__isnull=True),
        AuthorizationCode.objects.filter(rows, used_at__isnull=True),
    ):
        list(found.select_for_update(no_key=True).values_list("pk", flat=True))


def before_staff_delete(*, sender: type, instance: object, **_: object) -> None:
    """The receiver of ``core.signals.staff_deleting``: staff delete a project or an account in the admin, whose
    cascade takes the project's (the account's) connections, codes and tokens with it. A code exchange or a refresh
    in flight on one of those would commit a token the cascade had not read, whose foreign keys then failed the
    deletion (a 500 for staff, nothing deleted): such requests are waited for first, as :func:`delete_app` does.
    (A partner with apps, or its account, cannot be deleted there: its referral links, which the admin never
    deletes, hold it; ``test_admin.py`` keeps that true.)"""
    if sender is Project:
        _lock_rows_in_flight(Q(project=instance))
    elif sender is User:
        _lock_rows_in_flight(Q(project__owner=instance) | Q(user=instance))


def record_app_deleted(*, app: OAuthApp, actor: User | None = None, ip: str | None = None) -> None:
    """The audit event of an app deleted for good, by its partner (:func:`delete_app`) or by staff in the admin, in
    the deletion's transaction just before it: first the token requests in flight for the app are waited for
    (:func:`_wait_for_exchanges_in_flight`), so that the deletion reads the tokens they issue."""
    _wait_for_exchanges_in_flight(app)
    app_lost_project.send(sender=OAuthApp, app_id=app.pk, client_id=app.client_id, project_id=None)
    audit.record(
        action="oauth_app.deleted",
        obj=app,
        actor=actor,
        ip=ip,
        data={"client_id": app.client_id, "name": app.name},
    )


def turn_off_for_claimed_account(*, user: User) -> list[TurnedOff]:
    """An account claimed from whoever signed up with its address (``accounts.signals.claimed_from_signup``):
    what that person connected or built must stop answering to them.

    - every app connected to one of its projects is disconnected as the project page does it
      (:func:`~apertur.oauth.tokens.disconnect`: its codes withdrawn, its tokens dead at once, the token cache
      voided; audited ``oauth.connection_removed``): the partner behind it holds the tokens;
    - if the account is a partner, its OAuth apps are deactivated (:func:`deactivate_app`: client secret, public
      keys and tokens stop working; audited ``oauth_app.deactivated``): that person knows the client secrets.
      The owner may reactivate an app, after rotating its secret."""
    from apertur.oauth.models import Connection
    from apertur.oauth.tokens import disconnect

    connections = list(
        Connection.objects.filter(project__owner=user, revoked_at__isnull=True).select_related("app").order_by("pk")
    )
    for connection in connections:
        disconnect(connection=connection, actor=user)
    apps = list(OAuthApp.objects.filter(partner__user=user, is_active=True).order_by("pk"))
    for app in apps:
        deactivate_app(app=app, actor=user)
    return [
        TurnedOff.of(
            "oauth_connections_revoked",
            len(connections),
            one="connected app disconnected",
            many="connected apps disconnected",
        ),
        TurnedOff.of(
            "oauth_apps_deactivated",
            len(apps),
            one="OAuth app of your partner account deactivated",
            many="OAuth apps of your partner account deactivated",
        ),
    ]
