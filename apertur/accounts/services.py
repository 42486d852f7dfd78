from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from apertur.accounts.errors import (
    ConfirmationNeedsLogin,
    EmailTaken,
    InvalidConfirmationLink,
    InvalidEmail,
    InvalidEmailChangeLink,
    InvalidPassword,
    InvalidResetLink,
    WrongPassword,
)
from apertur.accounts.login import (
    ACCOUNT_PASSWORD_CHECK,
    CONFIRM_RESEND_PER_EMAIL,
    EMAIL_CHANGE_PER_ACCOUNT,
    PASSWORD_CHANGES_PER_ACCOUNT,
)
from apertur.accounts.models import EMAIL_MAX_LENGTH, User, normalize_email
from apertur.accounts.signals import TurnedOff, claimed_from_signup, mailbox_proven
from apertur.accounts.tokens import (
    confirmed_stamp,
    email_confirmation_token,
    make_email_change_token,
    password_stamp_matches,
    read_email_change_token,
)
from apertur.core import audit, clock, mail, ratelimit
from apertur.core.http import rate_limit_ip


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


def _confirmation_account(*, uidb64: str, token: str, lock: bool) -> User:
    """The account a confirmation link is for. The token is checked first, whatever the account's state: an
    already-confirmed account answers an invalid or used link exactly as an unconfirmed one does (it used to
    answer "Email confirmed" to any token, telling a stranger which accounts are confirmed)."""
    users = User.objects.select_for_update() if lock else User.objects.all()
    try:
        user = users.get(pk=int(urlsafe_base64_decode(uidb64).decode()))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist) as exc:
        raise InvalidConfirmationLink() from exc
    if not email_confirmation_token.check_token(user, token):
        raise InvalidConfirmationLink()
    return user


def confirmation_account(*, uidb64: str, token: str) -> User:
    """The account of a valid confirmation link (read only): the page that asks for its password names it."""
    return _confirmation_account(uidb64=uidb64, token=token, lock=False)


ConfirmationProof = Literal["session", "password"]


@transaction.atomic
def confirm_email(
    *, uidb64: str, token: str, signed_in: User | None, proof: ConfirmationProof, ip: str | None = None
) -> User:
    """Confirm the address of a valid link, for the account ``signed_in`` only: the link proves the mailbox, the
    sign-in proves the password. Signup proves nothing about the address, so an account may hold a password
    chosen by someone who does not own it; a click from the address's owner alone must not confirm that account
    and leave the other person its password and sessions ("pre-hijacked accounts", Sudhodanan & Paverd, USENIX
    Security 2022). ``proof`` says how the sign-in was shown: ``"session"`` (the browser was signed in to the
    account: the person who just signed up, one click) or ``"password"`` (entered on the link's page).

    Anyone else gets :class:`ConfirmationNeedsLogin`: the password, or a new one through the reset path
    (:func:`start_reset_from_confirmation`)."""
    user = _confirmation_account(uidb64=uidb64, token=token, lock=True)
    if signed_in is None or signed_in.pk != user.pk:
        raise ConfirmationNeedsLogin()
    was_confirmed = user.email_confirmed
    if not was_confirmed:
        user.email_confirmed_at = clock.now()
        user.save(update_fields=["email_confirmed_at"])
        audit.record(
            action="user.email_confirmed", obj=user, actor=user, ip=ip, data={"via": "confirmation", "proof": proof}
        )
    mailbox_proven.send(sender=User, user=user, via="confirmation", was_confirmed=was_confirmed)
    return user


@transaction.atomic
def start_reset_from_confirmation(*, uidb64: str, token: str, ip: str | None = None) -> str:
    """The confirmation link's "Don't know the password?" (someone else signed up with this address, or its
    owner forgot the password): the link reached the account's mailbox just as a reset link would, so it leads
    straight to choosing a new password, without another mail. Returns the reset link's path; the reset itself
    (:func:`reset_password`) ends every session, confirms the address and tells ``mailbox_proven``
    (``via="password_reset"``, which drops an unconfirmed signup's referral). Nothing changes until the new
    password is set: the confirmation link stays usable until then, and is used up by the reset (the address is
    confirmed)."""
    user = confirmation_account(uidb64=uidb64, token=token)
    audit.record(action="user.password_reset_started", obj=user, ip=ip, data={"via": "confirmation_link"})
    return reverse(
        "accounts:password-reset-confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )


def _password_changed(
    *, user: User, via: str, ip: str | None, turned_off: Sequence[TurnedOff] = (), actor: User | None = None
) -> None:
    """Audit a new password and tell the account's address (OWASP ASVS 2.2.3), so an owner who did not change
    it learns at once, with the way to take the account back; and, when the reset claimed the account from
    whoever signed up with the address, what was turned off."""
    audit.record(action="user.password_changed", obj=user, actor=actor or user, ip=ip, data={"via": via})
    mail.send(
        to=user.email,
        subject="Your Apertur password was changed",
        template="emails/password_changed",
        context={
            "user": user,
            "via": via,
            "at": clock.now(),
            "reset_path": reverse("accounts:password-reset"),
            "turned_off": list(turned_off),
        },
    )


@dataclass(frozen=True, slots=True)
class PasswordReset:
    user: User
    #: What the reset turned off because it claimed the account (empty for any other reset).
    turned_off: list[TurnedOff]


def _claim_turned_off(responses: list[tuple[Any, Any]]) -> list[TurnedOff]:
    return [item for _, items in responses if items for item in items if item.count]


@transaction.atomic
def reset_password_reporting(*, user: User, token: str, password: str, ip: str | None = None) -> PasswordReset:
    """:func:`reset_password`, with what it turned off. When the account's address had never been proven, the
    reset claims it from whoever signed up (``signals.claimed_from_signup``): the receivers of
    ``mailbox_proven`` revoke or disable, through their own services, what that person set up to send data or
    access out of the account; one ``user.account_claimed`` audit event counts it all, and the "password
    changed" email (and the page after the reset) tells the owner."""
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
    if not was_confirmed:
        audit.record(action="user.email_confirmed", obj=locked, actor=locked, ip=ip, data={"via": "password_reset"})
    responses = mailbox_proven.send(sender=User, user=locked, via="password_reset", was_confirmed=was_confirmed)
    turned_off = _claim_turned_off(responses)
    if claimed_from_signup(via="password_reset", was_confirmed=was_confirmed):
        audit.record(
            action="user.account_claimed",
            obj=locked,
            actor=locked,
            ip=ip,
            data={"via": "password_reset", "turned_off": {item.what: item.count for item in turned_off}},
        )
    _password_changed(user=locked, via="password_reset", ip=ip, turned_off=turned_off)
    return PasswordReset(user=locked, turned_off=turned_off)


def reset_password(*, user: User, token: str, password: str, ip: str | None = None) -> User:
    """Set a password through a reset link. The link is checked again here, under the account's row lock, so
    two submissions of one link cannot both succeed. The link reached the account's mailbox: the email is
    proven, and confirmed if it was not (``mailbox_proven``, ``via="password_reset"``), which claims an
    unconfirmed account from whoever signed up with the address (:func:`reset_password_reporting`)."""
    return reset_password_reporting(user=user, token=token, password=password, ip=ip).user


# --- the account page ----------------------------------------------------------------------------------


def _check_current_password(*, user: User, password: str, ip: str | None) -> None:
    """Changes on the account page ask for the current password (OWASP ASVS 2.1.5, 3.7.1): a session left open
    on a shared computer must not be enough to take the account over. Wrong guesses are limited like logins:
    counted before the check, given back on success, a refused attempt counts nothing. Per account *and*
    address: someone holding a stolen session elsewhere cannot spend the owner's budget and keep them from
    changing the password or logging that session out."""
    counted = ratelimit.hit_all((ACCOUNT_PASSWORD_CHECK, f"{user.pk}|{rate_limit_ip(ip) if ip else '-'}"))
    if not user.check_password(password):
        raise WrongPassword(field="current_password")
    ratelimit.give_back(*counted)


def password_set_by_staff(*, user: User, actor: User, ip: str | None = None) -> None:
    """A password a staff member set in the admin (Django's own form saved it): audited with them as the actor,
    and the owner told, as every new password is."""
    _password_changed(user=user, via="staff", ip=ip, actor=actor)


@transaction.atomic
def change_password(*, user: User, current_password: str, new_password: str, ip: str | None = None) -> User:
    """A new password from the account page (ASVS 2.1.6). Django's session check compares each session's
    stored hash of the password with the account's: every other session of the user ends at its next request;
    the view keeps its own (``update_session_auth_hash``). Past :data:`PASSWORD_CHANGES_PER_ACCOUNT` (each change
    mails the account): :class:`RateLimited`, nothing changed or sent."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    _check_current_password(user=locked, password=current_password, ip=ip)
    check_password(new_password, email=locked.email)
    ratelimit.hit(PASSWORD_CHANGES_PER_ACCOUNT, str(locked.pk), what="password changes")
    locked.set_password(new_password)
    locked.save(update_fields=["password"])
    _password_changed(user=locked, via="account_page", ip=ip)
    return locked


@transaction.atomic
def end_other_sessions(*, user: User, current_password: str, ip: str | None = None) -> User:
    """Log out every other session: the password is hashed again with a fresh salt, which changes the hash
    each session was stamped with (the same mechanism as a password change, without a new password)."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    _check_current_password(user=locked, password=current_password, ip=ip)
    locked.set_password(current_password)
    locked.save(update_fields=["password"])
    audit.record(action="user.sessions_ended", obj=locked, actor=locked, ip=ip)
    return locked


@transaction.atomic
def request_email_change(*, user: User, new_email: str, current_password: str, ip: str | None = None) -> str:
    """Send a link to the new address; the email changes only when it is opened (:func:`confirm_email_change`).
    Limited per account and, with the confirmation mail, per address. Returns the normalised new address."""
    _check_current_password(user=user, password=current_password, ip=ip)
    address = check_email(new_email)
    if address == user.email:
        raise InvalidEmail("This is already your email address.", field="email")
    # Counted before the address is looked up: "already has an account" must not be an unlimited oracle of
    # which addresses are registered (signup tells it too, within its own budget).
    ratelimit.hit(EMAIL_CHANGE_PER_ACCOUNT, str(user.pk))
    if User.objects.filter(email=address).exists():
        raise EmailTaken(field="email")
    ratelimit.hit(CONFIRM_RESEND_PER_EMAIL, address)
    path = reverse(
        "accounts:confirm-email-change", kwargs={"token": make_email_change_token(user=user, new_email=address)}
    )
    audit.record(action="user.email_change_requested", obj=user, actor=user, ip=ip, data={"to": address})
    mail.send(
        to=address,
        subject="Confirm your new Apertur email address",
        template="emails/email_change_confirm",
        context={"user": user, "new_email": address, "path": path},
    )
    return address


@transaction.atomic
def confirm_email_change(*, user: User, token: str, ip: str | None = None) -> User:
    """Open the link sent to the new address, signed in as the account that asked. The link holds the address
    the account had then: once the email has changed (this link used, or another; even back to that address,
    :func:`~apertur.accounts.tokens.confirmed_stamp`), it is stale; so it is once
    the password has (a reset or a change since: :func:`~apertur.accounts.tokens.password_stamp`). The new
    address is checked again, as signup does (another account may have taken it meanwhile), proven (it got
    the link: confirmed, ``mailbox_proven`` with ``via="confirmation"``), and the old address is told."""
    change = read_email_change_token(token)
    if change is None:
        raise InvalidEmailChangeLink()
    if change.user_id != user.pk:
        raise InvalidEmailChangeLink(
            "This link was sent for another Apertur account: log out, then log in with that account to use it."
        )
    locked = User.objects.select_for_update().get(pk=user.pk)
    if (
        locked.email != change.old_email
        or confirmed_stamp(locked) != change.confirmed_stamp
        or not password_stamp_matches(locked, change.password_stamp)
    ):
        raise InvalidEmailChangeLink()
    new_email = normalize_email(change.new_email)
    if User.objects.filter(email=new_email).exclude(pk=locked.pk).exists():
        raise EmailTaken(field="email")
    old_email, was_confirmed = locked.email, locked.email_confirmed
    locked.email = new_email
    locked.email_confirmed_at = clock.now()
    try:
        with transaction.atomic():
            locked.save(update_fields=["email", "email_confirmed_at"])
    except IntegrityError as exc:  # taken by a concurrent signup or change
        raise EmailTaken(field="email") from exc
    audit.record(
        action="user.email_changed", obj=locked, actor=locked, ip=ip, data={"from": old_email, "to": new_email}
    )
    mailbox_proven.send(sender=User, user=locked, via="confirmation", was_confirmed=was_confirmed)
    mail.send(
        to=old_email,
        subject="Your Apertur email address was changed",
        template="emails/email_changed",
        context={
            "old_email": old_email,
            "new_email": new_email,
            "at": clock.now(),
            "support_email": settings.SUPPORT_EMAIL,
        },
    )
    return locked
