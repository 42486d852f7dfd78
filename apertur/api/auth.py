"""API authentication: OAuth access tokens (RFC 6750), each operation naming the scope it needs."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security.http import HttpAuthBase

from apertur.oauth.bearer import AccessContext, authenticate


class OAuthToken(HttpAuthBase):
    """``Authorization: Bearer oat_…`` with ``scope``; raises :class:`BearerError` (answered by the
    API's error handler with ``WWW-Authenticate``)."""

    openapi_scheme = "bearer"

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__()

    def __call__(self, request: HttpRequest) -> AccessContext:
        context = authenticate(request.headers.get("Authorization"))
        context.require(self.scope)
        return context
