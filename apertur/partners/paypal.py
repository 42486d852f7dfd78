"""The partner's PayPal address for payouts: set, confirmed by a single-use expiring link sent to that
address, changed (which holds payouts until the new address is confirmed, and tells the old one)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse

from apertur.accounts.login import CONFIRM_RESEND_PER_EMAIL
from apertur.accounts.models import User, normalize_email
from apertur.accounts.services import check_email
from apertur.accounts.signals import TurnedOff
from apertur.core import audit, clock, mail, ratelimit, tokens
from apertur.core.errors import AperturError, ValidationFailed
from apertur.partners.models import Partner

LINK_TTL = dt.timedelta(hours=24)
#: Confirmation links one partner may have sent in an hour: each mails an address they typed, so without a budget a
#: partner account (or a script holding its session) could have Apertur mail anyone without end.
LINKS_PER_PARTNER = ratelimit.Limit("paypal-link-partner", 5, 60 * 60)


class InvalidPayPalLink(AperturError):
    code = "invalid_paypal_link"
    status = 400
    default_message = "This confirmation link is invalid, already used or expired. Send a new one from Payouts."


def check_paypal_email(email: str) -> str:
    """The address, normalised, if PayPal could take it as a receiver: a valid email (Django's check) whose domain
    is a real internet name: at least one dot (so not ``localhost`` or another bare host name), no empty label, no
    IP literal. International domains are checked in their ASCII (punycode) form, so ``user@bücher.example`` is
    accepted like ``user@xn--bcher-kva.example``. PayPal refuses the others at payout time (``VALIDATION_ERROR``
    on ``items[i].receiver``), a month after the partner could have fixed it."""
    try:
        address = check_email(email)
    except ValidationFailed as exc:
        raise ValidationFailed("Enter the email address of your PayPal account.", field="paypal_email") from exc
    domain = address.rpartition("@")[2].rstrip(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValidationFailed("Enter the email address of your PayPal account.", field="paypal_email") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or any(not label for label in labels) or domain.startswith("[") or labels[-1].isdigit():
        raise ValidationFailed(
            "Enter the email address of your PayPal account (its domain needs a dot, like example.com).",
            field="paypal_email",
        )
    return address


@transaction.atomic
def request_change(*, partner: Partner, email: str, actor: User | None = None, ip: str | None = None) -> Partner:
    address = check_paypal_email(email)
    # Per partner, then per address with every other confirmation mail to it (accounts.login): past either, nothing
    # changes and nothing is sent (RateLimited, 429).
    ratelimit.hit(LINKS_PER_PARTNER, str(partner.pk))
    ratelimit.hit(CONFIRM_RESEND_PER_EMAIL, address)
    partner = Partner.objects.select_for_update().select_related("user").get(pk=partner.pk)
    previous = partner.verified_paypal_email
    # A new link for the address already waiting (or the confirmed one) changes nothing anyone must hear of.
    asked_before = address.lower() in {(previous or "").lower(), partner.paypal_pending_email.lower()}
    secret = tokens.generate(tokens.Prefix.EMAIL_TOKEN, 40)
    partner.paypal_pending_email = address
    partner.paypal_token_hash = tokens.hash_secret(secret)
    partner.paypal_token_expires_at = clock.now() + LINK_TTL
    if previous and previous != address:
        # A change holds payouts: money never goes to an address its owner has not confirmed.
        partner.paypal_email = ""
        partner.paypal_verified_at = None
    partner.save()
    audit.record(
        action="partner.paypal_change_requested",
        obj=partner,
        actor=actor,
        ip=ip,
        data={"new": address, "previous": previous},
    )
    # The address payouts went to, and the account's own: someone holding the partner's session (no password is
    # asked here) must not move the payouts unseen. The new address gets only its confirmation link, sent last.
    told = {address.lower()}
    for to in () if asked_before else (previous, partner.user.email):
        if to and to.lower() not in told:
            told.add(to.lower())
            mail.send(
                to=to,
                subject="Your Apertur payout email is changing",
                template="emails/paypal_changed",
                context={"partner": partner, "new": address, "previous": previous},
            )
    mail.send(
        to=address,
        subject="Confirm your PayPal email for Apertur payouts",
        template="emails/paypal_confirm",
        context={"partner": partner, "path": reverse("partners:paypal-confirm", kwargs={"token": secret})},
    )
    return partner


def _live_link(token: str) -> QuerySet[Partner]:
    """The partner whose confirmation link ``token`` is, while the link is unused and unexpired."""
    return Partner.objects.filter(
        paypal_token_hash=tokens.hash_secret(token), paypal_token_expires_at__gt=clock.now()
    ).exclude(paypal_token_hash="")


def link_expired(partner: Partner, *, at: dt.datetime | None = None) -> bool:
    """Whether an address waits for a confirmation link that no longer works (:func:`_live_link`'s rule: live while
    ``paypal_token_expires_at`` is after now): the pages then ask for a new link rather than to open this one."""
    expires = partner.paypal_token_expires_at
    return bool(partner.paypal_pending_email) and expires is not None and expires <= (at or clock.now())


def link_owner_id(*, token: str) -> int | None:
    """The user id of the partner a live confirmation link belongs to, or None."""
    return _live_link(token).values_list("user_id", flat=True).first()


@transaction.atomic
def confirm(*, token: str, ip: str | None = None) -> Partner:
    partner = _live_link(token).select_for_update().first()
    if partner is None:
        raise InvalidPayPalLink()
    partner.paypal_email = partner.paypal_pending_email
    partner.paypal_verified_at = clock.now()
    partner.paypal_pending_email = ""
    partner.paypal_token_hash = ""
    partner.paypal_token_expires_at = None
    partner.save()
    audit.record(action="partner.paypal_verified", obj=partner, ip=ip, data={"email": partner.paypal_email})
    return partner


@transaction.atomic
def clear(*, partner: Partner, reason: str, actor: User | None = None, ip: str | None = None) -> bool:
    """Forget the partner's PayPal address, confirmed or waiting for its link (the link dies too): payouts hold
    until the partner sets and confirms one again (``payouts.payable_reason``). Audited
    ``partner.paypal_cleared``. Returns whether there was anything to clear."""
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    previous, pending = partner.paypal_email, partner.paypal_pending_email
    if not previous and not pending and not partner.paypal_token_hash:
        return False
    partner.paypal_email = ""
    partner.paypal_verified_at = None
    partner.paypal_pending_email = ""
    partner.paypal_token_hash = ""
    partner.paypal_token_expires_at = None
    partner.save()
    audit.record(
        action="partner.paypal_cleared",
        obj=partner,
        actor=actor,
        ip=ip,
        data={"previous": previous, "pending": pending, "reason": reason},
    )
    return True


def clear_for_claimed_account(*, user: User) -> list[TurnedOff]:
    """An account claimed from whoever signed up with its address (``accounts.signals.claimed_from_signup``):
    a PayPal address set while it was theirs may be theirs, and a payout must never go to it. Cleared, with any
    pending confirmation link, whether or not it was confirmed."""
    partner = Partner.objects.filter(user=user).first()
    cleared = partner is not None and clear(
        partner=partner, reason="unconfirmed account claimed by a password reset", actor=user
    )
    return [TurnedOff.of("paypal_email_cleared", int(cleared), one="PayPal email for payouts removed", many="")]


def shares_verified_email(*, partner: Partner, email: str) -> bool:
    verified = partner.verified_paypal_email
    return bool(verified) and normalize_email(email) == verified
