"""Bearer token authentication for the API (RFC 6750): the access token in the ``Authorization``
header only — never a query parameter or form field (§2.3 is not supported on purpose: URLs end up in
logs)."""

from __future__ import annotations

from dataclasses import dataclass

from apertur.core import tokens
from apertur.oauth.models import Token
from apertur.oauth.server import active_for_api
from apertur.oauth.tokens import access_is_live


class BearerError(Exception):
    """RFC 6750 §3.1 errors: ``invalid_request`` (400), ``invalid_token`` (401),
    ``insufficient_scope`` (403)."""

    def __init__(self, error: str, description: str, *, status: int, scope: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.scope = scope

    def www_authenticate(self) -> str:
        parts = ['realm="apertur"']
        if self.error != "missing_token":
            parts.append(f'error="{self.error}"')
            parts.append(f'error_description="{self.description}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return "Bearer " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class AccessContext:
    token: Token

    @property
    def scopes(self) -> list[str]:
        return self.token.scope_list

    @property
    def livemode(self) -> bool:
        return self.token.livemode

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise BearerError("insufficient_scope", f"This request needs the {scope} scope.", status=403, scope=scope)


def authenticate(authorization: str | None) -> AccessContext:
    """Validate the ``Authorization`` header value and return who is calling. One query."""
    if not authorization:
        raise BearerError("missing_token", "Send an access token: Authorization: Bearer oat_...", status=401)
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise BearerError("invalid_request", "Use the Bearer scheme: Authorization: Bearer oat_...", status=400)
    row = (
        Token.objects.select_related("app__partner", "connection", "project__plan", "user")
        .filter(access_token_hash=tokens.hash_secret(value.strip()))
        .first()
    )
    if row is None or not access_is_live(row):
        raise BearerError("invalid_token", "The access token is invalid, expired or revoked.", status=401)
    if not active_for_api(row):
        raise BearerError("invalid_token", "The access token is no longer valid.", status=401)
    return AccessContext(token=row)
