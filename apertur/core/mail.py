"""Outgoing mail.

In development (no ``EMAIL_HOST``) every message is written as one ``.eml`` file under ``var/mail/``;
``apertur mail list`` and the ``/dev/mail/`` page read them back so a person can click the links.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.template import Context, Engine

from apertur.core import clock

logger = logging.getLogger(__name__)


def _render(template: str, context: dict[str, Any]) -> str:
    """``<template>.txt`` rendered with the site's base URL beside ``context``. The mail is plain text: nothing is
    HTML-escaped (a company called "Ana & Ben's" reads so, not "Ana &amp; Ben&#x27;s")."""
    compiled = Engine.get_default().get_template(f"{template}.txt")
    return compiled.render(Context({"base_url": settings.APERTUR_BASE_URL, **context}, autoescape=False))


def _message(*, subject: str, body: str, to: str) -> EmailMessage:
    """From the no-reply sender; several mails ask for a reply ("reply to this email if you believe this is a
    mistake"), which goes to ``SUPPORT_EMAIL``."""
    return EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [to], reply_to=[settings.SUPPORT_EMAIL])


def send(*, to: str, subject: str, template: str, context: dict[str, Any]) -> None:
    """Render ``<template>.txt`` and send it once the surrounding transaction commits, so a rolled-back
    change never sends mail about itself."""
    body = _render(template, context)

    def _send() -> None:
        # The change this mail is about has committed; a mail server outage must not turn it into an
        # error page. The failure is logged with the recipient and subject for a resend.
        try:
            _message(subject=subject, body=body, to=to).send()
        except Exception:
            logger.exception("mail to %s failed: %s", to, subject)

    transaction.on_commit(_send)


@dataclass(frozen=True, slots=True)
class Outgoing:
    to: str
    subject: str
    template: str
    context: dict[str, Any]


def send_many(messages: Sequence[Outgoing]) -> None:
    """:func:`send` for many messages at once: each rendered now, all sent once the surrounding transaction
    commits over one connection of the mail backend (one SMTP session, not one per message).

    Each message is handed over on its own: Django's SMTP backend stops a ``send_messages`` call at the first
    message the server refuses (an address it does not accept), which would cost every later recipient their
    mail. A failure is logged with its recipient and subject, as :func:`send` logs it, for a resend."""
    if not messages:
        return
    emails = [
        _message(subject=message.subject, body=_render(message.template, message.context), to=message.to)
        for message in messages
    ]

    def _send() -> None:
        try:
            connection = get_connection()
            connection.open()
        except Exception:
            logger.exception("mail to %d recipients failed: %s…", len(emails), emails[0].subject)
            return
        try:
            for message in emails:
                try:
                    connection.send_messages([message])
                except Exception:
                    logger.exception("mail to %s failed: %s", ", ".join(message.to), message.subject)
        finally:
            try:
                connection.close()
            except Exception:  # every message was handed over (or logged): a failed goodbye loses nothing
                logger.warning("closing the mail connection failed", exc_info=True)

    transaction.on_commit(_send)


class MaildirBackend(BaseEmailBackend):
    """One file per message: safe with several processes writing at once."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        directory = Path(settings.MAIL_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = clock.now().strftime("%Y%m%dT%H%M%S%f")
            name = f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
            tmp = directory / f".{name}.tmp"
            tmp.write_bytes(message.message().as_bytes())
            tmp.rename(directory / name)
            sent += 1
        return sent


@dataclass(frozen=True, slots=True)
class StoredMessage:
    to: list[str]
    subject: str
    text: str
    sent_at: dt.datetime
    path: Path

    def as_json(self) -> dict[str, str]:
        return {"subject": self.subject, "text": self.text, "sent_at": self.sent_at.isoformat()}


def _read(path: Path) -> StoredMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    to = [addr.lower() for _, addr in getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))]
    body = msg.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    sent_at = parsedate_to_datetime(msg["Date"]) if msg["Date"] else clock.now()
    if sent_at.tzinfo is None:
        # Django writes the Date header in UTC as "-0000" (RFC 5322 §3.3: UTC, local zone unknown), which
        # the parser returns without a zone.
        sent_at = sent_at.replace(tzinfo=dt.UTC)
    return StoredMessage(to=to, subject=str(msg["Subject"] or ""), text=text, sent_at=sent_at, path=path)


def stored_messages(*, to: str | None = None, limit: int | None = None) -> list[StoredMessage]:
    """Messages in the mail folder, newest first, optionally only those addressed to ``to``."""
    directory = Path(settings.MAIL_DIR)
    if not directory.is_dir():
        return []
    # File names start with a microsecond timestamp: sorting names sorts by time of sending.
    out: list[StoredMessage] = []
    for path in sorted(directory.glob("*.eml"), reverse=True):
        message = _read(path)
        if to is None or to.lower() in message.to:
            out.append(message)
            if limit is not None and len(out) >= limit:
                break
    return out
