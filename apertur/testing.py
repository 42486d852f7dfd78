"""Factories shared by the tests of every domain (imported by tests only)."""

from __future__ import annotations

from itertools import count
from typing import Any

from apertur.accounts.models import User
from apertur.accounts.services import create_user
from apertur.oauth.services import CreatedApp, create_app
from apertur.partners import services as partner_services
from apertur.partners.models import Partner

_seq = count(1)
PASSWORD = "correct-horse-battery"


def make_user(email: str | None = None, *, password: str = PASSWORD, **kwargs: Any) -> User:
    return create_user(
        email=email or f"user{next(_seq)}@example.com", password=password, email_confirmed=True, **kwargs
    )


def make_staff(email: str | None = None) -> User:
    user = make_user(email or f"staff{next(_seq)}@example.com", is_staff=True)
    user.is_superuser = True
    user.save(update_fields=["is_superuser"])
    return user


APPLICATION = {
    "company_name": "Snapflow Inc.",
    "website": "https://snapflow.example",
    "use_case": "Event software that lets organisers collect guest photos into Apertur projects.",
    "expected_customers": "11-100",
}


def make_partner(*, user: User | None = None, approved: bool = True) -> Partner:
    partner = partner_services.apply(user=user or make_user(), **APPLICATION)
    if approved:
        partner = partner_services.approve(partner=partner, reviewer=None)
    return partner


def make_app(partner: Partner | None = None, **kwargs: Any) -> CreatedApp:
    kwargs.setdefault("name", "Snapflow")
    kwargs.setdefault("redirect_uris", ["https://snapflow.example/callback"])
    return create_app(partner=partner or make_partner(), **kwargs)
