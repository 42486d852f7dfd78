"""Request ids and rate-limit headers for /api/."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apertur.core import tokens

logger = logging.getLogger("apertur.api")
_VALID_ID = re.compile(r"^[A-Za-z0-9_.-]{8,64}$")


class ApiRequestMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if _VALID_ID.match(incoming) else f"req_{tokens.random_string(20)}"
        request.request_id = request_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-Id"] = request_id
        status = getattr(request, "ratelimit_status", None)
        if status is not None:
            for name, value in status.headers().items():
                response[name] = value
        logger.info("api %s %s %s %s", request_id, request.method, request.path, response.status_code)
        return response
