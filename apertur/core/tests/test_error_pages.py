"""The pages Django renders itself when something fails: finished pages of the site, with the right status."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


def _denied(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


urlpatterns = [path("test-boom", _boom), path("test-denied", _denied), path("", include("apertur.config.urls"))]


@pytest.mark.django_db
def test_a_server_error_shows_the_site_500_page(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    settings.DEBUG = False
    response = Client(raise_request_exception=False).get("/test-boom")
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong" in html and "Apertur" in html
    assert 'href="/"' in html  # a way home
    assert "boom" not in html  # nothing of the error itself


@pytest.mark.django_db
def test_a_permission_denied_shows_the_site_403_page(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    response = Client().get("/test-denied")
    assert response.status_code == 403
    html = response.content.decode()
    assert "You cannot open this page" in html and 'class="topbar"' in html
