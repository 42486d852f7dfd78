from __future__ import annotations

from django.contrib.auth.tokens import PasswordResetTokenGenerator

from apertur.accounts.models import User


class EmailConfirmationTokenGenerator(PasswordResetTokenGenerator):
    """Signed, expiring (PASSWORD_RESET_TIMEOUT) and single-use: the hash covers the confirmation time
    and the address, so a link dies once used or once the email changes. Nothing is stored."""

    key_salt = "apertur.accounts.EmailConfirmationTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        confirmed = "" if user.email_confirmed_at is None else user.email_confirmed_at.isoformat()
        return f"{user.pk}{user.email}{confirmed}{timestamp}"


email_confirmation_token = EmailConfirmationTokenGenerator()
