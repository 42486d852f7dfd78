"""A monthly run whose date has passed but that was not made yet (the worker was down on the 15th, or the run is
still going) is the partner's next payout, said to be late, with what that run will pay: the pages, the
commissions dashboard and the balance CLI do not skip to next month's run until it is made."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
import time_machine
from django.test import Client
from typer.testing import CliRunner

from apertur.cli import app
from apertur.commissions.selectors import balance, next_payout
from apertur.core import clock
from apertur.partners.models import Partner
from apertur.payouts import selectors, services
from apertur.payouts.models import PayoutRun
from apertur.payouts.tests.test_portal import customer_of, pay, verified
from apertur.testing import make_partner, make_user

pytestmark = pytest.mark.django_db

TORONTO = clock.BUSINESS_TZ
DECEMBER_RUN = dt.datetime(2026, 12, 15, 9, tzinfo=TORONTO)
JANUARY_RUN = dt.datetime(2027, 1, 15, 9, tzinfo=TORONTO)
DAY_AFTER = dt.datetime(2026, 12, 16, 12, tzinfo=TORONTO)  # the December run's date has passed


def finished(period: str) -> None:
    PayoutRun.objects.create(
        period=period, started_at=services.run_at(period), finished_at=services.run_at(period) + dt.timedelta(minutes=1)
    )


@pytest.fixture
def partner() -> Partner:
    """A verified partner whose November run was made (it paid nothing: the hold was not over), with $60 the
    December run pays (paid 20 October, available 19 November) and $30 whose hold ends after it (paid 20
    November, available 20 December: the January run's)."""
    partner = verified(make_partner(user=make_user("late@example.com")))
    customer = customer_of(partner, "customer@example.com")
    pay(customer, 60_000, dt.datetime(2026, 10, 20, 12, tzinfo=TORONTO))
    pay(customer, 30_000, dt.datetime(2026, 11, 20, 12, tzinfo=TORONTO))
    finished("2026-11")
    return partner


def outlook_html(partner: Partner) -> str:
    client = Client()
    client.force_login(partner.user)
    html = client.get("/partners/payouts/").content.decode()
    start = html.index('data-testid="payout-outlook"')
    return html[start : html.index("</section>", start)]


def dashboard_html(partner: Partner) -> str:
    client = Client()
    client.force_login(partner.user)
    response = client.get("/partners/commissions/")
    assert response.status_code == 200
    return response.content.decode()


def balance_json(email: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["partner", "balance", "--email", email, "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_the_next_payout_is_the_late_run_with_what_it_pays(partner: Partner) -> None:
    with time_machine.travel(DAY_AFTER, tick=False):
        estimate = next_payout(partner=partner)
        outlook = selectors.payout_status(partner=partner)
    assert (estimate.run_at, estimate.late, estimate.eligible_cents) == (DECEMBER_RUN, True, 6_000)
    assert (outlook.run_at, outlook.late, outlook.estimate_cents, outlook.code) == (
        DECEMBER_RUN,
        True,
        6_000,
        "will_pay",
    )
    # Carried is dated by the schedule, as before: what the runs due so far (December's, late) have not paid.
    assert outlook.carried_cents == 6_000


def test_the_estimate_is_what_the_dry_run_of_that_period_pays(partner: Partner) -> None:
    with time_machine.travel(DAY_AFTER, tick=False):
        estimate = next_payout(partner=partner)
        (decision,) = [d for d in services.run(period="2026-12", dry_run=True) if d.partner_id == partner.pk]
    assert decision.reason == services.Reason.WOULD_PAY
    assert decision.amount_cents == estimate.eligible_cents == 6_000


def test_the_payouts_page_says_the_run_is_late(partner: Partner) -> None:
    with time_machine.travel(DAY_AFTER, tick=False):
        html = outlook_html(partner)
    assert "Tuesday 15 December 2026, 09:00</time></strong> (Toronto time) run is late" in html
    assert "will be sent as soon as it runs" in html
    assert '<strong data-testid="payout-estimate">$60.00 CAD</strong>' in html
    assert "January 2027" not in html


def test_the_portal_and_dashboard_say_the_run_is_late(partner: Partner) -> None:
    client = Client()
    client.force_login(partner.user)
    with time_machine.travel(DAY_AFTER, tick=False):
        portal = client.get("/partners/").content.decode()
        dashboard = dashboard_html(partner)
    assert "Tuesday 15 December 2026, 09:00</time> (Toronto time) run is late" in portal
    assert 'data-testid="payout-late"' in dashboard and "Tuesday 15 December 2026, 09:00" in dashboard
    assert "Estimated amount: <strong>$60.00 CAD</strong>" in dashboard
    assert "January 2027" not in dashboard


def test_the_balance_cli_keeps_its_keys_and_names_the_late_run(partner: Partner) -> None:
    with time_machine.travel(DAY_AFTER, tick=False):
        data = balance_json("late@example.com")
    assert data == {
        "pending_cents": 3_000,
        "eligible_cents": 6_000,
        "carried_cents": 6_000,  # ARCHITECTURE 6: dated by the schedule, whether December's run was late or not
        "paid_cents": 0,
        "lifetime_cents": 9_000,
    }
    with time_machine.travel(DAY_AFTER, tick=False):
        human = CliRunner().invoke(app, ["partner", "balance", "--email", "late@example.com"])
    assert "Tuesday 15 December 2026, 09:00 (Toronto): late" in human.stdout


def test_once_the_run_is_made_the_next_one_is_next_month(partner: Partner) -> None:
    finished("2026-12")  # it paid nothing here (say the partner was under a hold): the run is made all the same
    with time_machine.travel(DAY_AFTER, tick=False):
        estimate = next_payout(partner=partner)
        html = outlook_html(partner)
        data = balance_json("late@example.com")
    assert (estimate.run_at, estimate.late, estimate.eligible_cents) == (JANUARY_RUN, False, 9_000)
    assert "Friday 15 January 2027, 09:00" in html and "is late" not in html
    assert data["carried_cents"] == 6_000  # the December run left it unpaid


def test_a_payout_for_the_period_is_the_run_made_for_the_partner(partner: Partner, emu: Any) -> None:
    """The run paid the partner, and is still sending other partners' payouts (not finished): the partner's next
    run is January's."""
    with time_machine.travel(DECEMBER_RUN, tick=False), services_client(emu) as client:
        services.run(period="2026-12", dry_run=False, client=client)
    PayoutRun.objects.update_or_create(period="2026-12", defaults={"finished_at": None})
    with time_machine.travel(DAY_AFTER, tick=False):
        estimate = next_payout(partner=partner)
        assert balance(partner=partner).paid_cents == 6_000
    assert (estimate.run_at, estimate.late, estimate.eligible_cents) == (JANUARY_RUN, False, 3_000)


def test_before_the_date_the_coming_run_is_not_late(partner: Partner) -> None:
    with time_machine.travel(DECEMBER_RUN - dt.timedelta(minutes=1), tick=False):
        estimate = next_payout(partner=partner)
    assert (estimate.run_at, estimate.late, estimate.eligible_cents) == (DECEMBER_RUN, False, 6_000)


def services_client(emu: Any) -> Any:
    from apertur.payouts.tests.helpers import client_for

    return client_for(emu)


def test_several_missed_runs_show_the_latest_with_what_the_catch_up_pays(partner: Partner) -> None:
    """No run was made since October's commissions (the worker was down two months): the scheduler's next pass
    makes November's, December's and January's, oldest first, and by January's the partner is paid everything
    that run's rule takes. The oldest alone (November's) would announce $0, its hold not over."""
    PayoutRun.objects.all().delete()
    after_january = JANUARY_RUN + dt.timedelta(days=1)
    with time_machine.travel(after_january, tick=False):
        estimate = next_payout(partner=partner)
        (decision,) = [d for d in services.run(period="2027-01", dry_run=True) if d.partner_id == partner.pk]
    assert (estimate.run_at, estimate.late, estimate.eligible_cents) == (JANUARY_RUN, True, 9_000)
    assert decision.amount_cents == 9_000


def test_the_run_is_not_late_in_its_first_hour(partner: Partner) -> None:
    """The scheduler starts a run within minutes of its time: until an hour has passed the run is the next one,
    on time, not said to be late; after, it is."""
    with time_machine.travel(DECEMBER_RUN + dt.timedelta(seconds=30), tick=False):
        on_time = next_payout(partner=partner)
        html = outlook_html(partner)
    with time_machine.travel(DECEMBER_RUN + dt.timedelta(hours=1), tick=False):
        late = next_payout(partner=partner)
    assert (on_time.run_at, on_time.late, on_time.eligible_cents) == (DECEMBER_RUN, False, 6_000)
    assert "is late" not in html and "Tuesday 15 December 2026, 09:00" in html
    assert (late.run_at, late.late) == (DECEMBER_RUN, True)


# --- partners the late run will not pay ------------------------------------------------------------------------


def _section(html: str, start: str) -> str:
    begin = html.index(start)
    return html[begin : html.index("</section>", begin)]


def what_the_partner_is_told(partner: Partner) -> dict[str, Any]:
    """Everything that names the partner's next run: the Payouts page's status card, the commissions dashboard's
    Next payout card, the overview's Status card (approved partners only: the others are refused these pages), and
    the balance CLI's table and JSON."""
    told: dict[str, Any] = {}
    client = Client()
    client.force_login(partner.user)
    if partner.is_approved:
        told["payouts"] = _section(client.get("/partners/payouts/").content.decode(), 'data-testid="payout-outlook"')
        told["dashboard"] = _section(dashboard_html(partner), 'id="payout-heading"')
        told["portal"] = _section(client.get("/partners/").content.decode(), "<h2>Status</h2>")
    human = CliRunner().invoke(app, ["partner", "balance", "--email", partner.user.email])
    assert human.exit_code == 0, human.stdout
    told["cli"] = human.stdout
    told["json"] = balance_json(partner.user.email)
    return told


def unpaid_partner(case: str) -> Partner:
    """A partner the December run (due, not made) pays nothing, as the run itself decides: payouts held by staff,
    no confirmed PayPal email, a suspended partner, or $30 by December's rule (under the minimum; $70 by
    January's)."""
    partner = make_partner(user=make_user(f"{case}@example.com"))
    if case != "no_email":
        verified(partner)
    customer = customer_of(partner, "customer@example.com")
    under = case == "under_minimum"
    pay(customer, 30_000 if under else 60_000, dt.datetime(2026, 10, 20, 12, tzinfo=TORONTO))
    pay(customer, 40_000 if under else 30_000, dt.datetime(2026, 11, 20, 12, tzinfo=TORONTO))
    finished("2026-11")
    if case == "held":
        services.hold_partner(partner=partner, actor=None, reason="Checking the traffic of your links")
    if case == "suspended":
        Partner.objects.filter(pk=partner.pk).update(status="suspended")
        partner.refresh_from_db()
    return partner


@pytest.mark.parametrize("case", ["held", "no_email", "suspended", "under_minimum"])
def test_a_partner_the_late_run_will_not_pay_is_told_what_they_are_told_once_it_is_made(case: str) -> None:
    """The late run will pay the partner nothing (the run's own decision, below): saying it is late and "will be
    sent as soon as it runs", with what it pays, is wrong. The partner is told what they are told once that run is
    made: their reason (on hold, no confirmed email, under the minimum) and the next run that can pay them."""
    partner = unpaid_partner(case)
    with time_machine.travel(DAY_AFTER, tick=False):
        (decision,) = [d for d in services.run(period="2026-12", dry_run=True) if d.partner_id == partner.pk]
        estimate = next_payout(partner=partner)
        while_late = what_the_partner_is_told(partner)
    finished("2026-12")  # the December run is made: it paid the partner nothing
    with time_machine.travel(DAY_AFTER, tick=False):
        once_made = what_the_partner_is_told(partner)
    assert decision.reason not in {services.Reason.WOULD_PAY, services.Reason.PAID}, decision
    for said in while_late.values():
        assert re.search(r"\blate\b", str(said)) is None and "December 2026, 09:00" not in str(said), said
    assert while_late == once_made
    assert (estimate.run_at, estimate.late) == (JANUARY_RUN, False)


def test_a_held_partner_sees_the_hold_not_the_late_run() -> None:
    partner = unpaid_partner("held")
    with time_machine.travel(DAY_AFTER, tick=False):
        told = what_the_partner_is_told(partner)
    assert "Payouts are on hold" in told["payouts"] and "eligible by the next run" in told["payouts"]
    assert "Friday 15 January 2027, 09:00" in told["dashboard"]
    assert "Nothing will be paid on this run. Payouts are on hold." in told["dashboard"]
    assert 'data-testid="payout-late"' not in told["dashboard"]
    assert "Friday 15 January 2027, 09:00 (Toronto)" in told["cli"]
    # ARCHITECTURE 6: the JSON keys keep their meaning (carried: what the runs due so far, December's, left unpaid).
    assert told["json"] == {
        "pending_cents": 3_000,
        "eligible_cents": 6_000,
        "carried_cents": 6_000,
        "paid_cents": 0,
        "lifetime_cents": 9_000,
    }


def test_under_the_minimum_by_the_late_run_the_next_payout_is_the_run_that_reaches_it() -> None:
    """$30 by December's rule (carried by the late run), $70 by January's: January's run is the next payout, with
    what it pays, as its dry run says."""
    partner = unpaid_partner("under_minimum")
    with time_machine.travel(DAY_AFTER, tick=False):
        estimate = next_payout(partner=partner)
        outlook = selectors.payout_status(partner=partner)
        (january,) = [d for d in services.run(period="2027-01", dry_run=True) if d.partner_id == partner.pk]
    assert (estimate.run_at, estimate.late, estimate.eligible_cents) == (JANUARY_RUN, False, 7_000)
    assert (outlook.code, outlook.late, outlook.estimate_cents, outlook.carried_cents) == (
        "will_pay",
        False,
        7_000,
        3_000,
    )
    assert (january.reason, january.amount_cents) == (services.Reason.WOULD_PAY, 7_000)
