"""The partner program: apply, review (approve / reject with a reason), suspend and restore.

Every transition is checked against the current status under a row lock, audited, and mailed to the
applicant once the transaction commits.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from apertur.accounts.models import User
from apertur.core import audit, clock, mail
from apertur.core.validation import Checks, clean_text, clean_website
from apertur.partners.errors import (
    AlreadyApplied,
    InvalidApplication,
    InvalidPartnerTransition,
    ReasonRequired,
)
from apertur.partners.models import ExpectedCustomers, Partner, PartnerStatus
from apertur.partners.signals import partner_approved


def clean_application(*, company_name: str, website: str, use_case: str, expected_customers: str) -> dict[str, str]:
    """Every field checked, every problem reported at once (:class:`~apertur.core.validation.Checks`)."""
    checks = Checks()
    name = checks.run(
        lambda: clean_text(
            company_name,
            low=2,
            high=120,
            field="company_name",
            error=InvalidApplication,
            collapse_spaces=True,
            message="Enter your company or platform name (2 to 120 characters).",
        ),
        "",
    )
    site = checks.run(lambda: clean_website(website, error=InvalidApplication), "")
    text = checks.run(
        lambda: clean_text(
            use_case,
            low=20,
            high=5000,
            field="use_case",
            error=InvalidApplication,
            message="Tell us what you will build with Apertur (20 to 5,000 characters).",
        ),
        "",
    )

    def customers() -> str:
        if expected_customers not in ExpectedCustomers.values:
            raise InvalidApplication("Choose how many customers you expect to connect.", field="expected_customers")
        return expected_customers

    checks.run(customers, "")
    checks.done()
    return {"company_name": name, "website": site, "use_case": text, "expected_customers": expected_customers}


@transaction.atomic
def apply(
    *,
    user: User,
    company_name: str,
    website: str,
    use_case: str,
    expected_customers: str,
    ip: str | None = None,
    awaits_review: bool = True,
) -> Partner:
    """Submit an application. A rejected applicant may apply again; anyone else has one application. The
    applicant is told it waits for review (within about 2 business days, the decision by email) and staff that it
    waits for them, unless ``awaits_review`` is off (``apertur partner create --approve`` and the demo approve it
    in the same transaction: nothing waits, and the approval's welcome is the one mail)."""
    fields = clean_application(
        company_name=company_name, website=website, use_case=use_case, expected_customers=expected_customers
    )
    existing = Partner.objects.select_for_update().filter(user=user).first()
    if existing is not None and existing.status != PartnerStatus.REJECTED:
        raise AlreadyApplied()
    if existing is None:
        try:
            with transaction.atomic():
                partner = Partner.objects.create(user=user, **fields)
        except IntegrityError as exc:
            raise AlreadyApplied() from exc
    else:
        partner = existing
        for key, value in fields.items():
            setattr(partner, key, value)
        partner.status = PartnerStatus.PENDING
        partner.applied_at = clock.now()
        partner.reviewed_at = None
        partner.reviewed_by = None
        partner.review_reason = ""
        partner.save()
    audit.record(action="partner.applied", obj=partner, actor=user, ip=ip, data=fields)
    if awaits_review:
        mail.send(
            to=user.email,
            subject="We received your Apertur partner application",
            template="emails/partner_applied",
            context={"partner": partner},
        )
        mail.send(
            to=settings.STAFF_NOTIFY_EMAIL,
            subject=f"New partner application: {partner.company_name}",
            template="emails/partner_staff_notify",
            context={"partner": partner, "email": user.email},
        )
    return partner


#: The statuses each review action leaves from.
_ALLOWED_FROM: dict[str, frozenset[str]] = {
    "approve": frozenset({PartnerStatus.PENDING}),
    "reject": frozenset({PartnerStatus.PENDING}),
    "suspend": frozenset({PartnerStatus.APPROVED}),
    "restore": frozenset({PartnerStatus.SUSPENDED}),
}


def _check_status(partner: Partner, action: str) -> None:
    if partner.status not in _ALLOWED_FROM[action]:
        raise InvalidPartnerTransition(
            f"Cannot {action} a partner whose status is {partner.get_status_display().lower()}."
        )


def _transition(*, partner: Partner, action: str) -> Partner:
    locked = Partner.objects.select_for_update().select_related("user").get(pk=partner.pk)
    _check_status(locked, action)
    return locked


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise ReasonRequired(field="reason")
    return text


def check_review(*, partner: Partner, action: str, reason: str) -> None:
    """Raise what ``reject`` or ``suspend`` (``action``) would raise now, changing nothing: staff are asked to
    confirm only an action that can happen, with the reason the partner will read."""
    _reason(reason)
    _check_status(partner, action)


@transaction.atomic
def approve(*, partner: Partner, reviewer: User | None, ip: str | None = None) -> Partner:
    partner = _transition(partner=partner, action="approve")
    partner.status = PartnerStatus.APPROVED
    partner.reviewed_at = clock.now()
    partner.reviewed_by = reviewer
    partner.review_reason = ""
    partner.save()
    audit.record(action="partner.approved", obj=partner, actor=reviewer, ip=ip)
    partner_approved.send(sender=Partner, partner=partner)
    mail.send(
        to=partner.user.email,
        subject="Welcome to the Apertur Partner Program",
        template="emails/partner_approved",
        context={"partner": partner},
    )
    return partner


@transaction.atomic
def reject(*, partner: Partner, reviewer: User | None, reason: str, ip: str | None = None) -> Partner:
    text = _reason(reason)
    partner = _transition(partner=partner, action="reject")
    partner.status = PartnerStatus.REJECTED
    partner.reviewed_at = clock.now()
    partner.reviewed_by = reviewer
    partner.review_reason = text
    partner.save()
    audit.record(action="partner.rejected", obj=partner, actor=reviewer, ip=ip, data={"reason": text})
    mail.send(
        to=partner.user.email,
        subject="Your Apertur partner application was not approved",
        template="emails/partner_rejected",
        context={"partner": partner},
    )
    return partner


@transaction.atomic
def suspend(*, partner: Partner, reviewer: User | None, reason: str, ip: str | None = None) -> Partner:
    """Suspension takes effect at once: every check of an app's usability reads the partner's status."""
    text = _reason(reason)
    partner = _transition(partner=partner, action="suspend")
    partner.status = PartnerStatus.SUSPENDED
    partner.suspended_at = clock.now()
    partner.suspension_reason = text
    partner.save()
    audit.record(action="partner.suspended", obj=partner, actor=reviewer, ip=ip, data={"reason": text})
    mail.send(
        to=partner.user.email,
        subject="Your Apertur partner account is suspended",
        template="emails/partner_suspended",
        context={"partner": partner},
    )
    return partner


@transaction.atomic
def restore(*, partner: Partner, reviewer: User | None, ip: str | None = None) -> Partner:
    partner = _transition(partner=partner, action="restore")
    partner.status = PartnerStatus.APPROVED
    partner.suspended_at = None
    partner.suspension_reason = ""
    partner.save()
    audit.record(action="partner.restored", obj=partner, actor=reviewer, ip=ip)
    mail.send(
        to=partner.user.email,
        subject="Your Apertur partner account is active again",
        template="emails/partner_restored",
        context={"partner": partner},
    )
    return partner
