"""A password reset is a security-relevant change: audited, told to the account, and a proof of the mailbox."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from apertur.accounts import services
from apertur.accounts.errors import InvalidResetLink
from apertur.accounts.models import User
from apertur.accounts.signals import mailbox_proven
from apertur.core.models import AuditEvent
from apertur.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-brand-new-secret"


@pytest.fixture
def proofs() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append({"sender": sender, **kwargs})

    mailbox_proven.connect(receiver)
    yield received
    mailbox_proven.disconnect(receiver)


def _reset(client: Client, email: str, capture: Any) -> Any:
    with capture(execute=True):
        assert client.post("/password-reset", {"email": email}).status_code == 302
    link = re.search(r"http://localhost:8000(/password-reset/\S+)", mail.outbox[-1].body)
    assert link
    form_page = client.get(link.group(1), follow=True)
    set_url = form_page.redirect_chain[-1][0]
    with capture(execute=True):
        return client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})


def test_a_reset_is_audited_and_told_to_the_account(
    django_capture_on_commit_callbacks: Any, proofs: list[dict[str, Any]]
) -> None:
    user = make_user("ada@example.com")
    done = _reset(Client(), "ada@example.com", django_capture_on_commit_callbacks)
    assert done.status_code == 302 and done["Location"] == "/password-reset/done"
    assert Client().login(email="ada@example.com", password=NEW_PASSWORD)
    event = AuditEvent.objects.get(action="user.password_changed", object_id=str(user.pk))
    assert event.data == {"via": "password_reset"} and event.actor_id == user.pk
    notice = mail.outbox[-1]
    assert notice.to == ["ada@example.com"] and notice.subject == "Your Apertur password was changed"
    assert "with a password reset link" in notice.body
    assert "If this wasn't you, reset your password" in notice.body
    assert "http://localhost:8000/password-reset\n" in notice.body
    # Already confirmed: proven again, nothing to confirm.
    assert [(p["sender"], p["user"].pk, p["via"], p["was_confirmed"]) for p in proofs] == [
        (User, user.pk, "password_reset", True)
    ]
    assert not AuditEvent.objects.filter(action="user.email_confirmed").exists()


def test_a_reset_confirms_an_unconfirmed_email(
    django_capture_on_commit_callbacks: Any, proofs: list[dict[str, Any]]
) -> None:
    user = services.create_user(email="ada@example.com", password=PASSWORD, send_confirmation=False)
    _reset(Client(), "ada@example.com", django_capture_on_commit_callbacks)
    user.refresh_from_db()
    assert user.email_confirmed
    event = AuditEvent.objects.get(action="user.email_confirmed", object_id=str(user.pk))
    assert event.data == {"via": "password_reset"}
    assert [(p["via"], p["was_confirmed"]) for p in proofs] == [("password_reset", False)]


def test_a_used_reset_link_cannot_set_the_password_again(proofs: list[dict[str, Any]]) -> None:
    user = make_user("ada@example.com")
    token = default_token_generator.make_token(user)
    services.reset_password(user=user, token=token, password=NEW_PASSWORD)
    # A second submission of the same link (another tab): refused. Parallel submissions, under the row lock:
    # tests/test_concurrency.py (PostgreSQL).
    with pytest.raises(InvalidResetLink):
        services.reset_password(user=user, token=token, password="another-new-secret")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.filter(action="user.password_changed").count() == 1
    assert len(proofs) == 1


def test_a_reset_ends_the_other_sessions() -> None:
    user = make_user("ada@example.com")
    elsewhere = Client()
    elsewhere.force_login(user)
    assert elsewhere.get("/projects/").status_code == 200
    services.reset_password(user=user, token=default_token_generator.make_token(user), password=NEW_PASSWORD)
    assert elsewhere.get("/projects/").status_code == 302  # the session's auth hash no longer matches


def test_the_new_password_form_says_the_rules_in_one_line_like_the_other_password_forms(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Django's default help text is an HTML list, which the site's field template put inside a <p>: invalid
    # markup, shown as a loose bullet list unlike the signup and account pages.
    make_user("ada@example.com")
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/password-reset", {"email": "ada@example.com"})
    link = re.search(r"http://localhost:8000(/password-reset/\S+)", mail.outbox[-1].body)
    assert link
    html = client.get(link.group(1), follow=True).content.decode()
    assert "<ul>" not in html
    assert "At least 8 characters; not a common password." in html
    assert '<label for="id_new_password2">New password confirmation</label>' in html  # Django's, kept


def test_the_reset_mail_shows_the_address_as_typed(django_capture_on_commit_callbacks: Any) -> None:
    """Plain text: an address with an apostrophe reads as it is, not HTML-escaped (``o&#x27;brien``)."""
    make_user("o'brien@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        assert Client().post("/password-reset", {"email": "o'brien@example.com"}).status_code == 302
    assert "the Apertur account o'brien@example.com. To" in mail.outbox[-1].body


def test_a_reset_link_that_does_not_work_says_so_in_the_page_title() -> None:
    """WCAG 2.4.2: the title is the first thing a screen reader reads, and a tab's only label; it said "Choose a new
    password" above a page that offers no form."""
    html = Client().get("/password-reset/MQ/not-a-token", follow=True).content.decode()
    assert "<h1>This link does not work</h1>" in html
    assert "<title>This link does not work · Apertur</title>" in html
    user = make_user("ada@example.com")
    link = f"/password-reset/{urlsafe_base64_encode(force_bytes(user.pk))}/{default_token_generator.make_token(user)}"
    html = Client().get(link, follow=True).content.decode()
    assert "<h1>Choose a new password</h1>" in html
    assert "<title>Choose a new password · Apertur</title>" in html


class _DownBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[Any]) -> int:
        raise ConnectionRefusedError("mail server down")


def test_the_reset_mail_is_sent_like_the_other_account_mails(
    settings: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    """From the no-reply sender with a Reply-To of SUPPORT_EMAIL, as every other mail of the site; and a mail
    server that refuses it is logged with the recipient and subject for a resend (not only the account's id)."""
    make_user("ada@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        assert Client().post("/password-reset", {"email": "ada@example.com"}).status_code == 302
    sent = mail.outbox[-1]
    assert sent.to == ["ada@example.com"] and sent.subject == "Reset your Apertur password"
    assert sent.from_email == settings.DEFAULT_FROM_EMAIL
    assert sent.reply_to == [settings.SUPPORT_EMAIL]
    settings.EMAIL_BACKEND = f"{__name__}._DownBackend"
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        page = Client().post("/password-reset", {"email": "ada@example.com"})
    assert page.status_code == 302 and page["Location"] == "/password-reset/sent"
    assert "mail to ada@example.com failed: Reset your Apertur password" in caplog.text
