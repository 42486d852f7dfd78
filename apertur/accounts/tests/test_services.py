from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail

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
