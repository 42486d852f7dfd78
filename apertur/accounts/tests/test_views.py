from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core import mail
from django.test import Client

from apertur.accounts.models import User
from apertur.projects.models import Project
from apertur.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def test_login_page_has_the_fixed_accessible_names() -> None:
    html = Client().get("/login").content.decode()
    assert re.search(r'<label for="id_email">Email</label>', html)
    assert re.search(r'<label for="id_password">Password</label>', html)
    assert ">Log in</button>" in html


def test_signup_page_has_the_fixed_accessible_names() -> None:
    html = Client().get("/signup").content.decode()
    assert '<label for="id_email">Email</label>' in html
    assert '<label for="id_password">Password</label>' in html
    # No second password field: a person or test filling the labelled Email and Password signs up (a mistyped
    # password is recovered by the reset link).
    assert "confirm_password" not in html and "Confirm password" not in html
    assert ">Sign up</button>" in html


def test_login_and_logout() -> None:
    user = make_user("ada@example.com")
    client = Client()
    response = client.post("/login", {"email": "ADA@example.com", "password": PASSWORD, "next": "/partners/"})
    assert response.status_code == 302 and response["Location"] == "/partners/"
    assert client.session["_auth_user_id"] == str(user.pk)
    home = client.post("/logout", follow=True)
    assert "_auth_user_id" not in client.session
    assert "You are logged out." in home.content.decode()  # said once, on the page it lands on
    assert "You are logged out." not in client.get("/").content.decode()


def test_a_typed_logout_url_asks_before_logging_out() -> None:
    user = make_user("ada@example.com")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    page = client.get("/logout")
    html = page.content.decode()
    assert page.status_code == 200 and "Log out of Apertur?" in html and "ada@example.com" in html
    assert client.session["_auth_user_id"] == str(user.pk)  # a GET (a link, an image) never logs out
    assert client.post("/logout").status_code == 403  # nor a POST from another site without the token
    token = page.cookies["csrftoken"].value
    assert client.post("/logout", {"csrfmiddlewaretoken": token}).status_code == 302
    assert "_auth_user_id" not in client.session
    assert Client().get("/logout")["Location"] == "/"  # signed out already: nothing to ask


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_login_never_redirects_off_site(target: str) -> None:
    make_user("ada@example.com")
    response = Client().post("/login", {"email": "ada@example.com", "password": PASSWORD, "next": target})
    assert response.status_code == 302 and response["Location"] == "/"


def test_wrong_password_is_a_generic_error() -> None:
    make_user("ada@example.com")
    response = Client().post("/login", {"email": "ada@example.com", "password": "wrong-password"})
    assert response.status_code == 400
    assert "Incorrect email or password." in response.content.decode()


def test_login_is_rate_limited_per_account(settings: Any) -> None:
    settings.LOGIN_RATE_PER_ACCOUNT = (3, 900)
    make_user("ada@example.com")
    for i in range(3):
        client = Client(REMOTE_ADDR=f"10.0.0.{i}")
        assert client.post("/login", {"email": "ada@example.com", "password": "nope-nope"}).status_code == 400
    # Even the right password is refused from a fresh IP while the account's budget is spent.
    response = Client(REMOTE_ADDR="10.0.0.99").post("/login", {"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many attempts" in response.content.decode()


def test_login_is_rate_limited_per_ip(settings: Any) -> None:
    settings.LOGIN_RATE_PER_IP = (3, 900)
    client = Client(REMOTE_ADDR="10.1.1.1")
    for i in range(3):
        client.post("/login", {"email": f"guess{i}@example.com", "password": "nope-nope"})
    make_user("ada@example.com")
    assert client.post("/login", {"email": "ada@example.com", "password": PASSWORD}).status_code == 429
    assert (
        Client(REMOTE_ADDR="10.1.1.2").post("/login", {"email": "ada@example.com", "password": PASSWORD}).status_code
        == 302
    )


def test_successful_logins_do_not_use_the_ip_budget(settings: Any) -> None:
    """An office behind one NAT address: its people log in all day. Only failures spend the per-IP and
    per-account budgets (the module's promise, OWASP ASVS 2.2.1); 50 good logins used to lock the address out."""
    settings.LOGIN_RATE_PER_IP = (5, 900)
    settings.LOGIN_RATE_PER_ACCOUNT = (5, 900)
    users = [make_user(f"staff{i}@example.com") for i in range(3)]
    office = "10.6.6.6"
    for i in range(20):
        client = Client(REMOTE_ADDR=office)
        response = client.post("/login", {"email": users[i % 3].email, "password": PASSWORD})
        assert response.status_code == 302, (i, response.status_code)
    # Failures still count, and a success in between does not give their hits back.
    for i in range(4):
        Client(REMOTE_ADDR=office).post("/login", {"email": f"guess{i}@example.com", "password": "nope-nope"})
    assert Client(REMOTE_ADDR=office).post("/login", {"email": users[0].email, "password": PASSWORD}).status_code == 302
    Client(REMOTE_ADDR=office).post("/login", {"email": "guess9@example.com", "password": "nope-nope"})
    refused = Client(REMOTE_ADDR=office).post("/login", {"email": users[1].email, "password": PASSWORD})
    assert refused.status_code == 429


def test_successful_logins_do_not_use_the_account_budget(settings: Any) -> None:
    settings.LOGIN_RATE_PER_ACCOUNT = (3, 900)
    make_user("ada@example.com")
    for i in range(10):  # her phone, her laptop, the office…
        response = Client(REMOTE_ADDR=f"10.7.0.{i}").post("/login", {"email": "ada@example.com", "password": PASSWORD})
        assert response.status_code == 302
    for i in range(3):
        Client(REMOTE_ADDR=f"10.7.1.{i}").post("/login", {"email": "ada@example.com", "password": "nope-nope"})
    assert (
        Client(REMOTE_ADDR="10.7.2.1").post("/login", {"email": "ada@example.com", "password": PASSWORD}).status_code
        == 429
    )


def test_signup_creates_account_and_first_project(django_capture_on_commit_callbacks: Any) -> None:
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/signup",
            {"email": "new@example.com", "password": "correct-horse-battery"},  # the two labelled fields
        )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert [p.name for p in Project.objects.filter(owner=user)] == ["My project"]
    assert mail.outbox[0].subject == "Confirm your Apertur email address"
    link = re.search(r"http://localhost:8000(/confirm-email/\S+)", mail.outbox[0].body)
    assert link
    page = client.get(link.group(1))
    assert "Email confirmed" in page.content.decode()
    user.refresh_from_db()
    assert user.email_confirmed


@pytest.mark.parametrize("target", ["a%00b", "projects"])
def test_signup_and_login_with_a_relative_next_go_home(target: str) -> None:
    """A ``next`` with no "/" was given to redirect(), which took it for a view name: NoReverseMatch, a 500 after
    the account was made (the hostile-input test found it)."""
    client = Client()
    data = {"email": "rel@example.com", "password": "correct-horse-battery", "next": target}
    response = client.post("/signup", data)
    assert (response.status_code, response["Location"]) == (302, "/")
    client.logout()
    response = client.post("/login", data)
    assert (response.status_code, response["Location"]) == (302, "/")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "new@example.com", "password": "short", "confirm_password": "short"}, "too short"),
        (
            {
                "email": "nope",
                "password": "correct-horse-battery",
                "confirm_password": "correct-horse-battery",
            },
            "valid email",
        ),
    ],
)
def test_signup_bad_input_stores_nothing(data: dict, message: str) -> None:
    response = Client().post("/signup", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert User.objects.count() == 0


def test_signup_with_taken_email() -> None:
    make_user("ada@example.com")
    response = Client().post(
        "/signup",
        {
            "email": "ada@example.com",
            "password": "correct-horse-battery",
            "confirm_password": "correct-horse-battery",
        },
    )
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_password_reset_flow(django_capture_on_commit_callbacks: Any) -> None:
    make_user("ada@example.com")
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/password-reset", {"email": "ada@example.com"}).status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://localhost:8000(/password-reset/\S+)", mail.outbox[0].body)
    assert link
    form_page = client.get(link.group(1), follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": "a-brand-new-secret", "new_password2": "a-brand-new-secret"})
    assert done.status_code == 302
    assert Client().login(email="ada@example.com", password="a-brand-new-secret")


def test_password_reset_does_not_reveal_unknown_emails(django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post("/password-reset", {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert mail.outbox == []


def test_security_headers_on_pages() -> None:
    response = Client().get("/login")
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_signup_is_rate_limited_per_ip() -> None:
    from apertur.accounts.login import SIGNUP_PER_IP

    client = Client(REMOTE_ADDR="10.2.2.2")
    for i in range(SIGNUP_PER_IP.max_hits):
        client.post("/signup", {"email": f"u{i}@example.com", "password": "x", "confirm_password": "x"})
    response = client.post(
        "/signup",
        {
            "email": "late@example.com",
            "password": "correct-horse-battery",
            "confirm_password": "correct-horse-battery",
        },
    )
    assert response.status_code == 429
    assert not User.objects.filter(email="late@example.com").exists()


def test_password_reset_mails_are_limited_per_address(django_capture_on_commit_callbacks: Any) -> None:
    from apertur.accounts.login import RESET_PER_EMAIL

    make_user("ada@example.com")
    for i in range(RESET_PER_EMAIL.max_hits + 2):
        with django_capture_on_commit_callbacks(execute=True):
            response = Client(REMOTE_ADDR=f"10.3.3.{i}").post("/password-reset", {"email": "ada@example.com"})
        assert response.status_code == 302  # the same answer every time
    assert len(mail.outbox) == RESET_PER_EMAIL.max_hits


def test_password_reset_is_rate_limited_per_ip() -> None:
    from apertur.accounts.login import RESET_PER_IP

    client = Client(REMOTE_ADDR="10.4.4.4")
    for i in range(RESET_PER_IP.max_hits):
        client.post("/password-reset", {"email": f"n{i}@example.com"})
    assert client.post("/password-reset", {"email": "x@example.com"}).status_code == 429


def test_login_in_an_authorization_popup_keeps_the_opener() -> None:
    plain = Client().get("/login")
    assert plain["Cross-Origin-Opener-Policy"] == "same-origin"
    in_flow = Client().get("/login?next=/oauth/authorize%3Fpublic_key%3Dx")
    assert in_flow["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert in_flow["X-Frame-Options"] == "DENY"
    assert Client().get("/signup?next=/oauth/authorize")["Cross-Origin-Opener-Policy"] == "unsafe-none"


AUTHORIZE = "/oauth/authorize?public_key=aptr_live_pk_x&scope=project:read&origin=http://partner.localhost"
IN_FLOW = "?" + urlencode({"next": AUTHORIZE})


def _hrefs(html: str, text: str) -> list[str]:
    return [unescape(h) for h in re.findall(rf'<a [^>]*href="([^"]*)"[^>]*>{re.escape(text)}</a>', html)]


def test_account_links_carry_the_authorization_request() -> None:
    """The header's Log in and Sign up and the Forgot-password link kept the popup's user on the way to
    the authorization request; without ``next`` they ended on /projects/ and severed the popup."""
    html = Client().get("/login" + IN_FLOW).content.decode()
    assert _hrefs(html, "Log in") == ["/login" + IN_FLOW]
    assert _hrefs(html, "Sign up") == ["/signup" + IN_FLOW]
    assert _hrefs(html, "Forgot your password?") == ["/password-reset" + IN_FLOW]
    signup = Client().get("/signup" + IN_FLOW).content.decode()
    assert _hrefs(signup, "Sign up") == ["/signup" + IN_FLOW]
    assert _hrefs(signup, "Log in") == ["/login" + IN_FLOW] * 2  # the header's and the card's


@pytest.mark.parametrize("target", ["", "/", "https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_account_links_never_carry_an_off_site_next(target: str) -> None:
    html = Client().get("/login?" + urlencode({"next": target})).content.decode()
    assert _hrefs(html, "Log in") == ["/login"]
    assert _hrefs(html, "Sign up") == ["/signup"]
    assert _hrefs(html, "Forgot your password?") == ["/password-reset"]
    assert "evil.example" not in html  # (not "evil": a random CSRF token on the page may hold it)


def test_signup_in_the_flow_returns_to_the_authorization_request() -> None:
    response = Client().post("/signup" + IN_FLOW, {"email": "new@example.com", "password": "correct-horse-battery"})
    assert response.status_code == 302 and response["Location"] == AUTHORIZE


@pytest.mark.parametrize("path", ["/login", "/signup", "/password-reset", "/password-reset/sent"])
def test_account_pages_keep_the_opener_only_on_the_way_to_authorize(path: str) -> None:
    assert Client().get(path)["Cross-Origin-Opener-Policy"] == "same-origin"
    assert Client().get(path + "?next=/projects/")["Cross-Origin-Opener-Policy"] == "same-origin"
    in_flow = Client().get(path + IN_FLOW)
    assert in_flow["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert in_flow["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("email", ["ada@example.com", "nobody@example.com"])
def test_password_reset_in_the_flow_leads_back_to_log_in(email: str) -> None:
    make_user("ada@example.com")
    client = Client()
    form = client.get("/password-reset" + IN_FLOW).content.decode()
    assert _hrefs(form, "Back to log in") == ["/login" + IN_FLOW]
    sent = client.post("/password-reset" + IN_FLOW, {"email": email})
    assert sent.status_code == 302 and sent["Location"] == "/password-reset/sent" + IN_FLOW
    done = client.get(sent["Location"])
    assert done["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert _hrefs(done.content.decode(), "Back to log in") == ["/login" + IN_FLOW]


def test_login_budget_per_account_and_ip(settings: Any) -> None:
    settings.LOGIN_RATE_PER_ACCOUNT_IP = (2, 900)
    make_user("ada@example.com")
    attacker = Client(REMOTE_ADDR="10.9.9.9")
    for _ in range(2):
        attacker.post("/login", {"email": "ada@example.com", "password": "nope-nope"})
    assert attacker.post("/login", {"email": "ada@example.com", "password": PASSWORD}).status_code == 429
    # The real user, elsewhere, is not locked out by someone else's guesses.
    assert (
        Client(REMOTE_ADDR="10.1.2.3").post("/login", {"email": "ada@example.com", "password": PASSWORD}).status_code
        == 302
    )


def test_forwarded_for_is_read_from_the_right(settings: Any) -> None:
    from django.test import RequestFactory

    from apertur.core.http import client_ip

    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXY_HOPS = 1
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7", REMOTE_ADDR="10.0.0.1")
    assert client_ip(request) == "203.0.113.7"  # what our proxy saw, not what the client claimed
    settings.SECURE_PROXY_SSL_HEADER = None
    assert client_ip(request) == "10.0.0.1"


def test_an_empty_signup_post_past_the_limit_is_a_429_not_an_error() -> None:
    from apertur.accounts.login import SIGNUP_PER_IP

    client = Client(REMOTE_ADDR="10.2.2.3")
    for _ in range(SIGNUP_PER_IP.max_hits):
        client.post("/signup", {"email": "x", "password": "x"})
    response = client.post("/signup")  # no fields at all: the form was unbound and add_error raised (500)
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()


@pytest.mark.parametrize(("path", "button"), [("/login", ">Log in</button>"), ("/signup", ">Sign up</button>")])
def test_a_signed_in_user_gets_the_form_with_a_notice_and_can_switch_accounts(path: str, button: str) -> None:
    """ARCHITECTURE 6: the login and signup pages keep their fields and buttons for anyone; a signed-in user is
    told who they are before switching (signing up while signed in used to switch without a word)."""
    ada, ben = make_user("ada@example.com"), make_user("ben@example.com")
    client = Client()
    client.force_login(ada)
    html = client.get(path).content.decode()
    assert button in html and 'name="email"' in html and 'name="password"' in html
    assert "You are signed in as <strong>ada@example.com</strong>" in html
    if path == "/login":
        assert client.post("/login", {"email": "ben@example.com", "password": PASSWORD}).status_code == 302
        assert client.session["_auth_user_id"] == str(ben.pk)
    assert "You are signed in as" not in Client().get(path).content.decode()


def test_a_fields_help_and_errors_carry_the_ids_its_aria_describedby_names() -> None:
    # Django points each input's aria-describedby at "<id>_helptext" and "<id>_error"; a screen reader reads
    # nothing if the page has no elements with those ids.
    html = Client().post("/signup", {"email": "ada@example.com", "password": "short"}).content.decode()
    described = re.search(r'<input type="password"[^>]*aria-describedby="([^"]+)"', html)
    assert described
    ids = described.group(1).split()
    assert ids == ["id_password_helptext", "id_password_error"]
    for element_id in ids:
        assert f'id="{element_id}"' in html, element_id


def test_ipv6_clients_cannot_hop_addresses_within_their_network_to_escape_the_ip_budgets(settings: Any) -> None:
    """One IPv6 client holds at least a /64 (2^64 addresses): counted per address, it could take a fresh
    budget for every attempt. The per-IP budgets count an IPv6 client's /64 as one address (and an IPv4-mapped
    address as its IPv4 address)."""
    settings.LOGIN_RATE_PER_ACCOUNT_IP = (3, 900)
    make_user("ada@example.com")
    for i in range(3):
        hopping = Client(REMOTE_ADDR=f"2001:db8:1:2::{i + 1:x}")
        assert hopping.post("/login", {"email": "ada@example.com", "password": "nope-nope"}).status_code == 400
    late = Client(REMOTE_ADDR="2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert late.post("/login", {"email": "ada@example.com", "password": PASSWORD}).status_code == 429
    # Another network is someone else: not locked out.
    elsewhere = Client(REMOTE_ADDR="2001:db8:1:3::1")
    assert elsewhere.post("/login", {"email": "ada@example.com", "password": PASSWORD}).status_code == 302

    from apertur.accounts.login import SIGNUP_PER_IP

    for i in range(SIGNUP_PER_IP.max_hits):
        Client(REMOTE_ADDR=f"2001:db8:9:9::{i + 1:x}").post("/signup", {"email": f"u{i}@example.com", "password": "x"})
    signup = Client(REMOTE_ADDR="2001:db8:9:9:abcd::1").post(
        "/signup", {"email": "late@example.com", "password": "correct-horse-battery"}
    )
    assert signup.status_code == 429 and not User.objects.filter(email="late@example.com").exists()


def test_rate_limit_ip_groups_an_ipv6_network_and_keeps_ipv4_as_is() -> None:
    from apertur.core.http import rate_limit_ip

    assert rate_limit_ip("203.0.113.7") == "203.0.113.7"
    assert rate_limit_ip("::ffff:203.0.113.7") == "203.0.113.7"
    assert rate_limit_ip("2001:db8:1:2::1") == rate_limit_ip("2001:0db8:0001:0002:ffff::9") == "2001:db8:1:2::/64"
    assert rate_limit_ip("not an address") == "not an address"
