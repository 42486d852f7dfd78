from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from apertur.core.models import AuditEvent
from apertur.partners import services
from apertur.partners.errors import (
    AlreadyApplied,
    InvalidApplication,
    InvalidPartnerTransition,
    ReasonRequired,
)
from apertur.partners.models import Partner, PartnerStatus
from apertur.testing import APPLICATION, make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Any:
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_apply_creates_pending_application_and_notifies(on_commit: Any, settings: Any) -> None:
    user = make_user("ada@snapflow.example")
    with on_commit():
        partner = services.apply(user=user, **APPLICATION)
    assert partner.status == PartnerStatus.PENDING
    recipients = sorted(m.to[0] for m in mail.outbox)
    assert recipients == sorted(["ada@snapflow.example", settings.STAFF_NOTIFY_EMAIL])
    # "Snapflow Inc." ends the sentence once, not "as Snapflow Inc.."
    [received] = [m for m in mail.outbox if m.to == ["ada@snapflow.example"]]
    assert "Partner Program as Snapflow Inc.\n" in received.body
    assert AuditEvent.objects.filter(action="partner.applied", object_id=str(partner.pk)).exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("company_name", "x", "company or platform name"),
        ("website", "snapflow", "full address"),
        ("website", "javascript:alert(1)", "full address"),
        ("use_case", "photos", "what you will build"),
        ("expected_customers", "a million", "how many customers"),
    ],
)
def test_bad_application_stores_nothing(field: str, value: str, message: str) -> None:
    user = make_user()
    with pytest.raises(InvalidApplication) as info:
        services.apply(user=user, **{**APPLICATION, field: value})
    assert message in info.value.message
    assert info.value.field == field
    assert Partner.objects.count() == 0
    assert mail.outbox == []


def test_one_application_at_a_time() -> None:
    partner = make_partner(approved=False)
    with pytest.raises(AlreadyApplied):
        services.apply(user=partner.user, **APPLICATION)


def test_approve_emails_the_applicant(on_commit: Any) -> None:
    partner = make_partner(approved=False)
    staff = make_staff()
    mail.outbox.clear()
    with on_commit():
        partner = services.approve(partner=partner, reviewer=staff)
    assert partner.status == PartnerStatus.APPROVED
    assert partner.reviewed_by == staff
    assert [m.subject for m in mail.outbox] == ["Welcome to the Apertur Partner Program"]
    event = AuditEvent.objects.get(action="partner.approved")
    assert event.actor == staff


def test_reject_needs_a_reason_and_sends_it(on_commit: Any) -> None:
    partner = make_partner(approved=False)
    with pytest.raises(ReasonRequired):
        services.reject(partner=partner, reviewer=None, reason="   ")
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.PENDING
    mail.outbox.clear()
    with on_commit():
        services.reject(partner=partner, reviewer=None, reason="We could not reach your website.")
    assert "We could not reach your website." in mail.outbox[0].body


def test_rejected_applicant_may_apply_again() -> None:
    partner = make_partner(approved=False)
    services.reject(partner=partner, reviewer=None, reason="Incomplete")
    again = services.apply(user=partner.user, **{**APPLICATION, "company_name": "Snapflow Ltd"})
    assert again.pk == partner.pk
    assert again.status == PartnerStatus.PENDING
    assert again.review_reason == ""


@pytest.mark.parametrize(
    ("setup", "action"),
    [
        ("approved", "approve"),
        ("approved", "reject"),
        ("approved", "restore"),
        ("pending", "suspend"),
        ("pending", "restore"),
    ],
)
def test_invalid_transitions_are_refused(setup: str, action: str) -> None:
    partner = make_partner(approved=setup == "approved")
    before = partner.status
    kwargs: dict[str, Any] = {"partner": partner, "reviewer": None}
    if action in {"reject", "suspend"}:
        kwargs["reason"] = "because"
    with pytest.raises(InvalidPartnerTransition):
        getattr(services, action)(**kwargs)
    partner.refresh_from_db()
    assert partner.status == before


def test_suspend_and_restore(on_commit: Any, settings: Any) -> None:
    partner = make_partner()
    with on_commit():
        services.suspend(partner=partner, reviewer=None, reason="Terms violation")
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.SUSPENDED
    assert partner.suspension_reason == "Terms violation"
    with on_commit():
        services.restore(partner=partner, reviewer=None)
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.APPROVED
    subjects = [m.subject for m in mail.outbox]
    assert "Your Apertur partner account is suspended" in subjects
    assert "Your Apertur partner account is active again" in subjects
    # "Reply to this email if you believe this is a mistake": the reply must not go to no-reply@.
    [suspended] = [m for m in mail.outbox if m.subject == "Your Apertur partner account is suspended"]
    assert "Reply to this email" in suspended.body and suspended.reply_to == [settings.SUPPORT_EMAIL]
    # What the partner's page says of a suspension, and where it is (the email audit's leftover: neither was there).
    body = " ".join(suspended.body.split())
    assert "Commissions from customers who are already yours keep accumulating" in body
    assert "no payouts are sent" in body and "receive no events" in body
    assert f"{settings.APERTUR_BASE_URL}/partners/" in body


@pytest.mark.parametrize(
    ("approved", "action", "reason", "error"),
    [
        (False, "reject", " ", ReasonRequired),
        (True, "suspend", "", ReasonRequired),
        (True, "reject", "Spam", InvalidPartnerTransition),
        (False, "suspend", "Abuse", InvalidPartnerTransition),
    ],
)
def test_check_review_raises_what_the_action_would_and_changes_nothing(
    approved: bool, action: str, reason: str, error: type[Exception], on_commit: Any
) -> None:
    partner = make_partner(approved=approved)
    before, events = partner.status, AuditEvent.objects.count()
    mail.outbox.clear()
    with on_commit(), pytest.raises(error):
        services.check_review(partner=partner, action=action, reason=reason)
    partner.refresh_from_db()
    assert (partner.status, AuditEvent.objects.count(), mail.outbox) == (before, events, [])


def test_check_review_passes_an_action_that_can_happen() -> None:
    partner = make_partner()
    services.check_review(partner=partner, action="suspend", reason="Abuse")
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.APPROVED


def test_mails_show_names_and_reasons_as_typed_not_html_escaped(on_commit: Any) -> None:
    """The mails are plain text: a company called "Ana & Ben's <Photos>" reads so, not "Ana &amp; Ben&#x27;s"."""
    user = make_user("o'brien@example.com")
    name = "Ana & Ben's <Photos>"
    with on_commit():
        partner = services.apply(user=user, **{**APPLICATION, "company_name": name})
        services.reject(partner=partner, reviewer=None, reason='Your site doesn\'t load & says "soon".')
        partner = services.apply(user=user, **{**APPLICATION, "company_name": name})
        services.approve(partner=partner, reviewer=None)
        services.suspend(partner=partner, reviewer=None, reason="Spam & <abuse>")
        services.restore(partner=partner, reviewer=None)
    bodies = {message.subject: message.body for message in mail.outbox}
    assert len(bodies) == 6
    for body in bodies.values():
        assert name in body
        assert "&amp;" not in body and "&#x27;" not in body and "&lt;" not in body and "&quot;" not in body
    assert "Applicant: o'brien@example.com" in bodies[f"New partner application: {name}"]
    assert (
        'Reason: Your site doesn\'t load & says "soon".' in bodies["Your Apertur partner application was not approved"]
    )
    assert "Reason: Spam & <abuse>" in bodies["Your Apertur partner account is suspended"]


def test_a_partner_is_found_by_any_spelling_of_its_address() -> None:
    """``apertur partner balance --email`` and the other commands that name a partner by address read it as the
    accounts do (``normalize_email``): capitals, spaces and a full-width domain find the same partner."""
    from apertur.partners.selectors import partner_by_email

    partner = make_partner(user=make_user("ada@example.com"))
    for typed in ("ada@example.com", " ADA@Example.COM ", "ada@ｅｘａｍｐｌｅ.com"):
        assert partner_by_email(email=typed) == partner, typed
    assert partner_by_email(email="bob@example.com") is None


def test_a_company_name_with_a_text_direction_override_is_refused_and_nothing_is_stored() -> None:
    """Staff read the company name in the review queue; U+202E would reverse what follows it on the page."""
    user = make_user()
    with pytest.raises(InvalidApplication) as info:
        services.apply(user=user, **{**APPLICATION, "company_name": "Snapflow\u202e Inc."})
    assert info.value.field == "company_name" and "text-direction" in info.value.message
    assert not Partner.objects.filter(user=user).exists()
