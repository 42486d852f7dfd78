"""The account page: change the password (ASVS 2.1.5/2.1.6), the email (through a link to the new address) and
log out other sessions."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client

from apertur.accounts import services
from apertur.accounts.login import ACCOUNT_PASSWORD_CHECK, EMAIL_CHANGE_PER_ACCOUNT
from apertur.accounts.models import User
from apertur.accounts.signals import mailbox_proven
from apertur.accounts.tokens import read_email_change_token
from apertur.core.models import AuditEvent
from apertur.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-brand-new-secret"


@pytest.fixture
def ada() -> User:
    return make_user("ada@example.com")


@pytest.fixture
def browser(ada: User) -> Client:
    client = Client()
    assert client.post("/login", {"email": ada.email, "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture
def proofs() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    mailbox_proven.connect(receiver)
    yield received
    mailbox_proven.disconnect(receiver)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session and client.get("/account").status_code == 200


# --- the page ---------------------------------------------------------------------------------------------


def test_the_account_page_needs_a_login() -> None:
    response = Client().get("/account")
    assert response.status_code == 302 and response["Location"] == "/login?next=/account"


def test_the_header_links_to_the_account_page_beside_the_email(browser: Client) -> None:
    html = browser.get("/projects/").content.decode()
    assert re.search(r'<span class="who">ada@example.com</span>\s*<a href="/account">Account</a>', html)


def test_the_page_has_its_three_forms_each_with_a_csrf_token(browser: Client) -> None:
    page = browser.get("/account")
    html = page.content.decode()
    assert page.status_code == 200 and "Your account" in html
    for action, button in [
        ("/account/email", "Change email"),
        ("/account/password", "Change password"),
        ("/account/sessions", "Log out other sessions"),
    ]:
        form = re.search(rf'<form method="post" action="{action}".*?</form>', html, re.S)
        assert form, action
        assert 'name="csrfmiddlewaretoken"' in form.group(0)
        assert f">{button}</button>" in form.group(0)
    for label in ["New email", "Current password", "New password", "New password, again"]:
        assert f">{label}</label>" in html


def test_every_form_of_the_page_checks_csrf(ada: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(ada)
    for path in ["/account/password", "/account/email", "/account/sessions"]:
        assert client.post(path, {"password-current_password": PASSWORD}).status_code == 403
    ada.refresh_from_db()
    assert ada.check_password(PASSWORD)


# --- password ---------------------------------------------------------------------------------------------


def _change_password(client: Client, current: str = PASSWORD, new: str = NEW_PASSWORD, again: str | None = None) -> Any:
    return client.post(
        "/account/password",
        {
            "password-current_password": current,
            "password-new_password": new,
            "password-new_password_again": new if again is None else again,
        },
    )


def test_changing_the_password_keeps_this_session_and_ends_the_others(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any
) -> None:
    laptop = Client()
    assert laptop.post("/login", {"email": ada.email, "password": PASSWORD}).status_code == 302
    assert _signed_in(laptop)
    with django_capture_on_commit_callbacks(execute=True):
        response = _change_password(browser)
    assert response.status_code == 302 and response["Location"] == "/account"
    assert "Your password was changed" in browser.get("/account").content.decode()
    assert _signed_in(browser)  # update_session_auth_hash
    assert not _signed_in(laptop)  # Django's session auth hash no longer matches: logged out
    ada.refresh_from_db()
    assert ada.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="user.password_changed", object_id=str(ada.pk))
    assert event.data == {"via": "account_page"}
    [notice] = mail.outbox
    assert notice.to == ["ada@example.com"] and notice.subject == "Your Apertur password was changed"
    assert "from the account page" in notice.body and "If this wasn't you, reset your password" in notice.body


@pytest.mark.parametrize(
    ("current", "new", "again", "message"),
    [
        ("wrong-password", NEW_PASSWORD, None, "Your current password is not correct."),
        (PASSWORD, NEW_PASSWORD, "something-else-entirely", "The two new passwords are not the same."),
        (PASSWORD, "short", None, "too short"),
        (PASSWORD, "password123", None, "too common"),
    ],
)
def test_a_refused_password_change_changes_nothing(
    ada: User, browser: Client, current: str, new: str, again: str | None, message: str
) -> None:
    response = _change_password(browser, current, new, again)
    assert response.status_code in (400, 422)
    assert message in response.content.decode()
    ada.refresh_from_db()
    assert ada.check_password(PASSWORD)
    assert not AuditEvent.objects.filter(action="user.password_changed").exists()
    assert mail.outbox == []


def test_guessing_the_current_password_is_limited(ada: User, browser: Client) -> None:
    for _ in range(ACCOUNT_PASSWORD_CHECK.max_hits):
        assert _change_password(browser, current="wrong-password").status_code == 422
    refused = _change_password(browser)  # even the right one, until the window ends
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many attempts" in refused.content.decode()
    ada.refresh_from_db()
    assert ada.check_password(PASSWORD)


def test_right_passwords_do_not_use_the_guessing_budget(browser: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.core.ratelimit import Limit

    # More changes than the guessing budget allows guesses: lift the budget of changes (its own test is below).
    monkeypatch.setattr(services, "PASSWORD_CHANGES_PER_ACCOUNT", Limit("t-password-changes", 100, 60 * 60))
    passwords = [PASSWORD] + [f"{NEW_PASSWORD}-{i}" for i in range(ACCOUNT_PASSWORD_CHECK.max_hits + 2)]
    for current, new in itertools.pairwise(passwords):
        assert _change_password(browser, current, new).status_code == 302


# --- other sessions ---------------------------------------------------------------------------------------


def test_log_out_other_sessions(ada: User, browser: Client) -> None:
    phone = Client()
    phone.post("/login", {"email": ada.email, "password": PASSWORD})
    assert _signed_in(phone)
    wrong = browser.post("/account/sessions", {"sessions-current_password": "wrong-password"})
    assert wrong.status_code == 422 and _signed_in(phone)
    response = browser.post("/account/sessions", {"sessions-current_password": PASSWORD})
    assert response.status_code == 302
    assert _signed_in(browser) and not _signed_in(phone)
    assert Client().login(email=ada.email, password=PASSWORD)  # the password itself is unchanged
    assert AuditEvent.objects.filter(action="user.sessions_ended", object_id=str(ada.pk)).count() == 1


# --- email ------------------------------------------------------------------------------------------------


def _request_change(client: Client, new_email: str, password: str = PASSWORD) -> Any:
    return client.post("/account/email", {"email-new_email": new_email, "email-current_password": password})


def _change_link(message: Any) -> str:
    match = re.search(r"http://localhost:8000(/account/email/confirm/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def test_changing_the_email_goes_through_a_link_to_the_new_address(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any, proofs: list[dict[str, Any]]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _request_change(browser, " Ada.New@Example.com ")
    assert response.status_code == 302
    assert "We sent a link to ada.new@example.com" in browser.get("/account").content.decode()
    [link_mail] = mail.outbox
    assert link_mail.to == ["ada.new@example.com"]
    assert link_mail.subject == "Confirm your new Apertur email address"
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"  # nothing changes before the link is opened
    assert browser.head(_change_link(link_mail)).status_code == 405  # a link checker's HEAD is no visit
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    with django_capture_on_commit_callbacks(execute=True):
        opened = browser.get(_change_link(link_mail))
    assert opened.status_code == 302 and opened["Location"] == "/account"
    ada.refresh_from_db()
    assert ada.email == "ada.new@example.com" and ada.email_confirmed
    event = AuditEvent.objects.get(action="user.email_changed", object_id=str(ada.pk))
    assert event.data == {"from": "ada@example.com", "to": "ada.new@example.com"}
    notice = mail.outbox[-1]
    assert notice.to == ["ada@example.com"]  # the OLD address is told
    assert notice.subject == "Your Apertur email address was changed"
    assert "from ada@example.com to ada.new@example.com" in notice.body
    assert [(p["user"].pk, p["via"], p["was_confirmed"]) for p in proofs] == [(ada.pk, "confirmation", True)]
    assert Client().login(email="ada.new@example.com", password=PASSWORD)
    # Used: the account's address is no longer the one the link was made for.
    again = browser.get(_change_link(link_mail))
    assert again.status_code == 400 and "This link is no longer valid" in again.content.decode()


def test_an_email_change_confirms_an_unconfirmed_account(
    django_capture_on_commit_callbacks: Any, proofs: list[dict[str, Any]]
) -> None:
    """A typo at signup: the confirmation link went nowhere. Changing to the right address proves it."""
    user = services.create_user(email="ada@exmaple.com", password=PASSWORD, send_confirmation=False)
    client = Client()
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(client, "ada@example.com")
    client.get(_change_link(mail.outbox[0]))
    user.refresh_from_db()
    assert user.email == "ada@example.com" and user.email_confirmed
    assert [(p["via"], p["was_confirmed"]) for p in proofs] == [("confirmation", False)]


def test_an_older_link_dies_once_another_change_is_made(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "first@example.com")
        _request_change(browser, "second@example.com")
    first, second = (_change_link(m) for m in mail.outbox)
    assert browser.get(second).status_code == 302
    assert browser.get(first).status_code == 400
    ada.refresh_from_db()
    assert ada.email == "second@example.com"


def test_an_older_link_dies_once_the_address_changed_and_came_back(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any
) -> None:
    """A→B→A: the account has its old address again, but it changed since the first link was sent, so that link
    (asked for at A, to move to a third address) must not move it now."""
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "stale@example.com")
        _request_change(browser, "away@example.com")
    stale, away = (_change_link(m) for m in mail.outbox)
    assert browser.get(away).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "ada@example.com")
    assert browser.get(_change_link(mail.outbox[-1])).status_code == 302
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    refused = browser.get(stale)
    assert refused.status_code == 400
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    assert not AuditEvent.objects.filter(action="user.email_changed", data__to="stale@example.com").exists()


def test_the_link_works_only_for_the_account_that_asked(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "ada.new@example.com")
    link = _change_link(mail.outbox[0])
    signed_out = Client().get(link)
    assert signed_out.status_code == 302 and signed_out["Location"].startswith("/login?next=/account/email/confirm/")
    mallory = Client()
    mallory.force_login(make_user("mallory@example.com"))
    refused = mallory.get(link)
    assert refused.status_code == 400 and "sent for another Apertur account" in refused.content.decode()
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    assert User.objects.get(email="mallory@example.com")


def test_the_link_opened_signed_out_says_why_the_login_is_asked_and_comes_back(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "ada.new@example.com")
    link = _change_link(mail.outbox[0])
    phone = Client()
    login_page = phone.get(phone.get(link)["Location"])
    assert "Log in with your current email address to confirm the new one" in login_page.content.decode()
    assert "login-purpose" not in Client().get("/login?next=/account").content.decode()  # only for that link
    logged_in = phone.post(f"/login?next={link}", {"email": ada.email, "password": PASSWORD, "next": link})
    assert logged_in.status_code == 302 and logged_in["Location"] == link
    assert phone.get(link)["Location"] == "/account"
    ada.refresh_from_db()
    assert ada.email == "ada.new@example.com"


def test_the_new_address_is_checked_again_when_the_link_is_opened(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "ada.new@example.com")
    make_user("ADA.NEW@example.com")  # signed up meanwhile (stored lower-cased)
    response = browser.get(_change_link(mail.outbox[0]))
    assert response.status_code == 409 and "already exists" in response.content.decode()
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"


def test_links_expire_after_three_days(ada: User, browser: Client, django_capture_on_commit_callbacks: Any) -> None:
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        browser.force_login(ada)
        with django_capture_on_commit_callbacks(execute=True):
            _request_change(browser, "ada.new@example.com")
        token = _change_link(mail.outbox[0]).rsplit("/", 1)[1]
        traveller.move_to(start + dt.timedelta(days=2, hours=23))
        assert read_email_change_token(token) is not None
        traveller.move_to(start + dt.timedelta(days=3, minutes=1))
        assert read_email_change_token(token) is None
        browser.force_login(ada)
        assert browser.get(_change_link(mail.outbox[0])).status_code == 400
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"


@pytest.mark.parametrize("token", ["garbage", "eyJ1IjoxfQ:1abc:forged"])
def test_forged_links_are_refused(browser: Client, token: str) -> None:
    response = browser.get(f"/account/email/confirm/{token}")
    assert response.status_code == 400 and "This link is no longer valid" in response.content.decode()


@pytest.mark.parametrize(
    ("new_email", "password", "message"),
    [
        ("ada.new@example.com", "wrong-password", "Your current password is not correct."),
        ("ADA@example.com", PASSWORD, "This is already your email address."),
        ("taken@example.com", PASSWORD, "An account with this email already exists."),
        ("not-an-email", PASSWORD, "Enter a valid email address."),
        ("a" * 250 + "@ex.com", PASSWORD, "at most 254 characters"),
    ],
)
def test_a_refused_email_change_sends_nothing(
    browser: Client, django_capture_on_commit_callbacks: Any, new_email: str, password: str, message: str
) -> None:
    make_user("taken@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = _request_change(browser, new_email, password)
    assert response.status_code in (400, 409, 422)
    assert message in response.content.decode()
    assert mail.outbox == []


def test_email_change_requests_are_limited(browser: Client, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(EMAIL_CHANGE_PER_ACCOUNT.max_hits):
            assert _request_change(browser, f"new{i}@example.com").status_code == 302
        refused = _request_change(browser, "one-more@example.com")
    assert refused.status_code == 429 and "Too many attempts" in refused.content.decode()
    assert len(mail.outbox) == EMAIL_CHANGE_PER_ACCOUNT.max_hits


def test_asking_for_taken_addresses_spends_the_same_budget(browser: Client) -> None:
    """'Already has an account' is not an unlimited oracle of registered addresses."""
    taken = [make_user(f"taken{i}@example.com").email for i in range(EMAIL_CHANGE_PER_ACCOUNT.max_hits + 2)]
    answers = [_request_change(browser, address).status_code for address in taken]
    assert answers[: EMAIL_CHANGE_PER_ACCOUNT.max_hits] == [409] * EMAIL_CHANGE_PER_ACCOUNT.max_hits
    assert answers[EMAIL_CHANGE_PER_ACCOUNT.max_hits :] == [429, 429]
    assert _request_change(browser, "free@example.com").status_code == 429


def test_wrong_passwords_from_elsewhere_do_not_lock_the_owner_out(ada: User) -> None:
    """Someone holding a stolen session at another address spends their own budget, not the owner's."""
    from apertur.accounts.login import ACCOUNT_PASSWORD_CHECK

    thief, owner = Client(REMOTE_ADDR="203.0.113.9"), Client(REMOTE_ADDR="198.51.100.7")
    thief.force_login(ada)
    owner.force_login(ada)
    form = {"sessions-current_password": "not-the-password"}
    for _ in range(ACCOUNT_PASSWORD_CHECK.max_hits):
        assert thief.post("/account/sessions", form).status_code in (400, 422)
    assert thief.post("/account/sessions", form).status_code == 429
    done = owner.post("/account/sessions", {"sessions-current_password": PASSWORD})
    assert done.status_code == 302 and _signed_in(owner) and not _signed_in(thief)


def test_a_pending_email_change_dies_when_the_account_is_claimed_by_a_password_reset(
    django_capture_on_commit_callbacks: Any,
) -> None:
    """ "Unexpired email change" (Sudhodanan & Paverd 2022): someone signs up with ada's address, asks to move the
    account to their own address and keeps the link. Ada claims the account with a password reset; later,
    signed in, she is talked into opening that link: the account would move to their address, and a reset from
    there would take it. A new password ends what the old one started: sessions, and pending email changes."""
    from django.contrib.auth.tokens import default_token_generator

    squatter = Client()
    assert squatter.post("/signup", {"email": "ada@example.com", "password": PASSWORD}).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        assert _request_change(squatter, "mallory@example.com").status_code == 302
    link = _change_link(mail.outbox[-1])
    user = User.objects.get(email="ada@example.com")
    services.reset_password(user=user, token=default_token_generator.make_token(user), password=NEW_PASSWORD)
    ada = Client()
    assert ada.post("/login", {"email": "ada@example.com", "password": NEW_PASSWORD}).status_code == 302
    response = ada.get(link)
    assert response.status_code == 400 and "This link is no longer valid" in response.content.decode()
    user.refresh_from_db()
    assert user.email == "ada@example.com"


def test_a_password_change_ends_pending_email_changes_too(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "ada.new@example.com")
        assert _change_password(browser).status_code == 302
    response = browser.get(_change_link(mail.outbox[0]))
    assert response.status_code == 400
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"


def test_an_email_change_link_survives_a_secret_key_rotation_with_the_old_key_as_fallback(
    ada: User, browser: Client, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The link's signature was checked against SECRET_KEY_FALLBACKS (``signing.loads``) but its password stamp
    only against the new key: every pending email change died at a key rotation."""
    old_key = settings.SECRET_KEY
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "ada.new@example.com")
    link = _change_link(mail.outbox[0])
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" + "x" * 50, [old_key]
    assert browser.get(link)["Location"] == "/account"
    ada.refresh_from_db()
    assert ada.email == "ada.new@example.com"
    # Once the old key is dropped from the fallbacks, what it signed is refused.
    with django_capture_on_commit_callbacks(execute=True):
        _request_change(browser, "ada.third@example.com")
    token = _change_link(mail.outbox[-1]).rsplit("/", 1)[-1]
    assert read_email_change_token(token) is not None
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "another-key-" + "y" * 50, []
    with pytest.raises(services.InvalidEmailChangeLink):
        services.confirm_email_change(user=ada, token=token)
    ada.refresh_from_db()
    assert ada.email == "ada.new@example.com"


def test_password_changes_are_limited_each_one_mails_the_account(
    ada: User, browser: Client, django_capture_on_commit_callbacks: Any
) -> None:
    """Each change mails the account's address ("your password was changed") and is audited: changing back and forth
    between two passwords was an unlimited stream of mail sent by Apertur. Refused past the budget: nothing
    changed, audited or sent."""
    from apertur.accounts.login import PASSWORD_CHANGES_PER_ACCOUNT

    passwords = itertools.cycle([(PASSWORD, NEW_PASSWORD), (NEW_PASSWORD, PASSWORD)])
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(PASSWORD_CHANGES_PER_ACCOUNT.max_hits):
            current, new = next(passwords)
            assert _change_password(browser, current, new).status_code == 302
        current, new = next(passwords)
        refused = _change_password(browser, current, new)
    assert refused.status_code == 429 and "Too many password changes" in refused.content.decode()
    assert len(mail.outbox) == PASSWORD_CHANGES_PER_ACCOUNT.max_hits
    assert AuditEvent.objects.filter(action="user.password_changed").count() == PASSWORD_CHANGES_PER_ACCOUNT.max_hits
    ada.refresh_from_db()
    assert ada.check_password(current)  # unchanged
    assert 3 <= PASSWORD_CHANGES_PER_ACCOUNT.max_hits <= 20
