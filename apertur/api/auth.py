"""Who is calling /api/v1: an OAuth access token (RFC 6750) limited to its scopes, or a project's secret
API key with full access to its project. Either way one query, and the same :class:`Caller`."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from ninja.security.http import HttpAuthBase

from apertur.core import ratelimit
from apertur.core.errors import RateLimited
from apertur.core.tokens import Prefix
from apertur.oauth import scopes as scope_registry
from apertur.oauth.bearer import BearerError, authenticate, bearer_credentials
from apertur.projects.models import Project
from apertur.projects.selectors import api_key_by_secret

ALL_SCOPES = frozenset(scope_registry.SCOPES)
PER_CALLER = ratelimit.Limit("api-caller", 600, 60)


@dataclass(frozen=True, slots=True)
class Caller:
    project: Project
    scopes: frozenset[str]
    livemode: bool
    # Stable across token refreshes: the app for OAuth callers, the key for API keys. Used for
    # idempotency keys and rate limits.
    identity: str
    app_id: int | None = None  # the OAuth app of an access token; None for an API key

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise BearerError("insufficient_scope", f"This request needs the {scope} scope.", status=403, scope=scope)


def caller_from_header(authorization: str | None) -> Caller:
    value = bearer_credentials(authorization)  # RFC 6750 §2.1 for API keys too: a malformed header is refused
    if value.startswith((Prefix.LIVE_SECRET_KEY, Prefix.TEST_SECRET_KEY)):
        key = api_key_by_secret(value)
        if key is None:
            raise BearerError("invalid_token", "The API key is invalid or revoked.", status=401)
        return Caller(project=key.project, scopes=ALL_SCOPES, livemode=key.livemode, identity=f"key:{key.pk}")
    context = authenticate(authorization)
    return Caller(
        project=context.project,
        scopes=frozenset(context.scope_list),
        livemode=context.livemode,
        identity=f"app:{context.app_id}:project:{context.project.pk}",
        app_id=context.app_id,
    )


class ApiAuth(HttpAuthBase):
    """``Authorization: Bearer oat_…`` (with ``scope``) or ``Bearer aptr_live_sk_…``."""

    openapi_scheme = "bearer"

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__()

    def __call__(self, request: HttpRequest) -> Caller:
        caller = caller_from_header(request.headers.get("Authorization"))
        # Counted before the scope check, so a 403 carries the RateLimit-* fields too; a 429 carries them with
        # nothing remaining (docs/api.md: every response of a known caller has them).
        try:
            status = ratelimit.consume(PER_CALLER, caller.identity)
        except RateLimited as exc:
            exhausted = ratelimit.Status(limit=PER_CALLER.max_hits, remaining=0, reset=exc.retry_after)
            request.ratelimit_status = exhausted  # type: ignore[attr-defined]
            raise
        request.ratelimit_status = status  # type: ignore[attr-defined]
        caller.require(self.scope)
        return caller
