"""Bearer token authentication for the API (RFC 6750): the access token in the ``Authorization``
header only — never a query parameter or form field (§2.3 is not supported on purpose: URLs end up in
logs)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from apertur.core import clock, tokens
from apertur.oauth import token_cache
from apertur.oauth.compiled import CompiledLookup
from apertur.oauth.server import REALM, grant_stands
from apertur.oauth.tokens import access_is_live, bearer_row, fetch_for_bearer, find_for_bearer
from apertur.projects.models import Project


class BearerError(Exception):
    """RFC 6750 §3.1 errors: ``invalid_request`` (400), ``invalid_token`` (401),
    ``insufficient_scope`` (403); ``missing_token`` (401) is no credentials of the Bearer scheme at all (none, or
    another scheme), whose challenge carries no error code."""

    def __init__(self, error: str, description: str, *, status: int, scope: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.scope = scope

    def www_authenticate(self) -> str:
        parts = [f'realm="{REALM}"']
        if self.error != "missing_token":
            parts.append(f'error="{self.error}"')
            parts.append(f'error_description="{self.description}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return "Bearer " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class AccessContext:
    """Who is calling with an access token: the project (its plan loaded), the app and the scopes."""

    project: Project
    app_id: int
    scope_list: list[str]
    livemode: bool

    @property
    def scopes(self) -> list[str]:
        return self.scope_list

    def require(self, scope: str) -> None:
        if scope not in self.scope_list:
            raise BearerError("insufficient_scope", f"This request needs the {scope} scope.", status=403, scope=scope)


# The project (and plan) of a cached grant: read on every request, so plan changes are seen at once.
_project = CompiledLookup(lambda v: Project.objects.select_related("plan").filter(public_id=v))


#: RFC 6750 §2.1: ``b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def bearer_credentials(authorization: str | None) -> str:
    """The token of an ``Authorization`` header value, which must be ``Bearer`` 1*SP b64token (RFC 6750 §2.1;
    the scheme is case-insensitive, RFC 9110 §11.1). Raises :class:`BearerError`: no Bearer credentials at all
    (none, or another scheme) is ``missing_token``; ``Bearer`` with no token, or with anything but one b64token
    after it (a second word, a comma, a parameter, a non-ASCII character) is a malformed request,
    ``invalid_request`` (§3.1), never looked up as a token."""
    if not authorization:
        raise BearerError("missing_token", "Send an access token: Authorization: Bearer oat_...", status=401)
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        # RFC 6750 §3.1: a request "attempted using an unsupported authentication method" (Basic, Token …) lacks
        # Bearer credentials: 401 with the bare challenge, no error code, as when no header was sent.
        raise BearerError("missing_token", "Use the Bearer scheme: Authorization: Bearer oat_...", status=401)
    value = value.strip()
    if not value:
        raise BearerError("invalid_request", "Send the token after Bearer: Authorization: Bearer oat_...", status=400)
    if not _B64TOKEN.fullmatch(value):
        raise BearerError(
            "invalid_request",
            "Send one token after Bearer, with nothing else: Authorization: Bearer oat_...",
            status=400,
        )
    return value


def authenticate(authorization: str | None) -> AccessContext:
    """Validate the ``Authorization`` header value and return who is calling.

    One query (the token with its app, partner, connection, customer, project and plan, compiled once). With
    the token cache warm (apertur.oauth.token_cache): none in ``local`` mode; in ``shared`` mode no token
    query, only the project and its plan."""
    token_hash = tokens.hash_secret(bearer_credentials(authorization))
    now = clock.now()
    mode = token_cache.mode()
    if mode == "local":
        return _authenticate_local(token_hash, now)
    caching = mode == "shared"
    generation = ""
    if caching:
        cached, generation = token_cache.lookup(token_hash)
        if cached is not None and cached.expires_at > now.timestamp():
            project = _project.first(cached.project_public_id)
            if project is not None:
                return AccessContext(
                    project=project, app_id=cached.app_id, scope_list=cached.scopes.split(), livemode=cached.livemode
                )
    row: Any = find_for_bearer(token_hash)
    _check(row, now)
    if caching:
        grant = token_cache.CachedGrant(
            project_public_id=row.project.public_id,
            app_id=row.app_id,
            scopes=row.scopes,
            livemode=row.livemode,
            expires_at=row.access_expires_at.timestamp(),
        )
        token_cache.store(token_hash, generation, grant, now=now.timestamp())
    return AccessContext(project=row.project, app_id=row.app_id, scope_list=row.scope_list, livemode=row.livemode)


def _refusal(row: Any, now: dt.datetime) -> BearerError | None:
    """Why the token is refused, or None: it is live and its grant stands. Every request, whether its row came
    from the database or a cache."""
    if row is None or not access_is_live(row, at=now):
        return BearerError("invalid_token", "The access token is invalid, expired or revoked.", status=401)
    if not grant_stands(
        app_active=row.grant_app_active,
        partner_status=row.grant_partner_status,
        connection_revoked_at=row.grant_connection_revoked_at,
        user_active=row.grant_user_active,
    ):
        return BearerError("invalid_token", "The access token is no longer valid.", status=401)
    return None


def _check(row: Any, now: dt.datetime) -> None:
    refusal = _refusal(row, now)
    if refusal is not None:
        raise refusal


def _authenticate_local(token_hash: str, now: dt.datetime) -> AccessContext:
    """With the local token cache (apertur.oauth.token_cache.local_row): the bearer check's row from this
    process's memory, or from the database and kept if accepted; checked at ``now`` either way."""
    row: Any = token_cache.local_row(
        f"bearer:{token_hash}",
        fetch=lambda: fetch_for_bearer(token_hash),
        build=bearer_row,
        keep_until=lambda r: None if _refusal(r, now) else r.access_expires_at.timestamp(),
        now=now.timestamp(),
    )
    _check(row, now)
    return AccessContext(project=row.project, app_id=row.app_id, scope_list=row.scope_list, livemode=row.livemode)
