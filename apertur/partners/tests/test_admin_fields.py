"""The partner admin cannot bypass PayPal verification or payout holds: those fields are read-only there."""

from __future__ import annotations

import pytest
from django.test import Client

from apertur.partners.models import Partner
from apertur.testing import PASSWORD, make_partner, make_staff

pytestmark = pytest.mark.django_db


def test_staff_cannot_mark_a_paypal_email_verified_or_release_a_hold_by_editing_the_row() -> None:
    partner = make_partner()
    Partner.objects.filter(pk=partner.pk).update(paypal_email="old@example.com", payouts_hold_reason="fraud check")
    staff = make_staff()
    browser = Client()
    assert browser.login(email=staff.email, password=PASSWORD)
    url = f"/admin/partners/partner/{partner.pk}/change/"
    page = browser.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="paypal_email"' not in html and 'name="paypal_verified_at_0"' not in html
    assert 'name="payouts_held_at_0"' not in html and "paypal_token_hash" not in html
    browser.post(
        url,
        {
            "company_name": partner.company_name,
            "website": partner.website,
            "use_case": partner.use_case,
            "expected_customers": partner.expected_customers,
            "paypal_email": "attacker@example.com",
            "paypal_verified_at_0": "2026-01-01",
            "paypal_verified_at_1": "00:00:00",
            "payouts_hold_reason": "",
        },
    )
    partner.refresh_from_db()
    assert partner.paypal_email == "old@example.com" and partner.paypal_verified_at is None
    assert partner.payouts_hold_reason == "fraud check"


def test_a_website_typed_without_a_scheme_in_the_admin_is_https() -> None:
    """Django 5's URLField assumed http (and warned); the partner application itself asks for https."""
    partner = make_partner()
    browser = Client()
    assert browser.login(email=make_staff().email, password=PASSWORD)
    url = f"/admin/partners/partner/{partner.pk}/change/"
    fields = {"company_name": partner.company_name, "use_case": partner.use_case, "payouts_hold_reason": ""}
    response = browser.post(
        url, {**fields, "expected_customers": partner.expected_customers, "website": "acme.example"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    partner.refresh_from_db()
    assert partner.website == "https://acme.example"


def test_deleting_partners_in_the_admin_is_audited_with_who_did_it() -> None:
    """An application deleted here (an approved partner's referral links, which nobody deletes, keep it) is
    recorded, as deleting an account or an app is, with the staff member; the address is kept in the event."""
    from apertur.core.models import AuditEvent

    one, two = make_partner(approved=False), make_partner(approved=False)
    staff = make_staff()
    browser = Client()
    browser.force_login(staff)
    assert browser.post(f"/admin/partners/partner/{one.pk}/delete/", {"post": "yes"}).status_code == 302
    listed = {"action": "delete_selected", "_selected_action": [two.pk], "post": "yes", "index": 0}
    assert browser.post("/admin/partners/partner/", listed).status_code == 302
    assert not Partner.objects.filter(pk__in=[one.pk, two.pk]).exists()
    events = AuditEvent.objects.filter(action="partner.deleted").order_by("object_id")
    assert [(e.object_id, e.actor) for e in events] == [(str(one.pk), staff), (str(two.pk), staff)]
    assert events[0].data == {"email": one.user.email, "company_name": one.company_name, "status": "pending"}


def test_an_application_edited_in_the_admin_follows_the_applications_rules_and_is_audited() -> None:
    """The company name, website and use case are what the partner applied with (and the name is shown on their
    pages): staff edits obey the application's rules and are recorded with who made them, before and after."""
    from apertur.core.models import AuditEvent

    partner = make_partner()
    staff = make_staff()
    browser = Client()
    browser.force_login(staff)
    url = f"/admin/partners/partner/{partner.pk}/change/"
    form = {
        "company_name": partner.company_name,
        "website": partner.website,
        "use_case": partner.use_case,
        "expected_customers": partner.expected_customers,
    }
    short = browser.post(url, {**form, "company_name": "X", "use_case": "too short"})
    assert short.status_code == 200 and "2 to 120 characters" in short.content.decode()
    partner.refresh_from_db()
    assert partner.company_name == "Snapflow Inc."
    saved = browser.post(url, {**form, "company_name": "  Snapflow   Labs "})
    assert saved.status_code == 302
    partner.refresh_from_db()
    assert partner.company_name == "Snapflow Labs"
    event = AuditEvent.objects.get(action="partner.updated")
    assert event.actor == staff and event.object_id == str(partner.pk)
    assert event.data == {"company_name": {"from": "Snapflow Inc.", "to": "Snapflow Labs"}}
