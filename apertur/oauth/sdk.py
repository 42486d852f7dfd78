"""Serving the aptr-connect browser SDK built into ``static/sdk/aptr-connect.js``.

``/sdk/aptr-connect.js`` always serves the current version with a short cache, so fixes reach every
partner within minutes; ``/sdk/v<version>/aptr-connect.js`` never changes and is cached for a year, for
partners who pin a version with Subresource Integrity. Every released version stays there
(``static/sdk/v<version>/aptr-connect.js``, written once by the SDK build, which refuses to change one): a new
release must not break a page that pinned an older one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

SHORT_CACHE = "public, max-age=300"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Bundle:
    body: bytes
    version: str

    @property
    def integrity(self) -> str:
        """The Subresource Integrity value for ``<script integrity=…>``."""
        return "sha384-" + base64.b64encode(hashlib.sha384(self.body).digest()).decode()


@lru_cache(maxsize=1)
def bundle() -> Bundle:
    path = finders.find("sdk/aptr-connect.js")
    if not path:
        raise Http404("The SDK bundle is missing; run the SDK build.")
    with open(str(path), "rb") as fh:
        body = fh.read()
    match = re.match(rb"/\*! aptr-connect v(\d+\.\d+\.\d+)", body)
    if not match:
        raise Http404("The SDK bundle has no version banner.")
    return Bundle(body=body, version=match.group(1).decode())


def _serve(body: bytes, cache: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = cache
    # Any site may load the script, also with integrity= and crossorigin= (which need CORS).
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@require_safe
def latest(request: HttpRequest) -> HttpResponse:
    return _serve(bundle().body, SHORT_CACHE)


_VERSION = re.compile(r"\d{1,4}\.\d{1,4}\.\d{1,4}")


@lru_cache(maxsize=32)
def released(version: str) -> bytes | None:
    """The bytes of a released version, or None. ``version`` is checked to be x.y.z first (it comes from the
    URL), so it can only name a file under ``sdk/``."""
    if not _VERSION.fullmatch(version):
        return None
    path = finders.find(f"sdk/v{version}/aptr-connect.js")
    if not path:
        return None
    with open(str(path), "rb") as fh:
        return fh.read()


@require_safe
def pinned(request: HttpRequest, version: str) -> HttpResponse:
    body = released(version)
    if body is None:
        raise Http404(f"aptr-connect v{version} is not available; the current version is v{bundle().version}.")
    return _serve(body, IMMUTABLE_CACHE)
