from __future__ import annotations

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.crypto import constant_time_compare
from django.utils.http import base36_to_int

from apertur.accounts.models import User


class EmailConfirmationTokenGenerator(PasswordResetTokenGenerator):
    """Signed, expiring and single-use: the hash covers the confirmation time and the address, so a link dies
    once used or once the email changes. Nothing is stored.

    It lives ``EMAIL_CONFIRMATION_TIMEOUT`` (3 days: people confirm when they get round to reading their mail),
    not Django's ``PASSWORD_RESET_TIMEOUT`` (3 hours), which stays the password reset links' own: confirming an
    address grants far less than choosing a password."""

    key_salt = "apertur.accounts.EmailConfirmationTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        confirmed = "" if user.email_confirmed_at is None else user.email_confirmed_at.isoformat()
        return f"{user.pk}{user.email}{confirmed}{timestamp}"

    def check_token(self, user: User | None, token: str | None) -> bool:
        # Django's check with our own timeout: its method reads PASSWORD_RESET_TIMEOUT directly.
        if not (user and token):
            return False
        try:
            ts_b36, _ = token.split("-")
            ts = base36_to_int(ts_b36)
        except ValueError:
            return False
        if not any(
            constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        ):
            return False
        return self._num_seconds(self._now()) - ts <= settings.EMAIL_CONFIRMATION_TIMEOUT


email_confirmation_token = EmailConfirmationTokenGenerator()
