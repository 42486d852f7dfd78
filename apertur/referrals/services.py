"""Referral links, the 90-day first-party cookie, and attributing customers to partners.

An attribution is set once per customer, for life: the first rule that applies wins (a referral at
signup, or an OAuth connection when the customer first pays), and later events never move it. A partner
is never attributed its own account.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import F, Q

from apertur.accounts.models import User
from apertur.core import audit, clock, ratelimit
from apertur.core.counts import ensure_room
from apertur.core.errors import RateLimited
from apertur.core.http import rate_limit_ip
from apertur.partners.models import Partner, PartnerStatus
from apertur.projects.services import create_customer
from apertur.referrals.errors import ReferralLinkLimitReached
from apertur.referrals.models import Attribution, AttributionSource, ReferralClick, ReferralLink

if TYPE_CHECKING:
    from apertur.oauth.models import Connection

COOKIE_NAME = "aptr_ref"
COOKIE_MAX_AGE = dt.timedelta(days=90)
_SALT = "apertur.referrals.cookie"
#: Referral links one partner may have (docs/partners.md): one per campaign, newsletter or site is far below it.
#: Links are never deleted (customers and clicks refer to them), so the limit is on every link made.
MAX_LINKS_PER_PARTNER = 100


def ensure_default_link(*, partner: Partner) -> ReferralLink:
    """The partner's first referral link, created once (idempotent)."""
    link = partner.referral_links.order_by("created_at", "id").first()
    return link or ReferralLink.objects.create(partner=partner, label="Default")


def default_link_url(*, partner: Partner) -> str | None:
    link = partner.referral_links.order_by("created_at", "id").first()
    return link.url if link else None


@transaction.atomic
def create_link(*, partner: Partner, label: str = "") -> ReferralLink:
    ensure_room(
        owner=partner,
        existing=ReferralLink.objects.filter(partner=partner),
        limit=MAX_LINKS_PER_PARTNER,
        error=ReferralLinkLimitReached(
            f"A partner can have at most {MAX_LINKS_PER_PARTNER} referral links. Reuse one you no longer use for "
            "the new campaign, or write to support if you need more."
        ),
    )
    return ReferralLink.objects.create(partner=partner, label=" ".join(label.split())[:80])


# Link previews and crawlers follow links without a person behind them: no click, no cookie. Matched
# case-insensitively anywhere in the User-Agent, by the tokens these agents publish for themselves. HTTP libraries
# and headless browsers are not on the list: they are how people test their links and how integrations are
# tested end to end (the per-address budget bounds what scripts can add).
_AGENTS = re.compile(
    # "…bot" ending a product token (Googlebot/2.1, Slackbot-LinkExpanding, TwitterBot)), not any word ending
    # in "bot" (a CUBOT phone's "CUBOT X30"); "+http" is the contact URL crawlers put in their agent.
    r"bot(?:/|-|;|\)|$)|\+https?://|crawler|spider|slurp|preview|linkexpanding|facebookexternalhit|embedly|whatsapp|"
    r"skypeuripreview",
    re.IGNORECASE,
)
#: Clicks counted per link and client address per hour: beyond it a visitor is still sent on, but the partner's
#: figure (and the click table) stop growing.
CLICKS_PER_IP = ratelimit.Limit("referral-click-ip", 20, 60 * 60)
# Referral codes are 10 characters of [A-Za-z0-9] (models.new_referral_code); longer ones are refused by the
# column anyway. Anything else (a NUL byte, a slash) never reaches the database.
_CODE = re.compile(r"[A-Za-z0-9]{1,32}")
# Punctuation a link picks up at the end of a sentence or in a chat message ("…at https://…/r/AbC123xyZ9.").
_TRAILING = ".,;:!?)]}>'\"/"


def find_link(code: str) -> ReferralLink | None:
    """The link a visitor meant: the code as given, or without what a sentence appended to it."""
    for candidate in dict.fromkeys([code, code.rstrip(_TRAILING)]):
        if _CODE.fullmatch(candidate):
            link = ReferralLink.objects.select_related("partner").filter(code=candidate).first()
            if link is not None:
                return link
    return None


def counts_as_click(*, link: ReferralLink, user_agent: str, user: User | None, ip: str) -> bool:
    """Whether a visit is a referral click: a person (no known preview or crawler agent), not signed in (an
    existing account is never referred; the partner clicking their own link is one), to the link of an approved
    partner (a suspended partner's link refers no one and must not replace another partner's cookie), within the
    per-address budget."""
    if link.partner.status != PartnerStatus.APPROVED or user is not None or _AGENTS.search(user_agent):
        return False
    try:
        ratelimit.hit(CLICKS_PER_IP, f"{link.pk}|{rate_limit_ip(ip)}")
    except RateLimited:
        return False
    return True


@transaction.atomic
def record_click(*, link: ReferralLink, at: dt.datetime | None = None) -> str:
    """Count the click (its row, and the link's ``click_count`` in the same transaction: an atomic increment, so
    simultaneous clicks each count); return the signed cookie value naming the link and the click time."""
    click = ReferralClick.objects.create(link=link, at=at or clock.now())
    ReferralLink.objects.filter(pk=link.pk).update(click_count=F("click_count") + 1)
    return signing.dumps({"code": link.code, "at": click.at.timestamp()}, salt=_SALT)


def link_from_cookie(value: str | None) -> tuple[ReferralLink, dt.datetime] | None:
    """The link of a valid cookie clicked within the last 90 days (by the clock), else None."""
    if not value:
        return None
    try:
        data = signing.loads(value, salt=_SALT)
        clicked = dt.datetime.fromtimestamp(float(data["at"]), tz=dt.UTC)
        code = str(data["code"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    if clock.now() - clicked > COOKIE_MAX_AGE:
        return None
    link = ReferralLink.objects.select_related("partner__user").filter(code=code).first()
    return (link, clicked) if link is not None else None


def _eligible(partner: Partner, customer: User) -> bool:
    """Never the partner's own account, nor a customer whose email is the partner's verified PayPal email."""
    from apertur.partners.paypal import shares_verified_email

    return (
        partner.status == PartnerStatus.APPROVED
        and partner.user_id != customer.pk
        and not shares_verified_email(partner=partner, email=customer.email)
    )


def _create(**fields: object) -> Attribution | None:
    try:
        with transaction.atomic():
            attribution = Attribution.objects.create(**fields)
    except IntegrityError:
        return None  # the customer is already attributed: set once
    audit.record(action="attribution.created", obj=attribution, data={"source": attribution.source})
    return attribution


def attribute_signup(*, customer: User, cookie: str | None) -> Attribution | None:
    found = link_from_cookie(cookie)
    if found is None:
        return None
    link, _ = found
    if not _eligible(link.partner, customer):
        return None
    return _create(
        customer=customer, partner=link.partner, source=AttributionSource.REFERRAL, link=link, at=clock.now()
    )


@transaction.atomic
def sign_up_customer(*, email: str, password: str, referral_cookie: str | None, ip: str | None = None) -> User:
    """The signup page's one change, all or nothing: the account and its first project
    (:func:`apertur.projects.services.create_customer`) and, when the browser carries a partner's referral cookie,
    the customer's attribution (:func:`attribute_signup`)."""
    user = create_customer(email=email, password=password, ip=ip)
    attribute_signup(customer=user, cookie=referral_cookie)
    return user


def drop_unproven_referral(*, customer: User) -> Attribution | None:
    """A referral made at a signup whose mailbox was never proven, now claimed through a password reset, is
    dropped (audited ``attribution.dropped``): anyone who had clicked a partner's link could have signed up with
    someone else's address, and the address's owner, finding it taken, resets the password and would then be
    that partner's customer for life. Only while the customer has made no payment (commissions already earned
    stay as they are; staff can still move the attribution). The cost: a real referral whose customer never
    confirmed their email and reset their password before paying is lost too."""
    from apertur.projects.models import Payment

    attribution = (
        Attribution.objects.select_for_update().filter(customer=customer, source=AttributionSource.REFERRAL).first()
    )
    if attribution is None or Payment.objects.filter(customer=customer).exists():
        return None
    audit.record(
        action="attribution.dropped",
        obj=attribution,
        data={"partner": attribution.partner_id, "reason": "unconfirmed signup claimed by a password reset"},
    )
    attribution.delete()
    return attribution


def attribute_by_oauth(*, customer: User, at: dt.datetime) -> Attribution | None:
    """When an unattributed customer starts paying (``at``: subscribing or upgrading): the partner of the most
    recent connection of one of their projects made at or before that moment and active then (removed later or not).

    Stripe delivers events in any order, so a later qualifying moment (an upgrade) may be seen before an
    earlier one (the subscription's start). An OAuth attribution is therefore dated at the earliest moment
    seen: one made at a later moment moves back to ``at`` when the same partner's app was already connected
    then. It never changes partner (a connection to another partner by then is left alone, as is an
    attribution staff moved). Returns the attribution when it was created or moved earlier, else None."""
    from apertur.oauth.models import Connection

    # Active at that moment, not at delivery: a connection removed since still counts (an event may be applied days
    # later: a subscription waiting for its first invoice, a given-up event retried, an import).
    active_then = Q(revoked_at__isnull=True) | Q(revoked_at__gt=at)
    connection = (
        Connection.objects.filter(active_then, project__owner=customer, created_at__lte=at)
        .select_related("app__partner")
        .order_by("-created_at", "-id")
        .first()
    )
    existing = Attribution.objects.filter(customer=customer).select_related("app").first()
    if existing is not None:
        return _move_earlier(existing, connection, at) if connection is not None else None
    if connection is None or not _eligible(connection.app.partner, customer):
        return None
    return _create(
        customer=customer, partner=connection.app.partner, source=AttributionSource.OAUTH, app=connection.app, at=at
    )


def _move_earlier(attribution: Attribution, connection: Connection, at: dt.datetime) -> Attribution | None:
    if attribution.source != AttributionSource.OAUTH or at >= attribution.at:
        return None
    if connection.app.partner_id != attribution.partner_id:
        return None
    if attribution.app is not None and attribution.app.partner_id != attribution.partner_id:
        return None  # staff moved it to another partner: theirs to change
    with transaction.atomic():
        attribution = Attribution.objects.select_for_update().get(pk=attribution.pk)
        # Again under the lock: staff may have moved the customer to another partner meanwhile
        # (change_attribution), whose attribution a connection to this partner's app must not date earlier.
        if at >= attribution.at or attribution.partner_id != connection.app.partner_id:
            return None
        before = attribution.at
        attribution.at, attribution.app = at, connection.app
        attribution.save(update_fields=["at", "app"])
        audit.record(
            action="attribution.moved_earlier",
            obj=attribution,
            data={"from": before.isoformat(), "to": at.isoformat(), "app": connection.app_id},
        )
    return attribution


class ReasonRequired(ValueError):
    pass


def refusal_for(*, partner: Partner, customer: User) -> str:
    """Why ``customer`` may not be attributed to ``partner`` (the rules of :func:`_eligible`, which staff moving an
    attribution are held to as well), or "" when they may."""
    if partner.user_id == customer.pk:
        return "A partner cannot be attributed its own account."
    if partner.status != PartnerStatus.APPROVED:
        status = partner.get_status_display().lower()
        return f"Only approved partners are attributed customers; this partner's status is {status}."
    if not _eligible(partner, customer):
        return "This customer's email is the partner's verified PayPal email: they cannot be attributed to them."
    return ""


@transaction.atomic
def change_attribution(
    *, attribution: Attribution, partner: Partner, reason: str, actor: User | None, ip: str | None = None
) -> Attribution:
    """Staff move a customer to another partner. The reason is required and kept in the audit log; earlier
    commission entries stay with the partner that earned them, later payments earn for the new one."""
    text = reason.strip()
    if not text:
        raise ReasonRequired("Give the reason for changing the attribution.")
    attribution = Attribution.objects.select_for_update().get(pk=attribution.pk)
    before = attribution.partner_id
    refusal = refusal_for(partner=partner, customer=attribution.customer)
    if refusal:
        raise ReasonRequired(refusal)
    attribution.partner = partner
    attribution.save(update_fields=["partner"])
    audit.record(
        action="attribution.changed",
        obj=attribution,
        actor=actor,
        ip=ip,
        data={"from_partner": before, "to_partner": partner.pk, "reason": text},
    )
    return attribution
