from __future__ import annotations

from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.http import base36_to_int

from apertur.accounts.models import User
from apertur.core import clock


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


class EmailChange(NamedTuple):
    user_id: int
    old_email: str
    new_email: str
    password_stamp: str
    #: :func:`confirmed_stamp` when the link was asked for.
    confirmed_stamp: str


_EMAIL_CHANGE_SALT = "apertur.accounts.email-change"


def password_stamp(user: User, *, secret: str | None = None) -> str:
    """A keyed digest of the account's password hash, as it is now: it changes with every new password (a
    change, a reset) and with "log out other sessions" (a fresh salt). Never the hash itself: links travel
    by mail. Keyed with SECRET_KEY unless ``secret`` is given."""
    return salted_hmac(_EMAIL_CHANGE_SALT, user.password, secret=secret).hexdigest()[:32]


def password_stamp_matches(user: User, stamp: str) -> bool:
    """Whether ``stamp`` is the account's :func:`password_stamp` now, under SECRET_KEY or one of
    SECRET_KEY_FALLBACKS: a link asked for before a key rotation keeps working as long as its signature does
    (``signing.loads`` tries the fallbacks too), as Django's own token generators do."""
    return any(
        constant_time_compare(password_stamp(user, secret=secret), stamp)
        for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    )


def confirmed_stamp(user: User) -> str:
    """When the account's address was last proven (confirmed, or set by an email change): it moves with every
    completed email change, so a link asked for at an address the account has left and come back to (A→B→A)
    is stale although ``old_email`` matches again. The email confirmation links' hash covers it the same way."""
    # The instant, not its written form: the same whatever time zone the value was read or set in.
    return "" if user.email_confirmed_at is None else f"{user.email_confirmed_at.timestamp():.6f}"


def make_email_change_token(*, user: User, new_email: str) -> str:
    """The link an email change sends to the new address: signed (SECRET_KEY, its own salt), holding the
    account, the address it has now and the one it asks for. Nothing is stored: the link dies once used or
    stale because the account's address is no longer ``old_email`` or has changed since, even back to
    ``old_email`` (:func:`confirmed_stamp`), and after EMAIL_CONFIRMATION_TIMEOUT.
    The time is ours (``core.clock``) inside the signed value, not the signer's own timestamp.

    It also dies with the password it was asked with (:func:`password_stamp`): whoever claims an account with a
    new password ends what the old one started, pending email changes as well as sessions ("unexpired email
    change", Sudhodanan & Paverd, USENIX Security 2022: someone signs up with your address, asks to move the
    account to theirs, and waits for you to reset the password and be talked into opening their link)."""
    payload = {
        "u": user.pk,
        "old": user.email,
        "new": new_email,
        "p": password_stamp(user),
        "c": confirmed_stamp(user),
        "at": int(clock.now().timestamp()),
    }
    return signing.dumps(payload, salt=_EMAIL_CHANGE_SALT, compress=True)


def read_email_change_token(token: str) -> EmailChange | None:
    """The change a link asks for, or None when it is forged, damaged or expired."""
    try:
        data = signing.loads(token, salt=_EMAIL_CHANGE_SALT)
        at = int(data["at"])
        change = EmailChange(int(data["u"]), str(data["old"]), str(data["new"]), str(data["p"]), str(data["c"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    if not 0 <= clock.now().timestamp() - at <= settings.EMAIL_CONFIRMATION_TIMEOUT:
        return None
    return change
