"""The partner's PayPal email: confirmation link, changes that hold payouts, and the attribution rule."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.partners.models import Partner
from apertur.testing import make_partner

pytestmark = pytest.mark.django_db


def _link(message: Any) -> str:
    match = re.search(r"http://localhost:8000(/partners/payouts/confirm/\S+)", message.body)
    assert match, message.body
    return match.group(1)


@pytest.fixture
def portal(django_capture_on_commit_callbacks: Any):  # type: ignore[no-untyped-def]
    partner = make_partner()
    client = Client()
    client.force_login(partner.user)
    return partner, client, django_capture_on_commit_callbacks


def test_page_has_the_fixed_accessible_names(portal) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = portal
    html = client.get("/partners/payouts/").content.decode()
    assert '<label for="paypal_email">PayPal email</label>' in html
    assert ">Send confirmation link</button>" in html
    assert "Payouts are on hold" in html


def test_the_paypal_email_field_is_described_by_its_help_and_its_error(portal) -> None:  # type: ignore[no-untyped-def]
    """A screen reader on the field hears what changing it does and, after a refusal, why (WCAG 1.3.1, 3.3.1)."""
    _, client, _ = portal
    field = re.compile(r'<input id="paypal_email"[^>]*>')
    html = client.get("/partners/payouts/").content.decode()
    assert 'aria-describedby="paypal_email_help"' in field.search(html).group(0)
    assert "aria-invalid" not in field.search(html).group(0)
    assert '<p class="help" id="paypal_email_help">Changing it holds payouts' in html
    html = client.post("/partners/payouts/", {"paypal_email": "not an email"}).content.decode()
    tag = field.search(html).group(0)
    assert 'aria-invalid="true"' in tag and 'aria-describedby="paypal_email_error paypal_email_help"' in tag, tag
    assert re.search(r'<div class="alert error" role="alert" id="paypal_email_error"><p>Enter the email', html)


def test_confirm_by_link_single_use(portal) -> None:  # type: ignore[no-untyped-def]
    partner, client, on_commit = portal
    with on_commit(execute=True):
        response = client.post("/partners/payouts/", {"paypal_email": "Pay@Snapflow.example"})
    assert response.status_code == 302
    message = mail.outbox[-1]
    assert message.to == ["pay@snapflow.example"]
    link = _link(message)
    assert "Confirm PayPal email" in Client().get(link).content.decode()  # GET changes nothing
    partner.refresh_from_db()
    assert partner.verified_paypal_email is None
    done = Client().post(link)
    assert "PayPal email confirmed" in done.content.decode()
    partner.refresh_from_db()
    assert partner.verified_paypal_email == "pay@snapflow.example"
    again = Client().post(link)
    assert again.status_code == 400
    assert AuditEvent.objects.filter(action="partner.paypal_verified").count() == 1


def test_the_signed_in_owner_confirms_by_opening_the_link(portal) -> None:  # type: ignore[no-untyped-def]
    """The partner clicks the link in the browser they use the portal with: opening it is enough. Signed in as
    someone else, it still only shows the button."""
    partner, client, on_commit = portal
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "pay@snapflow.example"})
    link = _link(mail.outbox[-1])
    stranger = Client()
    stranger.force_login(make_partner().user)
    assert "Confirm PayPal email" in stranger.get(link).content.decode()
    partner.refresh_from_db()
    assert partner.verified_paypal_email is None
    opened = client.get(link)
    assert opened.status_code == 200 and "PayPal email confirmed" in opened.content.decode()
    partner.refresh_from_db()
    assert partner.verified_paypal_email == "pay@snapflow.example"
    used = Client().get(link)  # used: anyone opening it again learns so at once
    assert used.status_code == 400 and "This link does not work" in used.content.decode()
    assert AuditEvent.objects.filter(action="partner.paypal_verified").count() == 1


def test_link_expires_after_24_hours(portal) -> None:  # type: ignore[no-untyped-def]
    partner, client, on_commit = portal
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "pay@snapflow.example"})
    link = _link(mail.outbox[-1])
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(hours=24, seconds=1)):
        assert Client().post(link).status_code == 400
    partner.refresh_from_db()
    assert partner.verified_paypal_email is None


def test_change_holds_payouts_and_tells_the_old_address(portal) -> None:  # type: ignore[no-untyped-def]
    partner, client, on_commit = portal
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "old@snapflow.example"})
    Client().post(_link(mail.outbox[-1]))
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "new@snapflow.example"})
    partner.refresh_from_db()
    assert partner.verified_paypal_email is None  # held until the new one is confirmed
    recipients = {m.to[0] for m in mail.outbox[-3:]}
    assert recipients == {"new@snapflow.example", "old@snapflow.example", partner.user.email}
    told = [m for m in mail.outbox[-3:] if m.to[0] != "new@snapflow.example"]
    assert all("changed from\nold@snapflow.example to new@snapflow.example" in m.body for m in told), told[0].body
    assert "Payouts are on hold" in client.get("/partners/payouts/").content.decode()


def test_the_accounts_own_address_is_told_of_a_payout_email_it_did_not_type(portal) -> None:  # type: ignore[no-untyped-def]
    """No password is asked on the payouts page: someone holding the partner's session could point the payouts at
    an address of theirs, and only that address (its confirmation link) heard of it when none was confirmed yet.
    The account's own address is told now; a partner typing their account's address gets only the link."""
    partner, client, on_commit = portal
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": partner.user.email.upper()})
    assert [m.to[0] for m in mail.outbox] == [partner.user.email]  # the confirmation link alone
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "thief@elsewhere.example"})
    assert mail.outbox[-1].to == ["thief@elsewhere.example"]  # its link, last
    notice = [m for m in mail.outbox[1:] if m.to[0] == partner.user.email]
    assert len(notice) == 1 and notice[0].subject == "Your Apertur payout email is changing"
    assert "being set to thief@elsewhere.example" in " ".join(notice[0].body.split())
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "thief@elsewhere.example"})  # a new link, no new notice
    assert [m.to[0] for m in mail.outbox[3:]] == ["thief@elsewhere.example"]


def test_bad_email_stores_nothing(portal) -> None:  # type: ignore[no-untyped-def]
    partner, client, _ = portal
    response = client.post("/partners/payouts/", {"paypal_email": "not an email"})
    assert response.status_code == 400
    assert "PayPal account" in response.content.decode()
    assert Partner.objects.get(pk=partner.pk).paypal_pending_email == ""


def test_a_customer_with_the_partners_verified_paypal_email_is_never_attributed() -> None:
    from apertur.partners import paypal
    from apertur.referrals.models import Attribution
    from apertur.referrals.services import ensure_default_link

    partner = make_partner()
    paypal.request_change(partner=partner, email="money@snapflow.example")
    Partner.objects.filter(pk=partner.pk).update(
        paypal_email="money@snapflow.example", paypal_verified_at=dt.datetime.now(tz=dt.UTC)
    )
    browser = Client()
    browser.get(f"/r/{ensure_default_link(partner=partner).code}")
    browser.post(
        "/signup",
        {
            "email": "money@snapflow.example",
            "password": "correct-horse-battery",
            "confirm_password": "correct-horse-battery",
        },
    )
    assert not Attribution.objects.filter(customer__email="money@snapflow.example").exists()


@pytest.mark.parametrize(
    "address",
    ["partner@localhost", "partner@intranet", "partner@[127.0.0.1]", "partner@example..com", "partner@1.2.3.4"],
)
def test_a_paypal_address_paypal_would_refuse_is_refused_at_once(address: str) -> None:
    from apertur.core.errors import ValidationFailed
    from apertur.partners.paypal import request_change

    partner = make_partner()
    with pytest.raises(ValidationFailed) as caught:
        request_change(partner=partner, email=address)
    assert caught.value.field == "paypal_email"
    assert Partner.objects.get(pk=partner.pk).paypal_pending_email == ""


@pytest.mark.parametrize("address", ["partner@example.com", "partner@mail.example.co.uk", "partner@bücher.example"])
def test_real_internet_addresses_are_accepted_international_domains_too(address: str) -> None:
    from apertur.partners.paypal import check_paypal_email

    assert check_paypal_email(address).endswith(address.rpartition("@")[2])


def test_the_link_pages_lead_on_to_the_payouts_page(portal) -> None:  # type: ignore[no-untyped-def]
    """Confirmed, or told the link does not work (a new one is sent from Payouts): the title says which, and
    a link leads on."""
    _, client, on_commit = portal
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "pay@snapflow.example"})
    link = _link(mail.outbox[-1])
    done = client.get(link).content.decode()
    assert "<title>PayPal email confirmed · Apertur</title>" in done
    assert 'href="/partners/payouts/">Go to Payouts</a>' in done
    used = client.get(link).content.decode()
    assert "<title>This link does not work · Apertur</title>" in used
    assert 'href="/partners/payouts/">Go to Payouts</a>' in used


def test_clearing_forgets_the_confirmed_address_and_kills_a_pending_link(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from apertur.partners import paypal
    from apertur.payouts.services import Reason, payable_reason

    partner = make_partner()
    assert paypal.clear(partner=partner, reason="test") is False  # nothing to clear: no event
    with django_capture_on_commit_callbacks(execute=True):
        paypal.request_change(partner=partner, email="pay@example.com")
    token = _link(mail.outbox[-1]).rsplit("/", 1)[1]
    Partner.objects.filter(pk=partner.pk).update(
        paypal_email="old@example.com", paypal_verified_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    assert paypal.clear(partner=partner, reason="test") is True
    partner.refresh_from_db()
    assert partner.verified_paypal_email is None and payable_reason(partner) == Reason.NO_VERIFIED_EMAIL
    with pytest.raises(paypal.InvalidPayPalLink):
        paypal.confirm(token=token)
    event = AuditEvent.objects.get(action="partner.paypal_cleared")
    assert event.data == {"previous": "old@example.com", "pending": "pay@example.com", "reason": "test"}


def test_an_address_paypal_refused_is_not_shown_as_where_payouts_go(portal) -> None:  # type: ignore[no-untyped-def]
    """The PayPal account card said "Payouts go to … Verified" for an address PayPal had refused (and the run no
    longer sends to), right above the status card saying it was refused; a staff hold on top hid the refusal."""
    from apertur.core import clock
    from apertur.payouts.models import Payout

    partner, client, on_commit = portal
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "pay@snapflow.example"})
    assert client.get(_link(mail.outbox[-1])).status_code == 200
    assert "Payouts go to <strong" in client.get("/partners/payouts/").content.decode()
    Payout.objects.create(
        partner=partner,
        period="2026-11",
        amount_cents=6000,
        status="failed",
        failure="address_refused",
        sender_batch_id="b-1",
        sender_item_id="i-1",
        receiver_email="pay@snapflow.example",
        returned_at=clock.now(),
    )
    for held in (False, True):
        if held:
            Partner.objects.filter(pk=partner.pk).update(payouts_held_at=clock.now(), payouts_hold_reason="Checks.")
        html = client.get("/partners/payouts/").content.decode()
        assert "Payouts go to" not in html and '<span class="pill ok">Verified</span>' not in html
        assert re.search(r"PayPal refused <strong[^>]*>pay@snapflow.example</strong>", html), html
    Partner.objects.filter(pk=partner.pk).update(payouts_held_at=None, payouts_hold_reason="")
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "pay@snapflow.example"})  # fixed at PayPal: again
    assert client.get(_link(mail.outbox[-1])).status_code == 200
    assert "Payouts go to <strong" in client.get("/partners/payouts/").content.decode()


def test_an_expired_link_is_not_presented_as_waiting_and_a_new_one_is_one_click_away(portal) -> None:  # type: ignore[no-untyped-def]
    """A day after the email the pages still said "Waiting for confirmation … (the link works for 24 hours)" and
    "Open the confirmation link we sent", a link that no longer works; the field was empty, to be typed again."""
    partner, client, on_commit = portal
    with on_commit(execute=True):
        client.post("/partners/payouts/", {"paypal_email": "pay@snapflow.example"})
    html = client.get("/partners/payouts/").content.decode()
    assert "Open the confirmation link we sent to <strong>pay@snapflow.example</strong>" in html  # still live
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(hours=24, seconds=1)):
        html = client.get("/partners/payouts/").content.decode()
        home = client.get("/partners/").content.decode()
        assert "Waiting for confirmation" not in html and "Open the confirmation link" not in html
        assert "The link we sent to <strong>pay@snapflow.example</strong> expired" in html
        assert re.search(r'<input id="paypal_email"[^>]* value="pay@snapflow.example"', html)
        assert "Open the link we sent" not in home
        assert "The link we sent to <strong>pay@snapflow.example</strong> expired" in home
        with on_commit(execute=True):
            client.post("/partners/payouts/", {"paypal_email": "pay@snapflow.example"})
        assert client.get(_link(mail.outbox[-1])).status_code == 200
    partner.refresh_from_db()
    assert partner.verified_paypal_email == "pay@snapflow.example"


def test_confirmation_links_are_limited_per_partner_so_nobody_can_mail_bomb_through_the_payouts_page(
    portal,  # type: ignore[no-untyped-def]
) -> None:
    """Each "Send confirmation link" mails an address the partner typed: without a budget, a partner account (or a
    script holding its session) could have Apertur mail any address without end. Past it: 429 with Retry-After,
    nothing sent, nothing changed."""
    partner, client, on_commit = portal
    for n in range(5):
        with on_commit(execute=True):
            assert client.post("/partners/payouts/", {"paypal_email": f"pay{n}@snapflow.example"}).status_code == 302
    sent = len(mail.outbox)
    with on_commit(execute=True):
        refused = client.post("/partners/payouts/", {"paypal_email": "victim@elsewhere.example"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many" in refused.content.decode()
    assert len(mail.outbox) == sent
    partner.refresh_from_db()
    assert partner.paypal_pending_email == "pay4@snapflow.example"


def test_confirmation_links_to_one_address_share_the_confirmation_mail_budget(portal) -> None:  # type: ignore[no-untyped-def]
    """Two partners cannot together mail one address more often than any confirmation mail goes to it."""
    _, client, on_commit = portal
    other = Client()
    other.force_login(make_partner().user)
    statuses = []
    for sender in (client, other, client, other):
        with on_commit(execute=True):
            statuses.append(sender.post("/partners/payouts/", {"paypal_email": "victim@elsewhere.example"}).status_code)
    assert statuses == [302, 302, 302, 429]
    assert sum(m.to == ["victim@elsewhere.example"] for m in mail.outbox) == 3
