"""Signals the accounts app sends for other apps to react to, without accounts importing them.

``mailbox_proven``
    The user has just shown that they read the mail sent to their address: they opened a link that only
    that mailbox received. Sent by

    - :func:`apertur.accounts.services.confirm_email` — a valid email confirmation link was opened by the
      account itself: in a browser signed in to it, or with its password (``via="confirmation"``). The link
      alone proves the mailbox, not that the account's password is its owner's: anyone may sign up with
      any address;
    - :func:`apertur.accounts.services.confirm_email_change` — the link of an email change, sent to the *new*
      address, was opened: ``user.email`` is already the new address (also ``via="confirmation"``);
    - :func:`apertur.accounts.services.reset_password` — a password was set through a reset link
      (``via="password_reset"``): it too proves the mailbox, and marks the email confirmed if it was not.

    Keyword arguments (``sender`` is :class:`~apertur.accounts.models.User`):

    - ``user``: the :class:`~apertur.accounts.models.User`, as saved (``email_confirmed_at`` is set);
    - ``via``: ``"confirmation"`` or ``"password_reset"``;
    - ``was_confirmed``: whether the account's email was already confirmed before this proof. ``False`` means
      this is the first time the account proved an address: what "the customer confirmed their email" means
      for anything that waits for it.

    Sent inside the transaction that records the proof (after the account and its audit event are written):
    a receiver's database writes commit or roll back with it, and an exception in a receiver rolls the
    proof back and fails the request, so receivers should not raise for their own problems. Anything a
    receiver does outside the database (mail, HTTP) belongs in ``transaction.on_commit``. A receiver may be
    called more than once for one user (a later password reset proves the mailbox again, with
    ``was_confirmed=True``): act once on ``was_confirmed=False``, or be idempotent.

    **Claimed from a squatter** (:func:`claimed_from_signup`): a password reset of an account whose address was
    never proven. Whoever signed up may not own the address ("pre-hijacked accounts", Sudhodanan & Paverd, USENIX
    Security 2022), and what they set up while it was theirs must not keep working for them. A receiver that
    turns something off for a claim does it through its own app's service (its audit events and side effects),
    connected with :func:`when_claimed`, and returns a list of :class:`TurnedOff`; ``reset_password`` records
    them in one ``user.account_claimed`` audit event and tells the owner. Any other receiver returns ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal

mailbox_proven = Signal()


def claimed_from_signup(*, via: str, was_confirmed: bool) -> bool:
    """The one rule for "an account claimed from whoever signed up with this address": a password reset (the
    link reached the mailbox) of an account that had never proven it. Every receiver that reacts to a claim
    asks this, rather than its own copy of the test."""
    return via == "password_reset" and not was_confirmed


@dataclass(frozen=True, slots=True)
class TurnedOff:
    """What a claim turned off, of one kind: ``what`` is the stable key of the audit event's counts
    (``api_keys_revoked``), ``label`` the owner's words for it ("project API keys revoked"). Never a secret."""

    what: str
    count: int
    label: str

    @classmethod
    def of(cls, what: str, count: int, *, one: str, many: str) -> TurnedOff:
        return cls(what=what, count=count, label=one if count == 1 else many)


def when_claimed(turn_off: Callable[..., list[TurnedOff]], *, dispatch_uid: str) -> None:
    """Run ``turn_off(user=…)`` (an app's service) when an account is claimed from whoever signed up with its
    address (:func:`claimed_from_signup`), and hand ``reset_password`` what it turned off: the one receiver every
    app that turns something off for a claim connects to ``mailbox_proven`` (an app's ``ready``)."""

    def receiver(sender: Any, *, user: Any, via: str, was_confirmed: bool, **kwargs: Any) -> list[TurnedOff] | None:
        return turn_off(user=user) if claimed_from_signup(via=via, was_confirmed=was_confirmed) else None

    # Not weakly held: the receiver is made here, nothing else keeps it alive.
    mailbox_proven.connect(receiver, weak=False, dispatch_uid=dispatch_uid)
