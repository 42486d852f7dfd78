"""Email confirmation: links, their lifetime, asking for a new one (signed in or out) and its limits."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from apertur.accounts import services
from apertur.accounts.errors import InvalidConfirmationLink
from apertur.accounts.login import CONFIRM_RESEND_PER_EMAIL, CONFIRM_RESEND_PER_IP
from apertur.accounts.models import User
from apertur.accounts.signals import mailbox_proven
from apertur.accounts.tokens import email_confirmation_token
from apertur.core.models import AuditEvent
from apertur.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _unconfirmed(email: str = "ada@example.com") -> User:
    return services.create_user(email=email, password=PASSWORD, send_confirmation=False)


def _csrf_free(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


# --- item 1: the signed-in "Send it again" ------------------------------------------------------------------


def test_resending_is_limited_per_account(django_capture_on_commit_callbacks: Any) -> None:
    """30 posts used to send 31 emails: anyone could sign up with a victim's address and mail-bomb it."""
    user = _unconfirmed()
    client = Client()
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=True):
        answers = [client.post("/confirm-email/resend", {"next": "/projects/"}) for _ in range(30)]
    assert len(mail.outbox) == CONFIRM_RESEND_PER_EMAIL.max_hits
    assert [a.status_code for a in answers[: CONFIRM_RESEND_PER_EMAIL.max_hits]] == [302] * 3
    refused = answers[CONFIRM_RESEND_PER_EMAIL.max_hits]
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    html = refused.content.decode()
    assert "Too many attempts. Try again in" in html and 'class="topbar"' in html


def test_resending_is_limited_per_ip(django_capture_on_commit_callbacks: Any) -> None:
    for i in range(CONFIRM_RESEND_PER_IP.max_hits):
        client = Client(REMOTE_ADDR="10.5.5.5")
        client.force_login(_unconfirmed(f"u{i}@example.com"))
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post("/confirm-email/resend").status_code == 302
    client = Client(REMOTE_ADDR="10.5.5.5")
    client.force_login(_unconfirmed("late@example.com"))
    assert client.post("/confirm-email/resend").status_code == 429
    signed_out = Client(REMOTE_ADDR="10.5.5.5").post("/confirm-email/resend", {"email": "late@example.com"})
    assert signed_out.status_code == 429
    assert len(mail.outbox) == CONFIRM_RESEND_PER_IP.max_hits


def test_a_confirmed_account_is_sent_nothing() -> None:
    client = Client()
    client.force_login(make_user("ada@example.com"))
    assert client.post("/confirm-email/resend", {"next": "/projects/"})["Location"] == "/projects/"
    assert mail.outbox == []


# --- item 6: a new link while signed out; the links' own lifetime ---------------------------------------------


def test_an_expired_link_opened_signed_out_offers_a_new_one(django_capture_on_commit_callbacks: Any) -> None:
    user = _unconfirmed()
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    page = Client().get(f"/confirm-email/{uid}/bad-token")
    html = page.content.decode()
    assert page.status_code == 400
    assert 'action="/confirm-email/resend"' in html and '<label for="id_email">Email</label>' in html
    with django_capture_on_commit_callbacks(execute=True):
        sent = Client().post("/confirm-email/resend", {"email": " ADA@example.com "})
    assert sent.status_code == 200 and "Check your email" in sent.content.decode()
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    link = re.search(r"http://localhost:8000(/confirm-email/\S+)", mail.outbox[0].body)
    assert link
    # Signed out (another device): the account's password confirms.
    assert "Email confirmed" in Client().post(link.group(1), {"password": PASSWORD}).content.decode()
    user.refresh_from_db()
    assert user.email_confirmed


def test_asking_for_a_link_signed_out_reveals_no_account(django_capture_on_commit_callbacks: Any) -> None:
    make_user("confirmed@example.com")
    _unconfirmed("pending@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        answers = {
            email: Client().post("/confirm-email/resend", {"email": email})
            for email in ("confirmed@example.com", "pending@example.com", "nobody@example.com")
        }
    assert {a.status_code for a in answers.values()} == {200}
    bodies = {_csrf_free(a.content.decode()).replace(email, "E") for email, a in answers.items()}
    assert len(bodies) == 1  # the same page for all three
    assert [m.to for m in mail.outbox] == [["pending@example.com"]]


def test_asking_for_a_link_signed_out_is_limited_per_address_silently(
    django_capture_on_commit_callbacks: Any,
) -> None:
    _unconfirmed()
    for i in range(CONFIRM_RESEND_PER_EMAIL.max_hits + 3):
        with django_capture_on_commit_callbacks(execute=True):
            answer = Client(REMOTE_ADDR=f"10.8.0.{i}").post("/confirm-email/resend", {"email": "ada@example.com"})
        assert answer.status_code == 200  # the same answer past the budget: it must not reveal the account
    assert len(mail.outbox) == CONFIRM_RESEND_PER_EMAIL.max_hits


def test_the_signed_out_form_checks_its_input() -> None:
    page = Client().get("/confirm-email/resend")
    assert page.status_code == 200 and '<label for="id_email">Email</label>' in page.content.decode()
    bad = Client().post("/confirm-email/resend", {"email": "a" * 250 + "@ex.com"})
    assert bad.status_code == 400 and mail.outbox == []


def test_confirmation_links_last_three_days_and_reset_links_three_hours() -> None:
    from django.contrib.auth.tokens import default_token_generator

    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        user = _unconfirmed()
        confirm = email_confirmation_token.make_token(user)
        reset = default_token_generator.make_token(user)
        traveller.move_to(start + dt.timedelta(hours=4))
        assert email_confirmation_token.check_token(user, confirm)  # was dead after 3 hours
        assert not default_token_generator.check_token(user, reset)  # unchanged: 3 hours
        traveller.move_to(start + dt.timedelta(days=2, hours=23))
        assert email_confirmation_token.check_token(user, confirm)
        traveller.move_to(start + dt.timedelta(days=3, minutes=1))
        assert not email_confirmation_token.check_token(user, confirm)


# --- item 8: the token is checked first ---------------------------------------------------------------------


def test_a_garbage_token_for_a_confirmed_account_is_not_a_success() -> None:
    """It answered "Email confirmed" (200) without checking the token: anyone could tell which accounts were
    confirmed by trying /confirm-email/<their uid>/anything."""
    confirmed = make_user("confirmed@example.com")
    pending = _unconfirmed("pending@example.com")
    pages = []
    for user in (confirmed, pending):
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        page = Client().get(f"/confirm-email/{uid}/garbage-token")
        assert page.status_code == 400
        assert "Email confirmed" not in page.content.decode()
        pages.append(_csrf_free(page.content.decode()))
    assert pages[0] == pages[1]  # nothing tells the two apart
    assert "This link is no longer valid" in pages[0] and "log in" in pages[0]
    with pytest.raises(InvalidConfirmationLink):
        services.confirm_email(
            uidb64=urlsafe_base64_encode(force_bytes(confirmed.pk)),
            token="garbage",
            signed_in=confirmed,
            proof="session",
        )


def test_a_used_link_is_no_longer_valid(django_capture_on_commit_callbacks: Any) -> None:
    user = _unconfirmed()
    path = services.confirmation_path(user)
    signed_in = Client()
    signed_in.force_login(user)
    assert signed_in.get(path).status_code == 200
    again = Client().get(path)
    assert again.status_code == 400 and "This link is no longer valid" in again.content.decode()
    mine = signed_in.get(path).content.decode()
    assert "is confirmed: there is nothing more to do" in mine


def test_confirming_proves_the_mailbox() -> None:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    mailbox_proven.connect(receiver)
    try:
        user = _unconfirmed()
        path = services.confirmation_path(user)
        Client().get(path)  # signed out: asks for the password, proves nothing yet
        signed_in = Client()
        signed_in.force_login(user)
        signed_in.get(path)
        signed_in.get(path)  # a used link proves nothing
    finally:
        mailbox_proven.disconnect(receiver)
    assert [(r["user"].pk, r["via"], r["was_confirmed"]) for r in received] == [(user.pk, "confirmation", False)]
    event = AuditEvent.objects.get(action="user.email_confirmed", object_id=str(user.pk))
    assert event.data == {"via": "confirmation", "proof": "session"}


# --- pre-account hijacking (Sudhodanan & Paverd, "Pre-hijacked accounts", USENIX Security 2022) ----------------
# Signup needs no proof of the address: anyone can sign up with someone else's email and a password they know.
# The confirmation link reaches the address's real owner; opening it must not hand them an account whose
# password (and sessions) belong to someone else.

SQUATTER_PASSWORD = "squatters-own-secret"
OWNER_PASSWORD = "the-owners-new-secret"


def _squat(email: str = "ada@example.com", capture: Any = None) -> tuple[Client, str]:
    """Someone signs up with another person's address and stays signed in; returns their browser and the link
    the address's owner receives."""
    squatter = Client()
    assert squatter.post("/signup", {"email": email, "password": SQUATTER_PASSWORD}).status_code == 302
    user = User.objects.get(email=email)
    return squatter, services.confirmation_path(user)


def _is_signed_in(client: Client) -> bool:
    return client.get("/account").status_code == 200


def test_a_link_opened_signed_out_asks_for_the_password_and_confirms_nothing() -> None:
    """Opening the link used to confirm the address at once: the owner's click made the squatter's account a
    confirmed one, with the squatter's password and live session."""
    _, path = _squat()
    page = Client().get(path)
    html = page.content.decode()
    assert page.status_code == 200
    assert "ada@example.com" in html and '<label for="id_password">Password</label>' in html
    assert ">Confirm and log in</button>" in html and ">Choose a new password</button>" in html
    user = User.objects.get(email="ada@example.com")
    assert not user.email_confirmed
    assert not AuditEvent.objects.filter(action="user.email_confirmed").exists()


def test_the_accounts_password_confirms_and_logs_in() -> None:
    """The person who signed up, opening the link on their phone: the password they chose, then done."""
    _, path = _squat()
    phone = Client()
    phone.get(path)
    done = phone.post(path, {"password": SQUATTER_PASSWORD})
    assert done.status_code == 200 and "Email confirmed" in done.content.decode()
    assert "Please confirm your email address" not in done.content.decode()  # the banner sees the confirmation
    user = User.objects.get(email="ada@example.com")
    assert user.email_confirmed and _is_signed_in(phone)
    event = AuditEvent.objects.get(action="user.email_confirmed", object_id=str(user.pk))
    assert event.data == {"via": "confirmation", "proof": "password"}
    again = phone.post(path, {"password": SQUATTER_PASSWORD})  # single-use still
    assert again.status_code == 400 and "This link is no longer valid" in again.content.decode()


def test_a_wrong_password_confirms_nothing_and_is_limited_like_a_login(settings: Any) -> None:
    settings.LOGIN_RATE_PER_ACCOUNT_IP = (3, 900)
    _, path = _squat()
    owner = Client()
    answers = [owner.post(path, {"password": f"guess-number-{i}"}) for i in range(4)]
    assert [a.status_code for a in answers] == [400, 400, 400, 429]
    assert "Incorrect password." in answers[0].content.decode()
    assert "Too many attempts" in answers[3].content.decode() and int(answers[3]["Retry-After"]) > 0
    user = User.objects.get(email="ada@example.com")
    assert not user.email_confirmed and not _is_signed_in(owner)
    assert AuditEvent.objects.filter(action="user.login_failed", object_id=str(user.pk)).count() == 3


def test_the_signed_in_account_confirms_in_one_click() -> None:
    squatter_or_owner, path = _squat()  # the browser that signed up
    page = squatter_or_owner.get(path)
    assert page.status_code == 200 and "Email confirmed" in page.content.decode()
    assert "Please confirm your email address" not in page.content.decode()
    user = User.objects.get(email="ada@example.com")
    assert user.email_confirmed
    event = AuditEvent.objects.get(action="user.email_confirmed", object_id=str(user.pk))
    assert event.data == {"via": "confirmation", "proof": "session"}


def test_a_browser_signed_in_to_another_account_must_give_the_password() -> None:
    _, path = _squat()
    other = Client()
    other.force_login(make_user("grace@example.com"))
    page = other.get(path)
    assert (
        page.status_code == 200 and "You are signed in as <strong>grace@example.com</strong>" in page.content.decode()
    )
    assert not User.objects.get(email="ada@example.com").email_confirmed


def test_this_wasnt_me_claims_the_account_through_a_password_reset() -> None:
    """The owner does not know the password: the link leads to choosing one (the reset path), which ends the
    squatter's session, confirms the address and uses up the link."""
    squatter, path = _squat()
    owner = Client()
    owner.get(path)
    started = owner.post(path, {"step": "new-password"})
    assert started.status_code == 302 and started["Location"].startswith("/password-reset/")
    form = owner.get(started["Location"], follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    set_url = form.redirect_chain[-1][0]
    done = owner.post(set_url, {"new_password1": OWNER_PASSWORD, "new_password2": OWNER_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/password-reset/done"
    user = User.objects.get(email="ada@example.com")
    assert user.email_confirmed and user.check_password(OWNER_PASSWORD)
    assert not _is_signed_in(squatter)
    assert not Client().login(email="ada@example.com", password=SQUATTER_PASSWORD)
    actions = list(AuditEvent.objects.filter(object_id=str(user.pk)).values_list("action", "data"))
    assert ("user.password_reset_started", {"via": "confirmation_link"}) in actions
    assert ("user.email_confirmed", {"via": "password_reset"}) in actions
    assert Client().get(path).status_code == 400  # the confirmation link is used up


def test_this_wasnt_me_needs_a_valid_link() -> None:
    _, path = _squat()
    broken = path.rstrip("/")[:-3] + "zzz"
    answer = Client().post(broken, {"step": "new-password"})
    assert answer.status_code == 400 and "This link is no longer valid" in answer.content.decode()
    assert not AuditEvent.objects.filter(action="user.password_reset_started").exists()


def test_the_confirmation_forms_check_csrf() -> None:
    _, path = _squat()
    client = Client(enforce_csrf_checks=True)
    assert client.post(path, {"password": SQUATTER_PASSWORD}).status_code == 403
    assert client.post(path, {"step": "new-password"}).status_code == 403
    assert not User.objects.get(email="ada@example.com").email_confirmed


def test_the_service_refuses_a_confirmation_by_anyone_but_the_account() -> None:
    from apertur.accounts.errors import ConfirmationNeedsLogin

    user = _unconfirmed()
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = email_confirmation_token.make_token(user)
    for someone in (None, make_user("grace@example.com")):
        with pytest.raises(ConfirmationNeedsLogin):
            services.confirm_email(uidb64=uid, token=token, signed_in=someone, proof="session")
    user.refresh_from_db()
    assert not user.email_confirmed


def test_dont_know_the_password_counts_against_the_reset_budget() -> None:
    """Each "Choose a new password" writes an audit entry: it spends the password reset's per-IP budget (10 in 15
    minutes), so a script holding a link cannot write them without end."""
    from apertur.accounts.login import RESET_PER_IP

    _, path = _squat()
    owner = Client()
    for _ in range(RESET_PER_IP.max_hits):
        assert owner.post(path, {"step": "new-password"}).status_code == 302
    refused = owner.post(path, {"step": "new-password"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many attempts" in refused.content.decode()
    assert AuditEvent.objects.filter(action="user.password_reset_started").count() == RESET_PER_IP.max_hits
