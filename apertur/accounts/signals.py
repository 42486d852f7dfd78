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
"""

from __future__ import annotations

from django.dispatch import Signal

mailbox_proven = Signal()
