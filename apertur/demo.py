"""Demo data for ``make run`` and ``apertur demo``: idempotent, so running it again changes nothing and
prints the same object.

The demo app's client secret is derived from SECRET_KEY (HMAC) so it is stable across runs while still
stored only as a hash; a real app's secret is random and shown once.

The demo customer came through the demo partner's referral link and has paid for Business for nine months;
those payments are Stripe-signed events delivered through the webhook's intake (verify, then receive),
so the partner's dashboard shows earnings that the production path wrote. The demo partner's PayPal email is
verified, so the monthly payout run (``apertur worker``'s schedule, in ``make run`` against the PayPal emulator)
pays the demo partner: nine months at $10.00 commission leave at least $50.00 CAD eligible at the last run
whatever today's date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from apertur.accounts.models import User
from apertur.accounts.services import create_user
from apertur.core import audit, clock, tokens
from apertur.core.errors import ValidationFailed
from apertur.core.tokens import Prefix
from apertur.oauth.models import KeyMode, OAuthApp
from apertur.oauth.selectors import active_public_key
from apertur.oauth.services import create_app, update_app
from apertur.partners import services as partner_services
from apertur.partners.models import ExpectedCustomers, Partner, PartnerStatus
from apertur.projects.models import Payment, Project
from apertur.projects.selectors import plan_by_name, project_list
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource, ReferralLink
from apertur.referrals.services import ensure_default_link, record_click

logger = logging.getLogger(__name__)

CUSTOMER = {"email": "customer@example.com", "password": "apertur-demo-customer"}
PARTNER = {"email": "partner@example.com", "password": "apertur-demo-partner"}
STAFF = {"email": "staff@example.com", "password": "apertur-demo-staff"}
PROJECTS = [("Wedding photos", "Pro"), ("Team events", "Free")]
APP_NAME = "Demo Partner Site"
PARTNER_SITE = "http://partner.localhost:8001"
REDIRECT_URI = f"{PARTNER_SITE}/callback"
ALLOWED_DOMAINS = ["*.localhost"]
PARTNER_PAYPAL_EMAIL = "partner-paypal@example.com"
BILLING_PLAN = "Business"
BILLING_MONTHS = 9
BILLING_REFUND_CENTS = 1_000  # a partial refund of the second payment, so the ledger shows a reversal


def demo_client_secret() -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), b"apertur-demo-client-secret", hashlib.sha256).digest()
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int.from_bytes(digest, "big")
    chars: list[str] = []
    while number and len(chars) < 43:
        number, rem = divmod(number, 62)
        chars.append(alphabet[rem])
    return f"{Prefix.CLIENT_SECRET}{''.join(chars)}"


def _user(spec: dict[str, str], *, is_staff: bool = False) -> User:
    user = User.objects.filter(email=spec["email"]).first()
    if user is None:
        return create_user(email=spec["email"], password=spec["password"], email_confirmed=True, is_staff=is_staff)
    if not user.check_password(spec["password"]):
        user.set_password(spec["password"])
        user.save(update_fields=["password"])
    return user


def _referred(customer: User, link: ReferralLink, at: dt.datetime) -> None:
    """The customer clicked the partner's link and signed up just before their first payment (the rows
    the referral flow writes, dated back so the simulated history can earn commissions)."""
    if Attribution.objects.filter(customer=customer).exists():
        return  # set once: whatever attributed the customer before stays
    record_click(link=link, at=at - dt.timedelta(minutes=5))
    attribution = Attribution.objects.create(
        customer=customer, partner=link.partner, source=AttributionSource.REFERRAL, link=link, at=at
    )
    audit.record(action="attribution.created", obj=attribution, data={"source": attribution.source, "demo": True})


def _billing_history(customer: User, link: ReferralLink) -> None:
    """Nine monthly Business payments (the last still on the 30-day hold) and a partial refund, delivered
    once: nothing happens when the customer already has a payment."""
    from apertur.integrations.stripe import events
    from apertur.integrations.stripe import services as intake
    from apertur.integrations.stripe.simulate import RefundSpec, add_months, history

    if Payment.objects.filter(customer=customer).exists() or not settings.STRIPE_WEBHOOK_SECRET:
        return
    today = clock.business_date()
    start = add_months(today - dt.timedelta(days=10), -(BILLING_MONTHS - 1))
    _referred(customer, link, dt.datetime.combine(start, dt.time(9), tzinfo=clock.BUSINESS_TZ))
    plan = plan_by_name(BILLING_PLAN)
    refund = RefundSpec(BILLING_REFUND_CENTS, add_months(start, 1) + dt.timedelta(days=5))
    for evt in history(
        email=customer.email,
        plan=plan.name,
        price_cents=plan.price_cents,
        months=BILLING_MONTHS,
        start=start,
        refunds=[refund],
        user_public_id=customer.public_id,
        customer_id="cus_demo_customer",
        id_prefix="demo",
    ):
        body = events.encode(evt)
        outcome = intake.intake(body=body, signature=events.sign(body, settings.STRIPE_WEBHOOK_SECRET))
        if outcome.status != "processed":
            logger.warning("demo billing event %s %s: %s", evt["type"], outcome.status, outcome.detail)


def _verified_paypal(partner: Partner) -> None:
    """The demo partner confirmed a PayPal address (as if the emailed link had been opened), once."""
    if partner.verified_paypal_email or partner.paypal_pending_email:
        return
    Partner.objects.filter(pk=partner.pk).update(paypal_email=PARTNER_PAYPAL_EMAIL, paypal_verified_at=clock.now())
    partner.refresh_from_db()
    audit.record(action="partner.paypal_confirmed", obj=partner, data={"email": PARTNER_PAYPAL_EMAIL, "demo": True})


def _allow_site(app: OAuthApp, site_url: str) -> None:
    """The demo partner site served at another address (``apertur partner-site --port``, make run's
    ``SITE_PORT``) becomes one more redirect URI of the demo app, under the app's one rule set: an address that
    rule refuses is left out (``apertur partner-site`` then says so)."""
    uris = list(app.redirect_uris.values_list("uri", flat=True))
    if f"{site_url}/callback" in uris:
        return
    try:
        update_app(
            app=app,
            name=app.name,
            description=app.description,
            website=app.website,
            redirect_uris=[*uris, f"{site_url}/callback"],
            allowed_domains=list(app.allowed_domains.values_list("pattern", flat=True)),
            budgeted=False,  # the operator's demo, not a partner's portal
        )
    except ValidationFailed as exc:
        logger.info("demo app: %s/callback not added as a redirect URI: %s", site_url, exc)


@transaction.atomic
def ensure_demo(*, site_url: str = PARTNER_SITE) -> dict[str, Any]:
    """The demo data, created once; ``site_url`` is where the demo partner site is served (its
    ``/callback`` is made a redirect URI of the demo app)."""
    customer = _user(CUSTOMER)
    for name, plan in PROJECTS:
        if not Project.objects.filter(owner=customer, name=name).exists():
            create_project(owner=customer, name=name, plan=plan_by_name(plan))

    staff = _user(STAFF, is_staff=True)
    if not staff.is_superuser or not staff.is_staff:
        staff.is_staff = staff.is_superuser = True
        staff.save(update_fields=["is_staff", "is_superuser"])

    partner_user = _user(PARTNER)
    partner = Partner.objects.filter(user=partner_user).first()
    if partner is None or partner.status == PartnerStatus.REJECTED:
        partner = partner_services.apply(
            user=partner_user,
            company_name="Demo Photo Partner",
            website=PARTNER_SITE,
            use_case="A demo partner site that connects Apertur projects through aptr-connect.",
            expected_customers=ExpectedCustomers.UP_TO_100,
            awaits_review=False,  # approved just below: nothing waits for review
        )
    if partner.status == PartnerStatus.PENDING:
        partner = partner_services.approve(partner=partner, reviewer=staff)
    elif partner.status == PartnerStatus.SUSPENDED:
        partner = partner_services.restore(partner=partner, reviewer=staff)
    link = ensure_default_link(partner=partner)
    _billing_history(customer, link)
    _verified_paypal(partner)

    secret = demo_client_secret()
    app = OAuthApp.objects.filter(partner=partner, name=APP_NAME).first()
    if app is None:
        app = create_app(
            partner=partner,
            name=APP_NAME,
            description="The example partner integration served by make run.",
            website=PARTNER_SITE,
            redirect_uris=[REDIRECT_URI],
            allowed_domains=ALLOWED_DOMAINS,
            budgeted=False,
        ).app
    if not tokens.secret_matches(secret, app.client_secret_hash) or not app.is_active:
        app.client_secret_hash = tokens.hash_secret(secret)
        app.client_secret_last4 = tokens.last_four(secret)
        app.is_active = True
        app.save(update_fields=["client_secret_hash", "client_secret_last4", "is_active"])
    _allow_site(app, site_url.rstrip("/"))

    return {
        "base_url": settings.APERTUR_BASE_URL,
        "user": CUSTOMER,
        "projects": [p.as_json() for p in project_list(owner=customer)],
        "partner": {**PARTNER, "referral_link": link.url},
        "staff": STAFF,
        "app": {
            "client_id": app.client_id,
            "client_secret": secret,
            "public_key": active_public_key(app=app, mode=KeyMode.LIVE).key,
            "test_public_key": active_public_key(app=app, mode=KeyMode.TEST).key,
            "redirect_uris": list(app.redirect_uris.values_list("uri", flat=True)),
            "allowed_domains": list(app.allowed_domains.values_list("pattern", flat=True)),
        },
    }
