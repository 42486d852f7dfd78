from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client

from apertur.referrals.models import Attribution, ReferralClick, ReferralLink
from apertur.referrals.services import create_link, ensure_default_link
from apertur.testing import make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db
SIGNUP = {"password": "correct-horse-battery", "confirm_password": "correct-horse-battery"}


def signup(browser: Client, email: str) -> None:
    assert browser.post("/signup", {"email": email, **SIGNUP}).status_code == 302


def test_click_sets_a_90_day_cookie_and_signup_is_attributed() -> None:
    partner = make_partner()
    link = ensure_default_link(partner=partner)
    browser = Client()
    response = browser.get(f"/r/{link.code}")
    assert response.status_code == 302 and response["Location"] == "/signup"
    cookie = response.cookies["aptr_ref"]
    assert cookie["max-age"] == 90 * 24 * 3600 and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert ReferralClick.objects.filter(link=link).count() == 1
    signup(browser, "new@example.com")
    attribution = Attribution.objects.get(customer__email="new@example.com")
    assert attribution.partner == partner and attribution.source == "referral" and attribution.link == link


def test_head_redirects_like_get_but_is_no_click() -> None:
    link = ensure_default_link(partner=make_partner())
    response = Client().head(f"/r/{link.code}")
    assert response.status_code == 302 and response["Location"] == "/signup"
    assert "aptr_ref" not in response.cookies
    assert not ReferralClick.objects.filter(link=link).exists()
    assert Client().head("/r/unknown").status_code == 404


def test_cookie_edge_in_toronto_time() -> None:
    partner = make_partner()
    link = ensure_default_link(partner=partner)
    start = dt.datetime(2026, 3, 1, 4, 30, tzinfo=dt.UTC)  # 2026-02-28 23:30 in Toronto
    browser = Client()
    with time_machine.travel(start, tick=False):
        browser.get(f"/r/{link.code}")
    with time_machine.travel(start + dt.timedelta(days=90, seconds=1), tick=False):
        signup(browser, "late@example.com")
    assert not Attribution.objects.filter(customer__email="late@example.com").exists()
    other = Client()
    with time_machine.travel(start, tick=False):
        other.get(f"/r/{link.code}")
    with time_machine.travel(start + dt.timedelta(days=90), tick=False):
        signup(other, "just-in-time@example.com")
    assert Attribution.objects.filter(customer__email="just-in-time@example.com").exists()


def test_last_click_wins() -> None:
    first, second = make_partner(), make_partner(user=make_user())
    browser = Client()
    browser.get(f"/r/{ensure_default_link(partner=first).code}")
    browser.get(f"/r/{create_link(partner=second, label='Spring').code}")
    signup(browser, "fan@example.com")
    assert Attribution.objects.get(customer__email="fan@example.com").partner == second


def test_forged_or_unknown_cookie_and_unknown_link() -> None:
    assert Client().get("/r/nope").status_code == 404
    browser = Client()
    browser.cookies["aptr_ref"] = "forged-value"
    signup(browser, "x@example.com")
    assert Attribution.objects.count() == 0


def test_suspended_partners_do_not_get_new_referrals() -> None:
    from apertur.partners import services

    partner = make_partner()
    link = ensure_default_link(partner=partner)
    browser = Client()
    browser.get(f"/r/{link.code}")
    services.suspend(partner=partner, reviewer=None, reason="Abuse")
    signup(browser, "y@example.com")
    assert Attribution.objects.count() == 0


def test_staff_change_an_attribution_with_a_reason_in_admin() -> None:
    from apertur.core.models import AuditEvent
    from apertur.testing import make_staff

    first, second = make_partner(), make_partner(user=make_user())
    customer = make_user()
    attribution = Attribution.objects.create(customer=customer, partner=first, source="referral")
    admin = Client()
    admin.force_login(make_staff())
    url = f"/admin/referrals/attribution/{attribution.pk}/change/"
    missing = admin.post(url, {"partner": second.pk, "reason": ""})
    assert missing.status_code == 200  # the form asks for the reason
    attribution.refresh_from_db()
    assert attribution.partner == first
    done = admin.post(url, {"partner": second.pk, "reason": "Customer confirmed they came from Second"})
    assert done.status_code == 302
    attribution.refresh_from_db()
    assert attribution.partner == second
    event = AuditEvent.objects.get(action="attribution.changed")
    assert event.data["reason"] == "Customer confirmed they came from Second"


def test_an_oauth_attribution_moves_to_an_earlier_qualifying_moment_of_the_same_partner() -> None:
    """Stripe may deliver an upgrade before the subscription's start: the attribution made at the upgrade moves
    back to the start when the same partner's app was connected by then, never to another partner, and a
    referral attribution never moves."""
    from apertur.core.models import AuditEvent
    from apertur.oauth.tokens import connect
    from apertur.projects.services import create_project
    from apertur.referrals.models import AttributionSource
    from apertur.referrals.services import attribute_by_oauth
    from apertur.testing import make_app

    def day(d: int) -> dt.datetime:
        return dt.datetime(2026, 1, d, 12, tzinfo=dt.UTC)

    created = make_app()
    customer = make_user("moved@example.com")
    project = create_project(owner=customer, name="P")
    with time_machine.travel(day(1), tick=False):
        connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    first = attribute_by_oauth(customer=customer, at=day(20))
    assert first is not None and first.at == day(20)
    moved = attribute_by_oauth(customer=customer, at=day(10))
    assert moved is not None and (moved.pk, moved.at, moved.partner) == (first.pk, day(10), created.app.partner)
    assert AuditEvent.objects.filter(action="attribution.moved_earlier").count() == 1
    assert attribute_by_oauth(customer=customer, at=day(15)) is None  # later: nothing to do
    assert attribute_by_oauth(customer=customer, at=day(1)) is not None  # connected at that very moment
    # Before any connection: nothing qualifies.
    assert attribute_by_oauth(customer=customer, at=day(1) - dt.timedelta(seconds=1)) is None
    # A referral attribution is never moved.
    referred = make_user("referred@example.com")
    referred_project = create_project(owner=referred, name="R")
    with time_machine.travel(day(1), tick=False):
        connect(app=created.app, project=referred_project, user=referred, scopes=["plan:read"])
    Attribution.objects.create(customer=referred, partner=make_partner(), source=AttributionSource.REFERRAL, at=day(20))
    assert attribute_by_oauth(customer=referred, at=day(10)) is None
    assert Attribution.objects.get(customer=referred).at == day(20)


def test_one_click_refers_one_signup_the_cookie_is_used_up() -> None:
    partner = make_partner()
    browser = Client()
    browser.get(f"/r/{ensure_default_link(partner=partner).code}")
    response = browser.post("/signup", {"email": "first@example.com", **SIGNUP})
    assert response.status_code == 302
    assert response.cookies["aptr_ref"].value == "" and response.cookies["aptr_ref"]["max-age"] == 0
    browser.post("/logout")
    signup(browser, "second@example.com")
    assert list(Attribution.objects.values_list("customer__email", flat=True)) == ["first@example.com"]


def test_a_suspended_partners_link_counts_nothing_and_keeps_the_earlier_cookie() -> None:
    from apertur.partners import services

    referrer, suspended = make_partner(), make_partner(user=make_user())
    link = ensure_default_link(partner=suspended)
    services.suspend(partner=suspended, reviewer=None, reason="Abuse")
    browser = Client()
    browser.get(f"/r/{ensure_default_link(partner=referrer).code}")
    response = browser.get(f"/r/{link.code}")
    assert response.status_code == 302 and response["Location"] == "/signup"  # the visitor still gets on
    assert "aptr_ref" not in response.cookies
    assert not ReferralClick.objects.filter(link=link).exists()
    signup(browser, "kept@example.com")
    assert Attribution.objects.get(customer__email="kept@example.com").partner == referrer


@pytest.mark.parametrize(
    "agent",
    [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "TelegramBot (like TwitterBot)",
        "Mozilla/5.0 (compatible; SomeNewCrawler; +https://crawler.example/about)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "WhatsApp/2.23.20.0",
    ],
)
def test_previews_and_crawlers_are_sent_on_but_count_no_click(agent: str) -> None:
    link = ensure_default_link(partner=make_partner())
    response = Client(headers={"user-agent": agent}).get(f"/r/{link.code}")
    assert response.status_code == 302 and "aptr_ref" not in response.cookies
    assert not ReferralClick.objects.exists()
    people = [
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        # A phone whose model ends in "bot" is a person (CUBOT is a brand).
        "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile",
        # Headless browsers and HTTP clients: how partners test their links, and end-to-end tests click them.
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
        "curl/8.5.0",
        "python-requests/2.32.3",
    ]
    for person in people:
        assert "aptr_ref" in Client(headers={"user-agent": person}).get(f"/r/{link.code}").cookies
    assert ReferralClick.objects.count() == len(people)


def test_signed_in_visitors_are_not_referred_nor_counted() -> None:
    partner = make_partner()
    link = ensure_default_link(partner=partner)
    for user in (partner.user, make_user()):  # the partner clicking their own link; an existing customer
        browser = Client()
        browser.force_login(user)
        response = browser.get(f"/r/{link.code}")
        assert response.status_code == 302 and response["Location"] == "/" and "aptr_ref" not in response.cookies
    assert not ReferralClick.objects.exists()


def test_clicks_from_one_address_are_counted_up_to_the_hourly_budget() -> None:
    from apertur.referrals.services import CLICKS_PER_IP

    link = ensure_default_link(partner=make_partner())
    start = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        for _ in range(CLICKS_PER_IP.max_hits + 5):
            assert Client().get(f"/r/{link.code}").status_code == 302
    assert ReferralClick.objects.count() == CLICKS_PER_IP.max_hits
    with time_machine.travel(start + dt.timedelta(hours=1, seconds=1), tick=False):
        assert "aptr_ref" in Client().get(f"/r/{link.code}").cookies
    assert ReferralClick.objects.count() == CLICKS_PER_IP.max_hits + 1


def test_a_link_with_what_a_sentence_appended_still_works_and_odd_codes_are_a_page_not_an_error() -> None:
    link = ensure_default_link(partner=make_partner())
    for suffix in (".", "/", ")", "!", "%22"):
        response = Client().get(f"/r/{link.code}{suffix}")
        assert response.status_code == 302 and "aptr_ref" in response.cookies, suffix
    for path in (f"/r/{link.code.lower()}x", "/r/a/b", "/r/" + "A" * 40):
        response = Client().get(path)
        assert response.status_code == 404, path
        assert b"This referral link does not exist" in response.content and b'href="/signup"' in response.content
    for path in ("/r/abc%00def", "/r/%00"):  # a NUL byte used to reach PostgreSQL (500): refused at the edge now
        response = Client().get(path)
        assert response.status_code == 404, path
        assert b"its address contains a NUL character" in response.content
    assert ReferralClick.objects.count() == 5


def _reset_password(browser: Client, email: str) -> None:
    import re

    from django.core import mail
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):  # the reset mail leaves once the request commits
        assert browser.post("/password-reset", {"email": email}).status_code == 302
    link = re.search(r"http://localhost:8000(/password-reset/\S+)", mail.outbox[-1].body)
    assert link
    set_url = browser.get(link.group(1), follow=True).redirect_chain[-1][0]
    done = browser.post(set_url, {"new_password1": "the-real-owner-now", "new_password2": "the-real-owner-now"})
    assert done.status_code == 302


def test_a_squatted_signup_claimed_by_a_password_reset_loses_its_referral() -> None:
    """Someone who clicked a partner's link signs up with another person's address (nothing is confirmed at
    signup). The address's owner finds it taken and resets the password: they must not be that partner's
    customer for life."""
    from apertur.core.models import AuditEvent

    link = ensure_default_link(partner=make_partner())
    squatter = Client()
    squatter.get(f"/r/{link.code}")
    signup(squatter, "prospect@bigcorp.example")
    assert Attribution.objects.filter(customer__email="prospect@bigcorp.example").exists()
    _reset_password(Client(), "prospect@bigcorp.example")
    assert not Attribution.objects.filter(customer__email="prospect@bigcorp.example").exists()
    event = AuditEvent.objects.get(action="attribution.dropped")
    assert event.data["reason"] == "unconfirmed signup claimed by a password reset"


def test_a_confirmed_or_paying_customers_referral_survives_a_password_reset() -> None:
    import datetime as dt

    from apertur.accounts.models import User
    from apertur.projects.models import Payment
    from apertur.projects.services import create_project

    link = ensure_default_link(partner=make_partner())
    for email in ("confirmed@example.com", "paying@example.com"):
        browser = Client()
        browser.get(f"/r/{link.code}")
        signup(browser, email)
    confirmed = User.objects.get(email="confirmed@example.com")
    User.objects.filter(pk=confirmed.pk).update(email_confirmed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    paying = User.objects.get(email="paying@example.com")
    Payment.objects.create(
        project=create_project(owner=paying, name="P"),
        customer=paying,
        external_id="in_1",
        amount_cents=2_900,
        amount_cad_cents=2_900,
        paid_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )
    for email in ("confirmed@example.com", "paying@example.com"):
        _reset_password(Client(), email)
    assert Attribution.objects.count() == 2


def test_staff_cannot_move_rename_add_or_delete_referral_links_in_admin() -> None:
    """A link's partner decides who earns on the signups it brings, and its code is printed on the partner's
    campaigns: neither changes by editing a row (unaudited); links are made by partners in the portal."""
    owner, other = make_partner(), make_partner()
    link = ReferralLink.objects.get(partner=owner)
    admin = Client()
    admin.force_login(make_staff())
    url = f"/admin/referrals/referrallink/{link.pk}/change/"
    page = admin.get(url).content.decode()
    assert 'name="partner"' not in page and 'name="code"' not in page and 'name="created_at_0"' not in page
    admin.post(url, {"partner": other.pk, "code": "stolen", "label": "Spring"})
    link.refresh_from_db()
    assert (link.partner_id, link.code, link.label) == (owner.pk, link.code, "Spring")
    assert link.code != "stolen"
    assert admin.get("/admin/referrals/referrallink/add/").status_code == 403
    assert admin.post(f"/admin/referrals/referrallink/{link.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ReferralLink.objects.filter(pk=link.pk).exists()


def _confirmation_path(email: str) -> str:
    from apertur.accounts.models import User
    from apertur.accounts.services import confirmation_path

    return confirmation_path(User.objects.get(email=email))


def test_a_squatted_signup_claimed_from_its_confirmation_link_loses_its_referral() -> None:
    """The owner of the address opens the confirmation link, does not know the password, and chooses a new one
    from there: the same claim as a password reset, with the same consequence for the referral."""
    link = ensure_default_link(partner=make_partner())
    squatter = Client()
    squatter.get(f"/r/{link.code}")
    signup(squatter, "prospect@bigcorp.example")
    path = _confirmation_path("prospect@bigcorp.example")
    owner = Client()
    started = owner.post(path, {"step": "new-password"})
    set_url = owner.get(started["Location"], follow=True).redirect_chain[-1][0]
    done = owner.post(set_url, {"new_password1": "the-real-owner-now", "new_password2": "the-real-owner-now"})
    assert done.status_code == 302
    assert not Attribution.objects.filter(customer__email="prospect@bigcorp.example").exists()


def test_a_signup_confirmed_with_its_password_on_another_device_keeps_its_referral() -> None:
    link = ensure_default_link(partner=make_partner())
    laptop = Client()
    laptop.get(f"/r/{link.code}")
    signup(laptop, "new@example.com")
    phone = Client()
    assert phone.post(_confirmation_path("new@example.com"), {"password": SIGNUP["password"]}).status_code == 200
    assert Attribution.objects.filter(customer__email="new@example.com").exists()


@pytest.mark.parametrize("status", ["pending", "suspended", "paypal"])
def test_staff_cannot_move_an_attribution_to_a_partner_who_may_not_be_attributed_it(status: str) -> None:
    """Only approved partners are attributed customers, never one whose verified PayPal email is the customer's
    (docs/commissions.md, "Never"): the admin's partner list holds every applicant, so the move is refused there."""
    from apertur.partners import services as partner_services
    from apertur.referrals.services import ReasonRequired, change_attribution

    first = make_partner()
    customer = make_user("moved@example.com")
    target = make_partner(approved=status != "pending")
    if status == "suspended":
        partner_services.suspend(partner=target, reviewer=None, reason="Abuse")
    if status == "paypal":
        type(target).objects.filter(pk=target.pk).update(
            paypal_email="moved@example.com", paypal_verified_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        )
    attribution = Attribution.objects.create(customer=customer, partner=first, source="referral")
    admin = Client()
    admin.force_login(make_staff())
    response = admin.post(
        f"/admin/referrals/attribution/{attribution.pk}/change/", {"partner": target.pk, "reason": "Asked to"}
    )
    assert response.status_code == 200  # the form says why, rather than "changed successfully"
    attribution.refresh_from_db()
    assert attribution.partner == first
    target.refresh_from_db()
    with pytest.raises(ReasonRequired):
        change_attribution(attribution=attribution, partner=target, reason="Asked to", actor=None)
    attribution.refresh_from_db()
    assert attribution.partner == first


def test_an_oauth_attribution_reads_the_connections_active_at_the_moment_not_at_delivery() -> None:
    """Times come from the billing objects, never from the delivery: a subscription that began while the project was
    connected attributes the customer even when its event is applied after the customer removed the app (a
    subscription waiting for its first invoice, a given-up event retried, an import). A connection removed before
    that moment does not."""
    from apertur.oauth.tokens import connect, disconnect
    from apertur.projects.services import create_project
    from apertur.referrals.services import attribute_by_oauth
    from apertur.testing import make_app

    created = make_app()
    customer = make_user("left-later@example.com")
    project = create_project(owner=customer, name="P")
    connected, subscribed = dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    with time_machine.travel(connected, tick=False):
        connection = connect(app=created.app, project=project, user=customer, scopes=["plan:read"])
    with time_machine.travel(dt.datetime(2026, 3, 20, tzinfo=dt.UTC), tick=False):
        disconnect(connection=connection, actor=customer)
        assert attribute_by_oauth(customer=customer, at=dt.datetime(2026, 3, 25, tzinfo=dt.UTC)) is None
        attribution = attribute_by_oauth(customer=customer, at=subscribed)
    assert attribution is not None
    assert (attribution.partner, attribution.app, attribution.at) == (created.app.partner, created.app, subscribed)


def test_a_signup_whose_referral_cannot_be_recorded_leaves_no_account_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing up and attributing the referral are one change: an attribution that fails to be written leaves no
    account that the person could neither log in to (the page failed) nor sign up again with (email taken)."""
    from django.db import DatabaseError

    from apertur.accounts.models import User
    from apertur.referrals import services

    def fail(**_: object) -> None:
        raise DatabaseError("the attribution could not be written")

    monkeypatch.setattr(services, "_create", fail)
    browser = Client()
    browser.get(f"/r/{ensure_default_link(partner=make_partner()).code}")
    with pytest.raises(DatabaseError):
        browser.post("/signup", {"email": "new@example.com", **SIGNUP})
    assert not User.objects.filter(email="new@example.com").exists()
    assert not Attribution.objects.exists()


def test_staff_moving_an_attribution_is_audited_with_their_ip() -> None:
    """Who earns a customer's commissions is money-relevant: audited with actor and IP (ARCHITECTURE.md §4)."""
    from apertur.core.models import AuditEvent

    first, second = make_partner(), make_partner(user=make_user())
    attribution = Attribution.objects.create(customer=make_user(), partner=first, source="referral")
    admin = Client()
    staff = make_staff()
    admin.force_login(staff)
    url = f"/admin/referrals/attribution/{attribution.pk}/change/"
    done = admin.post(url, {"partner": second.pk, "reason": "Asked to"}, REMOTE_ADDR="198.51.100.4")
    assert done.status_code == 302
    event = AuditEvent.objects.get(action="attribution.changed")
    assert (event.actor_id, event.ip) == (staff.pk, "198.51.100.4")
