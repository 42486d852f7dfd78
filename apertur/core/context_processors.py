from typing import Any

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, Any]:
    return {"DEBUG": settings.DEBUG, "BASE_URL": settings.APERTUR_BASE_URL}
