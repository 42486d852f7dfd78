from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from apertur.accounts.errors import (
    EmailTaken,
    InvalidConfirmationLink,
    InvalidEmail,
    InvalidPassword,
    InvalidResetLink,
)
from apertur.accounts.models import EMAIL_MAX_LENGTH, User, normalize_email
from apertur.accounts.signals import mailbox_proven
from apertur.accounts.tokens import email_confirmation_token
from apertur.core import audit, clock, mail


def check_email(email: str) -> str:
    address = normalize_email(email)
    if len(address) > EMAIL_MAX_LENGTH:
        raise InvalidEmail(f"Enter an email address of at most {EMAIL_MAX_LENGTH} characters.", field="email")
    try:
        validate_email(address)
    except ValidationError as exc:
        raise InvalidEmail(field="email") from exc
    return address


def check_password(password: str, *, email: str) -> None:
    try:
        validate_password(password, User(email=email))
    except ValidationError as exc:
        raise InvalidPassword(" ".join(exc.messages), field="password") from exc


@transaction.atomic
def create_user(
    *,
    email: str,
    password: str,
    email_confirmed: bool = False,
    send_confirmation: bool = True,
    is_staff: bool = False,
    ip: str | None = None,
) -> User:
    """Create an account. The password is checked against Django's validators and stored with argon2."""
    address = check_email(email)
    check_password(password, email=address)
    if User.objects.filter(email=address).exists():
        raise EmailTaken(field="email")
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                address,
                password,
                is_staff=is_staff,
                email_confirmed_at=clock.now() if email_confirmed else None,
            )
    except IntegrityError as exc:  # a concurrent signup with the same address won the race
        raise EmailTaken(field="email") from exc
    audit.record(action="user.created", obj=user, actor=user, ip=ip)
    if send_confirmation and not email_confirmed:
        send_confirmation_email(user=user)
    return user


def confirmation_path(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = email_confirmation_token.make_token(user)
    return reverse("accounts:confirm-email", kwargs={"uidb64": uid, "token": token})


def send_confirmation_email(*, user: User) -> None:
    mail.send(
        to=user.email,
        subject="Confirm your Apertur email address",
        template="emails/confirm_email",
        context={"user": user, "path": confirmation_path(user)},
    )


def request_confirmation_link(*, email: str) -> None:
    """A new confirmation link for whoever asks while logged out: sent only when an account with that address
    exists and is not confirmed yet, and the caller answers the same either way (no account enumeration)."""
    user = User.objects.filter(email=normalize_email(email), email_confirmed_at__isnull=True).first()
    if user is not None:
        send_confirmation_email(user=user)


@transaction.atomic
def confirm_email(*, uidb64: str, token: str, ip: str | None = None) -> User:
    """The token is checked first, whatever the account's state: an already-confirmed account answers an
    invalid or used link exactly as an unconfirmed one does (it used to answer "Email confirmed" to any token,
    telling a stranger which accounts are confirmed)."""
    try:
        pk = int(urlsafe_base64_decode(uidb64).decode())
        user = User.objects.select_for_update().get(pk=pk)
    except (ValueError, TypeError, OverflowError, User.DoesNotExist) as exc:
        raise InvalidConfirmationLink() from exc
    if not email_confirmation_token.check_token(user, token):
        raise InvalidConfirmationLink()
    was_confirmed = user.email_confirmed
    if not was_confirmed:
        user.email_confirmed_at = clock.now()
        user.save(update_fields=["email_confirmed_at"])
        audit.record(action="user.email_confirmed", obj=user, actor=user, ip=ip, data={"via": "confirmation"})
    mailbox_proven.send(sender=User, user=user, via="confirmation", was_confirmed=was_confirmed)
    return user


def _password_changed(*, user: User, via: str, ip: str | None) -> None:
    """Audit a new password and tell the account's address (OWASP ASVS 2.2.3), so an owner who did not change
    it learns at once, with the way to take the account back."""
    audit.record(action="user.password_changed", obj=user, actor=user, ip=ip, data={"via": via})
    mail.send(
        to=user.email,
        subject="Your Apertur password was changed",
        template="emails/password_changed",
        context={"user": user, "via": via, "at": clock.now(), "reset_path": reverse("accounts:password-reset")},
    )


@transaction.atomic
def reset_password(*, user: User, token: str, password: str, ip: str | None = None) -> User:
    """Set a password through a reset link. The link is checked again here, under the account's row lock, so
    two submissions of one link cannot both succeed. The link reached the account's mailbox: the email is
    proven, and confirmed if it was not (``mailbox_proven``, ``via="password_reset"``)."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    if not default_token_generator.check_token(locked, token):
        raise InvalidResetLink()
    check_password(password, email=locked.email)
    was_confirmed = locked.email_confirmed
    locked.set_password(password)
    fields = ["password"]
    if not was_confirmed:
        locked.email_confirmed_at = clock.now()
        fields.append("email_confirmed_at")
    locked.save(update_fields=fields)
    _password_changed(user=locked, via="password_reset", ip=ip)
    if not was_confirmed:
        audit.record(action="user.email_confirmed", obj=locked, actor=locked, ip=ip, data={"via": "password_reset"})
    mailbox_proven.send(sender=User, user=locked, via="password_reset", was_confirmed=was_confirmed)
    return locked
