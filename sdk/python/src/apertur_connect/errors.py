"""Every error the SDK raises is an :class:`AperturError` with a stable ``code``, a ``message``, the HTTP
``status`` (when there was an answer) and Apertur's ``request_id`` (quote it to support).

One class per family, so partners catch what they can act on::

    AperturError
    ├── OAuthError            the token or revocation endpoint refused (RFC 6749 §5.2)
    │   ├── InvalidGrant      code or refresh token invalid, expired, used or revoked: connect again
    │   ├── InvalidClient     wrong client id or secret
    │   ├── InvalidScope
    │   └── InvalidRequest
    ├── ApiError              an /api/v1 call failed
    │   ├── AuthenticationError   401: the token is invalid even after a refresh
    │   ├── InsufficientScope     403: the connection lacks ``scope``
    │   ├── PermissionDenied      403 (other)
    │   ├── NotFound              404
    │   ├── Conflict              409
    │   ├── ValidationError       400/422, with ``field``
    │   ├── RateLimited           429, with ``retry_after`` (also raised by the OAuth endpoints)
    │   └── ServerError           5xx
    ├── NetworkError          Apertur could not be reached (``code == "apertur_unreachable"``)
    ├── NotConnected          the token store has no tokens for this connection
    └── WebhookVerificationError  a webhook's signature or timestamp is not acceptable
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class AperturError(Exception):
    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        field: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.request_id = request_id
        self.field = field
        self.body = body

    def __str__(self) -> str:
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.code}: {self.message}{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, status={self.status!r})"


class OAuthError(AperturError):
    code = "oauth_error"


class InvalidGrant(OAuthError):
    code = "invalid_grant"


class InvalidClient(OAuthError):
    code = "invalid_client"


class InvalidScope(OAuthError):
    code = "invalid_scope"


class InvalidRequest(OAuthError):
    code = "invalid_request"


class ApiError(AperturError):
    code = "api_error"


class AuthenticationError(ApiError):
    code = "invalid_token"


class InsufficientScope(ApiError):
    code = "insufficient_scope"

    def __init__(self, message: str, *, scope: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.scope = scope


class PermissionDenied(ApiError):
    code = "forbidden"


class NotFound(ApiError):
    code = "not_found"


class Conflict(ApiError):
    code = "conflict"


class ValidationError(ApiError):
    code = "validation_error"


class RateLimited(ApiError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    code = "server_error"


class NetworkError(AperturError):
    code = "apertur_unreachable"


class NotConnected(AperturError):
    code = "not_connected"


class WebhookVerificationError(AperturError):
    code = "invalid_webhook"


_OAUTH: dict[str, type[OAuthError]] = {
    "invalid_grant": InvalidGrant,
    "invalid_client": InvalidClient,
    "unauthorized_client": InvalidClient,
    "invalid_scope": InvalidScope,
    "invalid_request": InvalidRequest,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
}


def retry_after_seconds(response: httpx.Response, default: float = 1.0) -> float:
    """``Retry-After`` in seconds (RFC 9110 §10.2.3; the HTTP-date form is treated as the default)."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _www_authenticate_scope(response: httpx.Response) -> str | None:
    header = response.headers.get("WWW-Authenticate", "")
    marker = 'scope="'
    if marker not in header:
        return None
    scope: str = header.split(marker, 1)[1].split('"', 1)[0]
    return scope


def from_response(response: httpx.Response) -> AperturError:
    """Map an error answer to its class. OAuth endpoints answer ``{"error", "error_description"}``
    (RFC 6749 §5.2), the API ``{"error": {"code", "message", "field", "request_id"}}``."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, ValueError):
        body = None
    status = response.status_code
    request_id = response.headers.get("X-Request-Id")
    error = body.get("error") if isinstance(body, dict) else None
    kwargs: dict[str, Any] = {"status": status, "request_id": request_id, "body": body}
    if isinstance(error, str):  # the OAuth shape
        message = str(body.get("error_description") or error) if isinstance(body, dict) else error
        if status == 429 or error == "rate_limited":
            return RateLimited(message, retry_after=retry_after_seconds(response), code=error, **kwargs)
        oauth_class = _OAUTH.get(error, OAuthError)
        return oauth_class(message, code=error, **kwargs)
    if isinstance(error, dict):
        code = str(error.get("code") or "api_error")
        message = str(error.get("message") or f"Apertur answered HTTP {status}.")
        kwargs["request_id"] = error.get("request_id") or request_id
        kwargs["field"] = error.get("field")
    else:
        code = {429: "rate_limited"}.get(status, "server_error" if status >= 500 else "api_error")
        message = f"Apertur answered HTTP {status}."
    if status == 429:
        return RateLimited(message, retry_after=retry_after_seconds(response), code=code, **kwargs)
    if code == "insufficient_scope":
        return InsufficientScope(message, scope=_www_authenticate_scope(response), code=code, **kwargs)
    if status >= 500:
        return ServerError(message, code=code, **kwargs)
    api_class = _BY_STATUS.get(status, ApiError)
    return api_class(message, code=code, **kwargs)
