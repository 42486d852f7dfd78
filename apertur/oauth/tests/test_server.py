"""Pieces of apertur.oauth.server that stand in for Django's own request parsing on the token endpoints."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import BadRequest, TooManyFieldsSent
from django.test import RequestFactory

from apertur.oauth.server import EnvironHeaders, form_params


def post(body: bytes, content_type: str) -> Any:
    # CONTENT_TYPE given outright: the factory leaves it out of a request without a body.
    return RequestFactory().generic(
        "POST", "/oauth/token", data=body, content_type=content_type, CONTENT_TYPE=content_type
    )


BODIES = [
    b"",
    b"a=1&b=&c&a=2",
    b"x=%20y+z&%C3%A9=%E2%82%AC&plus=a%2Bb",
    b"bad=%FF%FE&ok=1",
    b"raw=\xff\xfe&k=v",
    b";a=1;b=2&c=3",
    b"token=oat_abc&token_type_hint=access_token&client_id=aptr_ci_x&client_secret=aptr_cs_y",
]


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("charset", ["", "; charset=utf-8", "; charset=iso-8859-1"])
def test_form_params_is_what_django_parses(body: bytes, charset: str) -> None:
    content_type = "application/x-www-form-urlencoded" + charset
    request = post(body, content_type)
    if "iso-8859-1" in charset:  # Django refuses a form body in any charset but UTF-8
        with pytest.raises(BadRequest):
            _ = request.POST
        with pytest.raises(BadRequest):
            form_params(post(body, content_type))
        return
    ours = form_params(post(body, content_type))
    assert ours == {k: request.POST.getlist(k) for k in request.POST}


def test_form_params_keeps_djangos_field_limit(settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3
    body = b"a=1&b=2&c=3&d=4"
    content_type = "application/x-www-form-urlencoded"
    with pytest.raises(TooManyFieldsSent):
        form_params(post(body, content_type))
    with pytest.raises(TooManyFieldsSent):
        _ = post(body, content_type).POST


def test_environ_headers_read_like_djangos() -> None:
    request = RequestFactory().post(
        "/oauth/token", data=b"", content_type="application/x-www-form-urlencoded", HTTP_AUTHORIZATION="Basic abc"
    )
    headers = EnvironHeaders(request.META)
    for name in ("Authorization", "authorization", "Content-Type", "X-Missing"):
        assert headers.get(name) == request.headers.get(name)
    assert dict(headers) == dict(request.headers)
    assert bool(EnvironHeaders({}))
