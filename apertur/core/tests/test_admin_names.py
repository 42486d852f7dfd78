"""Staff read the admin's model names: Django makes them from class names ("RejectedDelivery" → "rejected
deliverys", "PayPalEvent" → "pay pal event") unless a model or inline says better."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib import admin

from apertur.testing import make_staff


def _names() -> list[str]:
    names = []
    for model, model_admin in admin.site._registry.items():
        names += [str(model._meta.verbose_name), str(model._meta.verbose_name_plural)]
        for inline in model_admin.inlines:
            meta = inline.model._meta
            names += [str(inline.verbose_name or meta.verbose_name)]
            names += [str(inline.verbose_name_plural or meta.verbose_name_plural)]
    return names


def test_admin_model_names_are_spelled_as_people_write_them() -> None:
    names = _names()
    assert not [n for n in names if re.search(r"[^aeiou]ys\b", n)], names  # "entrys", "deliverys"
    assert not [n for n in names if re.search(r"pay pal|\buris?\b|\bstripe\b", n)], names


@pytest.mark.django_db
def test_the_admin_is_named_apertur_not_django(client: Any) -> None:
    staff = make_staff()
    client.force_login(staff)
    html = client.get("/admin/").content.decode()
    assert "<title>Site administration | Apertur admin</title>" in html
    assert "Django administration" not in html and "Django site admin" not in html
