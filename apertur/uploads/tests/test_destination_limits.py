"""How many destinations a project may have, per mode: one rule for both kinds (``limit_reached``, 409), shown on
the page, and a refusal creates nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.core.errors import AperturError
from apertur.projects.services import create_project
from apertur.testing import make_user
from apertur.uploads import destinations
from apertur.uploads.models import Destination

pytestmark = pytest.mark.django_db
URL = "https://hooks.example.com/in"


def _s3(project, **kwargs):  # type: ignore[no-untyped-def]
    return destinations.create_s3_destination(
        project=project, name="Bucket", bucket="photos", access_key_id="AKIA", secret_access_key="secret", **kwargs
    )


def test_destinations_of_both_kinds_up_to_the_limit_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(destinations, "MAX_DESTINATIONS_PER_PROJECT", 2, raising=False)
    project = create_project(owner=make_user(), name="Weddings")
    first = destinations.create_https_destination(project=project, name="Archive", url=URL)
    _s3(project)
    for create in (
        lambda: destinations.create_https_destination(project=project, name="x", url=URL),
        lambda: _s3(project),
    ):
        with pytest.raises(AperturError) as refused:
            create()
        assert (refused.value.code, refused.value.status) == ("limit_reached", 409)
        assert "at most 2 destinations" in refused.value.message
    assert Destination.objects.filter(project=project).count() == 2
    _s3(project, livemode=False)  # test mode counts apart
    _s3(project, livemode=False)
    with pytest.raises(AperturError) as refused:
        _s3(project, livemode=False)
    assert "at most 2 test-mode destinations" in refused.value.message  # as the webhook endpoints' limit says it
    _s3(create_project(owner=make_user(), name="Other"))  # per project
    destinations.delete_destination(destination=first)
    _s3(project)  # removing one frees its slot


def test_the_page_shows_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(destinations, "MAX_DESTINATIONS_PER_PROJECT", 1, raising=False)
    owner = make_user()
    project = create_project(owner=owner, name="Weddings")
    _s3(project)
    browser = Client()
    browser.force_login(owner)
    refused = browser.post(
        f"/projects/{project.public_id}/destinations/new", {"kind": "https", "name": "Archive", "url": URL}
    )
    assert refused.status_code == 400
    html = refused.content.decode()
    assert 'role="alert"' in html and "at most 1 destinations" in html
    assert Destination.objects.filter(project=project).count() == 1
