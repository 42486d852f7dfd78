from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models

from apertur.core import clock, tokens


def new_user_public_id() -> str:
    return f"usr_{tokens.random_string(16)}"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("email_confirmed_at", clock.now())
        return self.create_user(email, password, **extra)


# RFC 5321 §4.5.3.1.3 (a path of at most 256 octets, angle brackets included); Django's EmailField default, and
# the column's size: a longer address must be refused as input, not reach the database (PostgreSQL: DataError).
EMAIL_MAX_LENGTH = 254


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively: stored trimmed and lowercased, the domain in the one form mail is
    delivered to. Django sends to the domain as Python's IDNA codec encodes it (``sanitize_address``; RFC 3490
    nameprep maps full-width letters to ASCII, drops invisible characters and composes accents), so the domain is
    stored as that encoding reads back: ``ada@ｅｘａｍｐｌｅ.com`` is ``ada@example.com``, not a second account
    whose mail the owner of ``ada@example.com`` gets. A domain the codec refuses is kept as typed (the email
    validator refuses it)."""
    local, at, domain = email.strip().lower().rpartition("@")
    if not at:
        return domain
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("idna").decode("idna")
    return f"{local}@{domain}"


class User(AbstractBaseUser, PermissionsMixin):
    public_id = models.CharField(max_length=32, unique=True, default=new_user_public_id, editable=False)
    email = models.EmailField(unique=True, max_length=EMAIL_MAX_LENGTH)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=clock.now)
    email_confirmed_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        # Model forms (the admin's add and change pages) clean before checking uniqueness: the address is stored
        # as logins look it up, and a spelling of a taken address is refused as taken.
        super().clean()
        self.email = normalize_email(self.email)

    @property
    def email_confirmed(self) -> bool:
        return self.email_confirmed_at is not None
