from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from apertur.accounts.models import User, normalize_email


class EmailBackend(ModelBackend):
    """Email + password, case-insensitive on the email. A missing user still runs the hasher once so
    response time does not reveal which emails have accounts."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        email: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        address = email or username
        if not address or password is None:
            return None
        try:
            user = User.objects.get(email=normalize_email(address))
        except User.DoesNotExist:
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
