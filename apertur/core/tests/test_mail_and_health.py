from __future__ import annotations

import logging
import smtplib
from pathlib import Path
from typing import Any

import pytest
from django.core.mail import send_mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test import Client

from apertur.core.mail import stored_messages
from apertur.testing import assert_head_like_get


def test_maildir_backend_writes_one_file_per_message_and_reads_newest_first(maildir: Path) -> None:
    send_mail("First", "Hello one", "from@example.com", ["Ada@Example.com"])
    send_mail("Second", "Hello two https://x.example/link", "from@example.com", ["ada@example.com"])
    send_mail("Other", "Not for Ada", "from@example.com", ["bob@example.com"])
    assert len(list(maildir.glob("*.eml"))) == 3
    messages = stored_messages(to="ADA@example.com")
    assert [m.subject for m in messages] == ["Second", "First"]
    assert "https://x.example/link" in messages[0].text
    assert messages[0].as_json().keys() == {"subject", "text", "sent_at"}


def test_sent_at_is_an_aware_utc_time(maildir: Path) -> None:
    import datetime as dt

    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    send_mail("Dated", "Hello", "from@example.com", ["ada@example.com"])
    (message,) = stored_messages(to="ada@example.com")
    assert message.sent_at.utcoffset() == dt.timedelta(0)
    assert before <= message.sent_at <= dt.datetime.now(dt.UTC)
    assert dt.datetime.fromisoformat(message.as_json()["sent_at"]) == message.sent_at
    assert message.as_json()["sent_at"].endswith("+00:00")


@pytest.mark.django_db
def test_healthz_ok() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/"])
def test_public_pages_answer_head_like_get(path: str) -> None:
    """Load balancers and uptime checks often probe with HEAD; require_GET answered 405."""
    assert assert_head_like_get(Client(), path).status_code == 200


@pytest.mark.django_db
def test_healthz_reports_a_dead_database(monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise connection.Database.OperationalError("down")

    monkeypatch.setattr(connection, "cursor", broken)
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_deploy_check_warns_about_per_process_rate_limits(settings: Any) -> None:
    from apertur.core.checks import shared_rate_limits

    settings.DEBUG = False
    settings.REDIS_URL = ""
    assert [w.id for w in shared_rate_limits(None)] == ["apertur.W001"]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert shared_rate_limits(None) == []


@pytest.mark.django_db
def test_replies_reach_a_person_not_the_no_reply_sender(django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    """Mails say "reply to this email" (a suspension, a PayPal address change, a payout that came back) and come
    from no-reply@: a reply goes to ``SUPPORT_EMAIL``, one by one or in a batch."""
    from django.core import mail as outbox

    from apertur.core import mail

    settings.SUPPORT_EMAIL = "help@apertur.example"
    message = mail.Outgoing(to="p@example.com", subject="S", template="emails/payout_staff_alert", context={})
    with django_capture_on_commit_callbacks(execute=True):
        mail.send(to=message.to, subject=message.subject, template=message.template, context=message.context)
        mail.send_many([message, message])
    assert len(outbox.outbox) == 3
    assert all(m.reply_to == ["help@apertur.example"] for m in outbox.outbox)
    assert all(m.from_email == settings.DEFAULT_FROM_EMAIL for m in outbox.outbox)


class RefusesOneRecipient(BaseEmailBackend):
    """As Django's SMTP backend over one connection: a message whose recipient the server refuses raises
    (``SMTPRecipientsRefused``), which ends that ``send_messages`` call; the others reach the outbox."""

    def send_messages(self, email_messages: Any) -> int:
        from django.core import mail as outbox

        for message in email_messages:
            if message.to == ["refused@example.com"]:
                raise smtplib.SMTPRecipientsRefused({"refused@example.com": (550, b"no such user")})
            outbox.outbox.append(message)
        return len(email_messages)


@pytest.mark.django_db
def test_one_refused_recipient_of_a_batch_costs_no_one_else_their_mail(
    django_capture_on_commit_callbacks: Any, settings: Any, caplog: Any
) -> None:
    """The payout run tells every partner of a batch at once: a partner whose address the mail server refuses must
    not keep the partners after them from hearing their payout was sent, and the log names who did not get it."""
    from django.core import mail as outbox

    from apertur.core import mail

    settings.EMAIL_BACKEND = f"{__name__}.RefusesOneRecipient"
    outbox.outbox = []
    messages = [
        mail.Outgoing(to=to, subject="Payout sent", template="emails/payout_staff_alert", context={})
        for to in ("first@example.com", "refused@example.com", "third@example.com")
    ]
    with caplog.at_level(logging.ERROR, logger="apertur.core.mail"), django_capture_on_commit_callbacks(execute=True):
        mail.send_many(messages)
    assert [m.to for m in outbox.outbox] == [["first@example.com"], ["third@example.com"]]
    assert "mail to refused@example.com failed: Payout sent" in caplog.text
