"""Input the database would refuse is refused by the forms and services first (a 500 on PostgreSQL before)."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.accounts import services
from apertur.accounts.errors import InvalidEmail
from apertur.accounts.models import User
from apertur.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LONG_EMAIL = "a" * 247 + "@ex.com"  # 254 characters: the most the column holds
TOO_LONG_EMAIL = "a" * 252 + "@ex.com"  # 259


def test_signup_with_a_259_character_email_is_a_form_error() -> None:
    response = Client().post("/signup", {"email": TOO_LONG_EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert "at most 254 characters" in response.content.decode()
    assert not User.objects.exists()


def test_the_longest_address_the_column_holds_signs_up() -> None:
    assert len(LONG_EMAIL) == 254
    response = Client().post("/signup", {"email": LONG_EMAIL, "password": PASSWORD})
    assert response.status_code == 302
    assert User.objects.filter(email=LONG_EMAIL).exists()


def test_services_refuse_a_too_long_email() -> None:
    with pytest.raises(InvalidEmail) as info:
        services.check_email(TOO_LONG_EMAIL)
    assert "254" in info.value.message
    with pytest.raises(InvalidEmail):
        services.create_user(email=TOO_LONG_EMAIL, password=PASSWORD)
    assert not User.objects.exists()


@pytest.mark.parametrize("path", ["/login", "/password-reset"])
def test_login_and_reset_forms_refuse_a_too_long_email(path: str) -> None:
    make_user("ada@example.com")
    response = Client().post(path, {"email": TOO_LONG_EMAIL, "password": PASSWORD})
    assert response.status_code in (200, 400)  # the form again, with its error (Django's reset view answers 200)
    assert "at most 254 characters" in response.content.decode()
