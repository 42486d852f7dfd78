"""Apertur's URLs plus the benchmark's floor: a trivial Django JSON view served by the same app server,
through the same middleware, so ``/bench/floor`` is what any Django view costs here before it does work.

The benchmark drives 10,000s of requests a second from one loopback address with one client, which the
OAuth and API rate limits (per IP and per client, hundreds a minute) exist to stop. They stay in the path
(each request still counts its hits in the cache) but with budgets no run can spend, so the figures measure
the endpoints and not 429 answers.
"""

from __future__ import annotations

import dataclasses
import importlib

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_GET

from apertur.core.ratelimit import Limit

RATE_LIMITED_MODULES = ("apertur.oauth.limits", "apertur.api.auth")
UNSPENDABLE = 1_000_000_000


def _lift_rate_limits() -> None:
    for name in RATE_LIMITED_MODULES:
        module = importlib.import_module(name)
        for attr, value in list(vars(module).items()):
            if isinstance(value, Limit):
                setattr(module, attr, dataclasses.replace(value, max_hits=UNSPENDABLE))


_lift_rate_limits()


@require_GET
def floor(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "name": "floor"})


urlpatterns = [
    path("bench/floor", floor, name="bench-floor"),
    path("", include("apertur.config.urls")),
]
