from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.html import escape

from apertur.core.models import AuditEvent
from apertur.oauth.models import AllowedDomain, Connection, RedirectURI
from apertur.partners.models import Partner, PartnerStatus
from apertur.partners.selectors import STAFF_PAGE_SIZE
from apertur.testing import APPLICATION, make_app, make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db


def _client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_partner_section_needs_login() -> None:
    response = Client().get("/partners/")
    assert response.status_code == 302 and response["Location"].startswith("/login?next=/partners/")


def test_apply_and_see_status() -> None:
    client = _client_for(make_user())
    page = client.get("/partners/").content.decode()
    assert "Apply" in page and "10&nbsp;% recurring commission" in page
    response = client.post("/partners/", APPLICATION, follow=True)
    html = response.content.decode()
    assert "Pending review" in html
    assert "within about 2 business days" in html
    assert Partner.objects.get().status == PartnerStatus.PENDING


def test_the_application_names_the_purpose_of_the_applicants_organization_and_website() -> None:
    """WCAG 1.3.5: the applicant's own company and site are input purposes ("organization", "url") that browsers
    and assistive tools can fill in or mark."""
    html = _client_for(make_user()).get("/partners/").content.decode()
    assert re.search(r'<input type="text" name="company_name"[^>]* autocomplete="organization"', html)
    assert re.search(r'<input type="url" name="website"[^>]* autocomplete="url"', html)


def test_bad_application_shows_why_and_stores_nothing() -> None:
    client = _client_for(make_user())
    response = client.post("/partners/", {**APPLICATION, "website": "not a site"})
    assert response.status_code == 400
    assert "Enter the website as a full address" in response.content.decode()
    assert Partner.objects.count() == 0


def test_portal_shell_links_every_section() -> None:
    partner = make_partner()
    client = _client_for(partner.user)
    home = client.get("/partners/").content.decode()
    for label in ("OAuth apps", "Referral links", "Commissions", "Payouts", "Balance"):
        assert label in home
    # The product docs' name for it ("Go to the Partner dashboard and click New OAuth App").
    assert "<title>Partner dashboard" in home and f"<h1>Partner dashboard · {partner.company_name}</h1>" in home
    assert 'aria-label="Partner dashboard"' in home and "Partner portal" not in home
    for path in ("referrals", "commissions", "payouts"):
        page = client.get(f"/partners/{path}/")
        assert page.status_code == 200
        assert "Not available yet" not in page.content.decode()


@pytest.mark.parametrize("status", ["pending", "rejected", "suspended", None])
def test_partner_tools_only_for_approved(status: str | None) -> None:
    user = make_user()
    if status is not None:
        partner = make_partner(user=user, approved=status == "suspended")
        if status == "rejected":
            partner.status = PartnerStatus.REJECTED
            partner.save()
        if status == "suspended":
            partner.status = PartnerStatus.SUSPENDED
            partner.save()
    client = _client_for(user)
    for path in (
        "/partners/apps/",
        "/partners/apps/new",
        "/partners/payouts/",
        "/partners/referrals/",
        "/partners/commissions/",
    ):
        response = client.get(path)
        assert response.status_code == 403
        if status == "suspended":  # what happens to the money (issue 8: "others accumulate and the portal says why")
            assert "keep accumulating in your balance" in response.content.decode()


def test_staff_review_pages() -> None:
    partner = make_partner(approved=False)
    staff_client = _client_for(make_staff())
    listing = staff_client.get("/partners/staff/").content.decode()
    assert "Snapflow Inc." in listing
    detail = staff_client.get(f"/partners/staff/{partner.pk}/").content.decode()
    assert "Approve" in detail and "Reject" in detail
    missing = staff_client.post(f"/partners/staff/{partner.pk}/reject", {"reason": ""})
    assert missing.status_code == 400
    assert "Give a reason" in missing.content.decode()
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.PENDING
    staff_client.post(f"/partners/staff/{partner.pk}/approve")
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.APPROVED
    again = staff_client.post(f"/partners/staff/{partner.pk}/approve")
    assert again.status_code == 400 and "Cannot approve" in again.content.decode()


def test_non_staff_cannot_review() -> None:
    partner = make_partner(approved=False)
    client = _client_for(make_user())
    response = client.post(f"/partners/staff/{partner.pk}/approve")
    assert response.status_code == 403  # the site's 403 page, not the admin's login (test_staff_access.py)
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.PENDING


# --- staff review queue: pages ------------------------------------------------------------------------


def _applications(count: int, *, status: str = PartnerStatus.PENDING) -> list[Partner]:
    """``count`` partners in ``status``, "Co 000" applying first, one day apart."""
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    partners = []
    for i in range(count):
        partner = make_partner(approved=False)
        Partner.objects.filter(pk=partner.pk).update(
            company_name=f"Co {i:03}", status=status, applied_at=start + dt.timedelta(days=i)
        )
        partners.append(partner)
    return partners


def _companies(html: str) -> list[str]:
    return re.findall(r">(Co \d{3})</a>", html)


def test_pending_queue_pages_from_the_oldest_application() -> None:
    total = STAFF_PAGE_SIZE * 2 + 5
    _applications(total)
    _applications(3, status=PartnerStatus.APPROVED)  # other tabs are not counted in the pending queue
    staff = _client_for(make_staff())

    first = staff.get("/partners/staff/").content.decode()
    assert _companies(first) == [f"Co {i:03}" for i in range(STAFF_PAGE_SIZE)]  # waited longest first
    assert f"Page 1 of 3 ({total} applications)" in first
    assert 'href="?page=2" rel="next"' in first and 'rel="prev"' not in first

    last = staff.get("/partners/staff/", {"status": "pending", "page": 3}).content.decode()
    assert _companies(last) == [f"Co {i:03}" for i in range(STAFF_PAGE_SIZE * 2, total)]  # the newest, reachable
    assert "Page 3 of 3" in last
    assert 'href="?status=pending&amp;page=2" rel="prev"' in last and 'rel="next"' not in last

    # A page past the end, or not a number, gives the nearest page (as the portal's other tables do).
    assert _companies(staff.get("/partners/staff/?page=99").content.decode()) == _companies(last)
    assert _companies(staff.get("/partners/staff/?page=x").content.decode()) == _companies(first)


def test_other_tabs_page_newest_first_and_keep_their_filter() -> None:
    _applications(STAFF_PAGE_SIZE + 1, status=PartnerStatus.REJECTED)
    _applications(2)  # pending: not on the rejected tab
    staff = _client_for(make_staff())
    first = staff.get("/partners/staff/", {"status": "rejected"}).content.decode()
    assert _companies(first)[:2] == [f"Co {STAFF_PAGE_SIZE:03}", f"Co {STAFF_PAGE_SIZE - 1:03}"]
    assert f"Page 1 of 2 ({STAFF_PAGE_SIZE + 1} applications)" in first
    assert 'href="?status=rejected&amp;page=2" rel="next"' in first
    second = staff.get("/partners/staff/", {"status": "rejected", "page": 2}).content.decode()
    assert _companies(second) == ["Co 000"]

    everyone = staff.get("/partners/staff/", {"status": "all"}).content.decode()
    assert f"({STAFF_PAGE_SIZE + 3} applications)" in everyone  # the two pending and the rejected
    assert 'href="?status=all&amp;page=2" rel="next"' in everyone


# --- staff review page: its fields ---------------------------------------------------------------------


def _labels(html: str) -> list[str]:
    return [re.sub(r"\s+", " ", label).strip() for label in re.findall(r"<label[^>]*>(.*?)</label>", html, re.S)]


@pytest.mark.parametrize("approved", [False, True])
def test_one_field_is_labelled_reason(approved: bool) -> None:
    """Playwright's get_by_label("Reason") matches label substrings: the payout hold's field must not say it."""
    partner = make_partner(approved=approved)
    html = _client_for(make_staff()).get(f"/partners/staff/{partner.pk}/").content.decode()
    assert [label for label in _labels(html) if "reason" in label.lower()] == ["Reason"]
    assert "Why hold payouts" in _labels(html)


def _forms(html: str) -> dict[str, str]:
    """The page's review forms by the action they post to."""
    found = re.findall(r'<form method="post" action="/partners/staff/\d+/(\w+)"[^>]*>(.*?)</form>', html, re.S)
    return dict(found)


def _partner_in(status: str) -> Partner:
    partner = make_partner(approved=status != PartnerStatus.PENDING)
    Partner.objects.filter(pk=partner.pk).update(status=status)
    return partner


@pytest.mark.parametrize(
    ("status", "with_reason", "without_reason"),
    [
        (PartnerStatus.PENDING, {"reject"}, {"approve", "hold"}),
        (PartnerStatus.APPROVED, {"suspend"}, {"hold"}),
        (PartnerStatus.SUSPENDED, set(), {"restore", "hold"}),
        (PartnerStatus.REJECTED, set(), {"hold"}),
    ],
)
def test_the_reason_field_goes_with_the_button_that_sends_it(
    status: str, with_reason: set[str], without_reason: set[str]
) -> None:
    """A reason typed next to Approve or Restore was silently dropped, and rejected partners had a field no button
    used: the Reason field is shown only in the form of the action that needs it."""
    partner = _partner_in(status)
    html = _client_for(make_staff()).get(f"/partners/staff/{partner.pk}/").content.decode()
    forms = _forms(html)
    assert set(forms) == with_reason | without_reason
    assert {action for action, body in forms.items() if 'id="id_reason"' in body} == with_reason
    assert html.count('id="id_reason"') == len(with_reason)
    assert ("Reason" in _labels(html)) == bool(with_reason)


# --- staff review: destructive actions are confirmed first ------------------------------------------------

REASON = "Traffic <b>looks</b> automated.\nSee ticket 42."


@pytest.mark.parametrize(
    ("action", "before", "after", "title", "subject"),
    [
        (
            "reject",
            PartnerStatus.PENDING,
            PartnerStatus.REJECTED,
            "Reject",
            "Your Apertur partner application was not approved",
        ),
        (
            "suspend",
            PartnerStatus.APPROVED,
            PartnerStatus.SUSPENDED,
            "Suspend",
            "Your Apertur partner account is suspended",
        ),
    ],
)
def test_reject_and_suspend_act_only_once_confirmed(
    action: str, before: str, after: str, title: str, subject: str, django_capture_on_commit_callbacks: Any
) -> None:
    partner = _partner_in(before)
    staff = _client_for(make_staff())
    url = f"/partners/staff/{partner.pk}/{action}"
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        asked = staff.post(url, {"reason": REASON})
    html = asked.content.decode()
    assert asked.status_code == 200
    assert f"{title} Snapflow Inc.?" in html
    assert escape(REASON).replace("\n", "<br>") in html  # the reason echoed, escaped
    assert 'name="confirmed" value="yes"' in html and 'name="csrfmiddlewaretoken"' in html
    assert f'<input type="hidden" name="reason" value="{escape(REASON)}">' in html
    assert f'href="/partners/staff/{partner.pk}/">Cancel</a>' in html
    partner.refresh_from_db()
    assert partner.status == before
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action=f"partner.{after}").exists()

    with django_capture_on_commit_callbacks(execute=True):
        done = staff.post(url, {"reason": REASON, "confirmed": "yes"})
    assert done.status_code == 302 and done["Location"] == f"/partners/staff/{partner.pk}/"
    partner.refresh_from_db()
    assert partner.status == after
    assert [(m.subject, m.to) for m in mail.outbox] == [(subject, [partner.user.email])]
    event = AuditEvent.objects.get(action=f"partner.{after}")
    assert (event.object_id, event.data) == (str(partner.pk), {"reason": REASON})


def test_suspend_warns_that_every_app_stops() -> None:
    partner = _partner_in(PartnerStatus.APPROVED)
    page = _client_for(make_staff()).post(f"/partners/staff/{partner.pk}/suspend", {"reason": "Abuse"})
    assert "This disables all their OAuth apps at once" in page.content.decode()


def test_hold_acts_only_once_confirmed() -> None:
    partner = _partner_in(PartnerStatus.APPROVED)
    staff = _client_for(make_staff())
    url = f"/partners/staff/{partner.pk}/hold"
    asked = staff.post(url, {"reason": "Identity check pending"})
    html = asked.content.decode()
    assert asked.status_code == 200
    assert "Hold payouts to Snapflow Inc.?" in html and "<dt>Why hold payouts</dt>" in html
    partner.refresh_from_db()
    assert partner.payouts_held_at is None
    assert not AuditEvent.objects.filter(action="partner.payouts_held").exists()

    done = staff.post(url, {"reason": "Identity check pending", "confirmed": "yes"})
    assert done.status_code == 302
    partner.refresh_from_db()
    assert partner.payouts_held_at is not None and partner.payouts_hold_reason == "Identity check pending"
    assert AuditEvent.objects.get(action="partner.payouts_held").data == {"reason": "Identity check pending"}


@pytest.mark.parametrize(
    ("action", "status", "error"),
    [
        ("reject", PartnerStatus.PENDING, "Give a reason: the partner will read it."),
        ("suspend", PartnerStatus.APPROVED, "Give a reason: the partner will read it."),
        ("hold", PartnerStatus.APPROVED, "Give a reason for the hold"),
    ],
)
@pytest.mark.parametrize("confirmed", [False, True])
def test_no_reason_no_confirmation_and_nothing_changes(
    action: str, status: str, error: str, confirmed: bool, django_capture_on_commit_callbacks: Any
) -> None:
    partner = _partner_in(status)
    staff = _client_for(make_staff())
    data = {"reason": "  ", **({"confirmed": "yes"} if confirmed else {})}
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"/partners/staff/{partner.pk}/{action}", data)
    html = response.content.decode()
    assert response.status_code == 400
    assert error in html and 'name="confirmed"' not in html  # the review page again, with the error
    partner.refresh_from_db()
    assert (partner.status, partner.payouts_held_at) == (status, None)
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action__in=["partner.rejected", "partner.suspended", "partner.payouts_held"])


def test_an_action_the_status_forbids_is_refused_before_confirmation() -> None:
    partner = _partner_in(PartnerStatus.PENDING)
    response = _client_for(make_staff()).post(f"/partners/staff/{partner.pk}/suspend", {"reason": "Abuse"})
    assert response.status_code == 400
    assert "Cannot suspend a partner whose status is pending review." in response.content.decode()
    assert 'name="confirmed"' not in response.content.decode()


def test_confirming_needs_the_csrf_token() -> None:
    partner = _partner_in(PartnerStatus.APPROVED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_staff())
    response = client.post(f"/partners/staff/{partner.pk}/suspend", {"reason": "Abuse", "confirmed": "yes"})
    assert response.status_code == 403
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.APPROVED


def test_approve_and_restore_stay_one_click() -> None:
    partner = _partner_in(PartnerStatus.SUSPENDED)
    staff = _client_for(make_staff())
    assert staff.post(f"/partners/staff/{partner.pk}/restore").status_code == 302
    partner.refresh_from_db()
    assert partner.status == PartnerStatus.APPROVED


def test_hold_form_and_confirmation_say_the_partner_sees_the_note() -> None:
    """The partner's Payouts page shows the hold's note ("Reason: …"), so staff must not be told it is internal
    (only "kept in the audit log"): they would write notes like "suspected fraud" for the partner to read."""
    partner = make_partner()
    staff_client = _client_for(make_staff())
    detail = staff_client.get(f"/partners/staff/{partner.pk}/").content.decode()
    assert "sees this note on their Payouts page" in detail
    asked = staff_client.post(f"/partners/staff/{partner.pk}/hold", {"reason": "Tax details missing"})
    assert asked.status_code == 200
    assert "sees this note on their Payouts page" in asked.content.decode()
    staff_client.post(f"/partners/staff/{partner.pk}/hold", {"reason": "Tax details missing", "confirmed": "yes"})
    assert "Tax details missing" in _client_for(partner.user).get("/partners/payouts/").content.decode()


def test_suspended_partner_page_shows_the_minimum_in_cad_with_cents() -> None:
    partner = make_partner()
    partner.status = PartnerStatus.SUSPENDED
    partner.save()
    page = _client_for(partner.user).get("/partners/payouts/").content.decode()
    assert "$50.00 CAD minimum" in page and "$50 CAD" not in page


def test_a_reason_written_on_several_lines_keeps_its_lines_and_stays_escaped() -> None:
    """A rejection or suspension reason ran together on one line on the partner's pages."""
    from apertur.partners import services

    staff = make_staff()
    rejected = make_partner(approved=False)
    services.reject(partner=rejected, reviewer=staff, reason="The website is down.\nAlso: <b>no</b> product yet.")
    html = _client_for(rejected.user).get("/partners/").content.decode()
    assert "The website is down.<br>Also: &lt;b&gt;no&lt;/b&gt; product yet." in html
    suspended = make_partner()
    services.suspend(partner=suspended, reviewer=staff, reason="Chargebacks.\nWrite to us.")
    page = _client_for(suspended.user).get("/partners/commissions/")
    assert page.status_code == 403 and "Chargebacks.<br>Write to us." in page.content.decode()


def test_an_application_with_several_mistakes_shows_them_all_at_once_and_keeps_the_input() -> None:
    browser = _client_for(make_user())
    response = browser.post(
        "/partners/",
        {"company_name": "Snapflow", "website": "snapflow", "use_case": "Photos.", "expected_customers": "1-10"},
    )
    html = response.content.decode()
    assert response.status_code == 400 and not Partner.objects.exists()
    assert "Enter the website as a full address" in html
    assert "Tell us what you will build with Apertur (20 to 5,000 characters)." in html
    assert 'value="Snapflow"' in html


def test_the_status_card_does_not_end_a_company_name_ending_in_a_period_with_a_second_one() -> None:
    """ "Applied … as Snapflow Inc.." read like a typo on every applicant's page (the confirmation email already
    left the period out); a name without one still ends the sentence."""
    pending = make_partner(approved=False)
    assert pending.company_name == "Snapflow Inc."
    html = _client_for(pending.user).get("/partners/").content.decode()
    assert "as Snapflow Inc.</p>" in html and "Inc.." not in html
    other = make_user()
    _client_for(other).post("/partners/", {**APPLICATION, "company_name": "Ana and Ben"})
    assert "as Ana and Ben.</p>" in _client_for(other).get("/partners/").content.decode()


def test_the_dashboard_says_what_payouts_wait_for_and_leads_to_the_payouts_page() -> None:
    """An approved partner's home page said nothing about payouts: a partner who never added a PayPal email learnt
    it only by opening Payouts. Each state names the next step; once payable, the next run's date with its zone."""
    from apertur.core import clock
    from apertur.partners import paypal

    partner = make_partner()
    client = _client_for(partner.user)
    step = re.compile(r'<p data-testid="payout-next-step">(.*?)</p>', re.S)
    html = client.get("/partners/").content.decode()
    assert "Add the email address of your PayPal account" in step.search(html).group(1)
    assert '<a href="/partners/payouts/">Set up payouts</a>' in html
    paypal.request_change(partner=partner, email="pay@snapflow.example")
    html = client.get("/partners/").content.decode()
    assert "Open the link we sent to <strong>pay@snapflow.example</strong>" in step.search(html).group(1)
    Partner.objects.filter(pk=partner.pk).update(paypal_email="pay@snapflow.example", paypal_verified_at=clock.now())
    html = client.get("/partners/").content.decode()
    assert re.search(
        r"Next run: <time [^>]*>\w+ \d+ \w+ \d{4}, 09:00</time> \(Toronto time\)", step.search(html).group(1)
    )
    assert "None" not in step.search(html).group(1)
    Partner.objects.filter(pk=partner.pk).update(payouts_held_at=clock.now(), payouts_hold_reason="Checks.")
    html = client.get("/partners/").content.decode()
    assert "Payouts are on hold" in step.search(html).group(1) and '<a href="/partners/payouts/">See why</a>' in html


def test_a_suspended_partners_home_page_gives_the_reason_and_the_way_to_reach_us() -> None:
    """The other partner pages told a suspended partner the reason and how to reach the team; the partner home
    ran the reason into the sentence ("suspended. Abuse") and left them with no next step."""
    from apertur.partners import services

    partner = make_partner()
    services.suspend(partner=partner, reviewer=make_staff(), reason="Chargebacks.")
    html = _client_for(partner.user).get("/partners/").content.decode()
    assert "<strong>Reason:</strong> Chargebacks." in html
    assert "Reply to any Apertur email to talk to us." in html


def test_holding_and_releasing_payouts_record_the_staff_members_ip_like_every_review_action() -> None:
    """Money-relevant staff changes are audited with actor and IP (ARCHITECTURE.md §4), as approve and suspend are."""
    partner = _partner_in(PartnerStatus.APPROVED)
    staff_user = make_staff()
    staff = _client_for(staff_user)
    hold = {"reason": "Identity check", "confirmed": "yes"}
    held = staff.post(f"/partners/staff/{partner.pk}/hold", hold, REMOTE_ADDR="203.0.113.7")
    released = staff.post(f"/partners/staff/{partner.pk}/release", REMOTE_ADDR="203.0.113.8")
    assert held.status_code == released.status_code == 302
    events = AuditEvent.objects.filter(action__in=["partner.payouts_held", "partner.payouts_released"]).order_by("pk")
    assert [(e.action, e.actor_id, e.ip) for e in events] == [
        ("partner.payouts_held", staff_user.pk, "203.0.113.7"),
        ("partner.payouts_released", staff_user.pk, "203.0.113.8"),
    ]


def test_the_overview_counts_the_partners_apps_without_reading_them() -> None:
    """The overview says how many apps there are: one count, not every app with its redirect URIs, allowed
    domains and connected projects (a large partner's apps have thousands of connections), and the same
    queries for 2 apps as for 12."""
    partner = make_partner()
    client = _client_for(partner.user)

    def overview(apps: int) -> tuple[str, list[str]]:
        for _ in range(apps):
            make_app(partner, redirect_uris=["https://a.example/cb", "https://a.example/other"])
        client.get("/partners/")
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/partners/")
        assert response.status_code == 200
        return response.content.decode(), [q["sql"] for q in ctx.captured_queries]

    html, few = overview(2)
    assert "2 apps." in html
    html, many = overview(10)
    assert "12 apps." in html
    assert len(many) == len(few)
    read = " ".join(many)
    for table in (Connection, RedirectURI, AllowedDomain):
        assert table._meta.db_table not in read, table
