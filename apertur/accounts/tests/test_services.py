from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.core import mail
from django.test import Client

from apertur.accounts import services
from apertur.accounts.errors import EmailTaken, InvalidConfirmationLink, InvalidEmail, InvalidPassword
from apertur.accounts.models import User
from apertur.core.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_create_user_normalises_email_and_hashes_with_argon2(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    user = services.create_user(email="  Ada@Example.COM ", password="correct-horse-battery")
    assert user.email == "ada@example.com"
    assert user.password.startswith("argon2$")
    assert user.check_password("correct-horse-battery")
    assert user.public_id.startswith("usr_")
    assert AuditEvent.objects.filter(action="user.created", object_id=str(user.pk)).exists()


@pytest.mark.parametrize(
    ("email", "password", "error", "message"),
    [
        ("not-an-email", "correct-horse-battery", InvalidEmail, "valid email"),
        ("ada@example.com", "short", InvalidPassword, "too short"),
        ("ada@example.com", "password123", InvalidPassword, "too common"),
        ("ada@example.com", "12345678901", InvalidPassword, "entirely numeric"),
    ],
)
def test_bad_input_stores_nothing(email: str, password: str, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        services.create_user(email=email, password=password)
    assert message in info.value.message
    assert User.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_duplicate_email_case_insensitive() -> None:
    services.create_user(email="ada@example.com", password="correct-horse-battery")
    with pytest.raises(EmailTaken):
        services.create_user(email="ADA@example.com", password="correct-horse-battery")
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    "same_mailbox",
    [
        "ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",  # full-width letters: mail goes to example.com
        "ada@example.com\u200b",  # a zero-width space, dropped on the way to the mail server
        "ada@EXAMPLE.com",
    ],
)
def test_an_address_the_mail_server_reads_as_a_taken_one_is_taken(same_mailbox: str) -> None:
    """The mail of an account goes to its domain as IDNA encodes it (Django's ``sanitize_address``): two spellings
    of one mailbox must not make two accounts, one of them a stranger's with the owner's confirmation mail."""
    services.create_user(email="ada@example.com", password="correct-horse-battery")
    with pytest.raises(EmailTaken):
        services.create_user(email=same_mailbox, password="correct-horse-battery")
    assert User.objects.count() == 1


def test_an_international_domain_is_stored_in_one_form_whatever_its_spelling() -> None:
    composed = services.create_user(email="ada@ex\u00e4mple.com", password="correct-horse-battery")
    assert composed.email == "ada@ex\u00e4mple.com"  # kept readable, not as punycode
    with pytest.raises(EmailTaken):  # "a" and a combining diaeresis: the same domain
        services.create_user(email="ada@exa\u0308mple.com", password="correct-horse-battery")
    with pytest.raises(EmailTaken):
        services.create_user(email="ada@xn--exmple-cua.com", password="correct-horse-battery")
    assert User.objects.count() == 1


def test_accounts_stored_in_another_spelling_are_moved_to_the_one_form_and_can_log_in() -> None:
    migration = importlib.import_module("apertur.accounts.migrations.0002_email_domain_as_delivered")
    wide = services.create_user(email="ada@example.com", password="correct-horse-battery")
    decomposed = services.create_user(email="bob@example.org", password="correct-horse-battery")
    twin = services.create_user(email="ada@example.net", password="correct-horse-battery")
    User.objects.filter(pk=wide.pk).update(email="ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com")
    User.objects.filter(pk=decomposed.pk).update(email="bob@exa\u0308mple.org")
    User.objects.filter(pk=twin.pk).update(email="ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com\u200b")
    migration.renormalize(django_apps, None)
    assert User.objects.get(pk=wide.pk).email == "ada@example.com"
    assert User.objects.get(pk=decomposed.pk).email == "bob@ex\u00e4mple.org"
    assert User.objects.get(pk=twin.pk).email.endswith("\u200b")  # its form is taken: left for staff
    assert Client().login(email="bob@exa\u0308mple.org", password="correct-horse-battery")


def test_a_password_reset_finds_the_account_in_any_spelling_of_its_domain(
    django_capture_on_commit_callbacks: Any,
) -> None:
    services.create_user(email="ada@ex\u00e4mple.com", password="correct-horse-battery", send_confirmation=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert Client().post("/password-reset", {"email": "Ada@Exa\u0308mple.com"}).status_code == 302
    assert [m.to for m in mail.outbox] == [["ada@ex\u00e4mple.com"]]


def _link(body: str) -> str:
    match = re.search(r"/confirm-email/([^/\s]+)/([^/\s]+)", body)
    assert match, body
    return match.group(0)


def test_confirmation_email_confirms_once(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        user = services.create_user(email="ada@example.com", password="correct-horse-battery")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ada@example.com"]
    _, _, uid, token = _link(mail.outbox[0].body).split("/")
    confirmed = services.confirm_email(uidb64=uid, token=token, signed_in=user, proof="session")
    assert confirmed.email_confirmed_at is not None
    assert AuditEvent.objects.filter(action="user.email_confirmed", object_id=str(user.pk)).count() == 1


def test_forged_or_expired_confirmation_is_refused(django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        user = services.create_user(email="ada@example.com", password="correct-horse-battery")
    _, _, uid, token = _link(mail.outbox[0].body).split("/")
    with pytest.raises(InvalidConfirmationLink):
        services.confirm_email(uidb64=uid, token=token[:-2] + "zz", signed_in=user, proof="session")
    with pytest.raises(InvalidConfirmationLink):
        services.confirm_email(uidb64="garbage", token=token, signed_in=user, proof="session")
    user.refresh_from_db()
    assert user.email_confirmed_at is None


def test_no_mail_when_the_transaction_rolls_back(django_capture_on_commit_callbacks: Any) -> None:
    from django.db import transaction

    def sign_up_then_fail() -> None:
        with transaction.atomic():
            services.create_user(email="ada@example.com", password="correct-horse-battery")
            raise RuntimeError("boom")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        sign_up_then_fail()
    assert mail.outbox == []
    assert User.objects.count() == 0
