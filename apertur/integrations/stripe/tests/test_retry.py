"""Staff apply again what was given up: ``services.retry_event``, ``apertur billing retry`` and the admin action.

Stripe was answered 2xx for a given-up event and never sends it again, so this is the only way its money reaches
the ledger: the give-up email says which command to run."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import time_machine
from django.test import Client
from typer.testing import CliRunner

from apertur.cli import app
from apertur.commissions.models import CommissionEntry
from apertur.core.errors import AperturError
from apertur.core.models import AuditEvent
from apertur.integrations.stripe import events, services
from apertur.integrations.stripe.models import StripeEvent
from apertur.projects.models import BillingCustomer, Payment, Refund, Subscription
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db
UTC = dt.UTC
RECEIVED = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)
GIVEN_UP = RECEIVED + dt.timedelta(days=8)


@pytest.fixture(autouse=True)
def _staff_address(settings: Any) -> None:
    settings.STAFF_NOTIFY_EMAIL = "ops@apertur.example"


def customer() -> Any:
    """A referred Apertur customer who pays in Stripe under another email: nothing links the two."""
    user = make_user("ada@apertur.example")
    create_project(owner=user, name="Weddings")
    Attribution.objects.create(
        customer=user, partner=make_partner(), source=AttributionSource.REFERRAL, at=RECEIVED - dt.timedelta(days=1)
    )
    return user


def receive(evt: dict[str, Any], at: dt.datetime = RECEIVED) -> str:
    with time_machine.travel(at, tick=False):
        return services.receive(evt).status


def give_up() -> None:
    with time_machine.travel(GIVEN_UP, tick=False):
        services.retry_waiting_pass(GIVEN_UP)


def paid_elsewhere() -> tuple[dict[str, Any], dict[str, Any]]:
    """A subscription and its first invoice from ``ada@billing.example``, given up after their week."""
    sub = events.subscription(customer="cus_ada", lookup_key="pro", at=RECEIVED)
    paid = events.invoice_paid(
        customer="cus_ada", email="ada@billing.example", amount=10_000, at=RECEIVED, charge_id="ch_ada"
    )
    assert receive(sub) == "waiting" and receive(paid) == "waiting"
    give_up()
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"ignored"}
    return sub, paid


def statuses() -> dict[str, str]:
    return dict(StripeEvent.objects.values_list("event_id", "status"))


def test_linking_the_customer_applies_everything_given_up_about_it_and_what_waited_on_it() -> None:
    user = customer()
    sub, paid = paid_elsewhere()
    refund = events.refund_created(refund_id="re_ada", charge_id="ch_ada", amount=2_000, at=GIVEN_UP)
    assert receive(refund, GIVEN_UP) == "waiting"  # its payment is one of the events given up
    staff = make_staff()
    with time_machine.travel(GIVEN_UP + dt.timedelta(days=1), tick=False):
        done = services.retry_event(event_id=paid["id"], customer_email="ADA@apertur.example", actor=staff)
    assert done.linked_customer == "cus_ada"
    # Both given-up events, oldest first (the subscription was created first), and the refund after them.
    assert [(o.event_id, before, o.status) for o, before in done.events] == [
        (sub["id"], "ignored", "processed"),
        (paid["id"], "ignored", "processed"),
    ]
    assert done.waiting_applied == 1 and statuses() == dict.fromkeys((sub["id"], paid["id"], refund["id"]), "processed")
    assert BillingCustomer.objects.get(external_id="cus_ada").user == user
    assert Subscription.objects.get(project__owner=user).plan.name == "Pro"
    assert Payment.objects.get(customer=user).amount_cents == 10_000 and Refund.objects.get().amount_cents == 2_000
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-200, 1_000]
    linked = AuditEvent.objects.get(action="stripe.customer_linked")
    assert (linked.actor_id, linked.data) == (
        staff.pk,
        {"customer_id": "cus_ada", "user": user.public_id, "event_id": paid["id"]},
    )
    retried = AuditEvent.objects.filter(action="stripe.event_retried").order_by("pk")
    assert [(e.data["event_id"], e.data["from"], e.data["to"]) for e in retried] == [
        (sub["id"], "ignored", "processed"),
        (paid["id"], "ignored", "processed"),
    ]
    with pytest.raises(services.StripeEventAlreadyApplied):  # once applied, never twice
        services.retry_event(event_id=paid["id"])
    assert Payment.objects.count() == 1


def test_refunds_given_up_for_want_of_their_payment_are_applied_once_the_payment_is() -> None:
    """Linking the customer applied the payment, but the refund given up beside it (it waited for that payment)
    stayed ignored: the partner kept a commission the customer had been refunded."""
    user = customer()
    refund = events.refund_created(refund_id="re_early", charge_id="ch_ada", amount=2_000, at=RECEIVED)
    assert receive(refund) == "waiting"
    other = events.refund_created(refund_id="re_other", charge_id="ch_someone_else", amount=500, at=RECEIVED)
    assert receive(other) == "waiting"
    _, paid = paid_elsewhere()  # gives up the invoice, the subscription and both refunds
    assert statuses()[refund["id"]] == "ignored"
    done = services.retry_event(event_id=paid["id"], customer_email=user.email)
    assert [(o.event_id, o.status) for o, _ in done.events][-1] == (refund["id"], "processed")
    assert statuses()[refund["id"]] == "processed" and statuses()[other["id"]] == "ignored"  # its payment never came
    assert Refund.objects.get().external_id == "re_early"
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-200, 1_000]
    assert StripeEvent.objects.get(event_id=other["id"]).detail.endswith("no payment yet for charge ch_someone_else")


def test_a_given_up_refund_another_retry_applied_meanwhile_is_not_applied_a_second_time(monkeypatch: Any) -> None:
    """The refunds are read without a lock, then locked by id: one another retry applied (and committed) between
    the two was locked as it stands, processed, and applied again (audited ignored... processed -> processed)."""
    user = customer()
    refund = events.refund_created(refund_id="re_early", charge_id="ch_ada", amount=2_000, at=RECEIVED)
    assert receive(refund) == "waiting"
    _, paid = paid_elsewhere()
    competing = {"done": False}

    class PaymentsAfterTheOtherRetry:
        """Payment, but the other retry (of the refund itself) commits just as this one looks the payments up."""

        class objects:  # stands in for the manager
            @staticmethod
            def filter(**kwargs: Any) -> Any:
                if not competing["done"]:
                    competing["done"] = True
                    services.retry_event(event_id=refund["id"])
                return Payment.objects.filter(**kwargs)

    monkeypatch.setattr(services, "Payment", PaymentsAfterTheOtherRetry)
    done = services.retry_event(event_id=paid["id"], customer_email=user.email)
    assert competing["done"] and statuses()[refund["id"]] == "processed"
    assert refund["id"] not in [o.event_id for o, _ in done.events]
    retried = AuditEvent.objects.filter(action="stripe.event_retried", data__event_id=refund["id"])
    assert [(e.data["from"], e.data["to"]) for e in retried] == [("ignored", "processed")]
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-200, 1_000]


def test_an_event_still_missing_what_it_waited_for_stays_ignored_and_is_not_reported_again(
    mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    refund = events.refund_created(refund_id="re_x", charge_id="ch_never", amount=1_000, at=RECEIVED)
    assert receive(refund) == "waiting"
    with django_capture_on_commit_callbacks(execute=True):
        give_up()
    assert len(mailoutbox) == 1
    with time_machine.travel(GIVEN_UP, tick=False):
        done = services.retry_event(event_id=refund["id"])
    [(outcome, before)] = done.events
    assert (before, outcome.status, outcome.detail) == (
        "ignored",
        "ignored",
        "retried, still waiting: no payment yet for charge ch_never",
    )
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(GIVEN_UP + dt.timedelta(days=9)):
        services.retry_waiting_pass(GIVEN_UP + dt.timedelta(days=9))
    assert len(mailoutbox) == 1 and StripeEvent.objects.get().status == "ignored"
    # Once Stripe resends the payment (its invoice.paid), the same command applies the refund.
    user = customer()
    paid = events.invoice_paid(customer="cus_x", email=user.email, amount=5_000, at=RECEIVED, charge_id="ch_never")
    assert receive(paid, GIVEN_UP) == "processed"
    assert services.retry_event(event_id=refund["id"]).events[0][0].status == "processed"
    assert Refund.objects.get().payment.customer == user


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown event", "event_not_found"),
        ("unknown user", "user_not_found"),
        ("customer of someone else", "customer_not_linkable"),
        ("no customer in the event", "customer_not_linkable"),
    ],
)
def test_a_refused_retry_changes_nothing(case: str, code: str) -> None:
    customer()
    _, paid = paid_elsewhere()
    refund = events.refund_created(refund_id="re_y", charge_id="ch_other", amount=1_000, at=RECEIVED)
    receive(refund)
    give_up()
    if case == "customer of someone else":
        BillingCustomer.objects.create(external_id="cus_ada", user=make_user("bob@apertur.example"))
    event_id = {"unknown event": "evt_nope", "no customer in the event": refund["id"]}.get(case, paid["id"])
    email = "nobody@apertur.example" if case == "unknown user" else "ada@apertur.example"
    before = (statuses(), list(BillingCustomer.objects.values_list("external_id", "user__email")))
    with pytest.raises(AperturError) as previewed:  # what the command checks before asking
        services.preview_link(event_id=event_id, customer_email=email)
    assert previewed.value.code == code, previewed.value.message
    with pytest.raises(AperturError) as refused:
        services.retry_event(event_id=event_id, customer_email=email)
    assert refused.value.code == code, refused.value.message
    assert (statuses(), list(BillingCustomer.objects.values_list("external_id", "user__email"))) == before
    assert not AuditEvent.objects.filter(action__in=["stripe.customer_linked", "stripe.event_retried"]).exists()
    if case == "customer of someone else":
        assert refused.value.message == "Stripe customer cus_ada is already linked to bob@apertur.example."


runner = CliRunner()


def test_the_command_links_applies_and_says_what_it_did() -> None:
    customer()
    sub, paid = paid_elsewhere()
    ask = ["billing", "retry", paid["id"], "--customer-email", "ada@apertur.example"]
    unconfirmed = runner.invoke(app, [*ask, "--json"])
    error = json.loads(unconfirmed.stdout)["error"]
    assert unconfirmed.exit_code == 1 and error["code"] == "confirmation_required"
    assert (
        "Stripe customer cus_ada (ada@billing.example) is to be linked to the Apertur user ada@apertur.example"
        in (error["message"])
    )
    assert "and 1 other event(s) given up" in error["message"] and "Add --yes" in error["message"]
    declined = runner.invoke(app, ask, input="n\n")
    assert declined.exit_code == 1 and "A link cannot be undone." in " ".join(declined.stdout.split())
    assert not BillingCustomer.objects.exists() and set(statuses().values()) == {"ignored"}
    result = runner.invoke(app, [*ask, "--yes", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["applied"] is True and data["linked_customer"] == "cus_ada" and data["waiting_applied"] == 0
    assert [(e["id"], e["previous_status"], e["status"]) for e in data["events"]] == [
        (sub["id"], "ignored", "processed"),
        (paid["id"], "ignored", "processed"),
    ]
    again = runner.invoke(app, ["billing", "retry", paid["id"], "--json"])
    assert again.exit_code == 1 and json.loads(again.stdout)["error"]["code"] == "event_already_applied"


def test_the_command_links_once_the_person_says_yes() -> None:
    customer()
    _, paid = paid_elsewhere()
    result = runner.invoke(
        app, ["billing", "retry", paid["id"], "--customer-email", "ada@apertur.example"], input="y\n"
    )
    assert result.exit_code == 0, result.output
    assert "Linked Stripe customer cus_ada to ada@apertur.example." in result.stdout
    assert statuses()[paid["id"]] == "processed"


def test_the_command_exits_1_when_the_event_is_still_not_applied() -> None:
    refund = events.refund_created(refund_id="re_z", charge_id="ch_none", amount=1_000, at=RECEIVED)
    receive(refund)
    give_up()
    human = runner.invoke(app, ["billing", "retry", refund["id"]])
    assert human.exit_code == 1
    printed = " ".join(human.stdout.split())
    assert f"{refund['id']}: ignored → not applied (ignored): retried, still waiting: no payment yet" in printed
    as_json = runner.invoke(app, ["billing", "retry", refund["id"], "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["applied"] is False


def test_the_give_up_email_names_the_command(mailoutbox: list[Any], django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        paid_elsewhere()
    body = " ".join(mailoutbox[-1].body.split())
    assert "apertur billing retry <event id> --customer-email <their Apertur email>" in body


def test_staff_apply_selected_events_again_from_the_admin() -> None:
    user = customer()
    _, paid = paid_elsewhere()
    BillingCustomer.objects.create(external_id="cus_ada", user=user)  # say, linked by a later customer event
    staff = Client()
    staff.force_login(make_staff())
    page = "/admin/stripe_billing/stripeevent/"
    row = StripeEvent.objects.get(event_id=paid["id"])
    done = staff.post(page, {"action": "apply_again", "index": 0, "_selected_action": [row.pk]}, follow=True)
    assert done.status_code == 200
    assert f"Stripe event {paid['id']}: ignored → processed: payment" in done.content.decode()
    row.refresh_from_db()
    assert row.status == "processed" and Payment.objects.get().customer == user
    again = staff.post(page, {"action": "apply_again", "index": 0, "_selected_action": [row.pk]}, follow=True)
    assert "is already applied" in again.content.decode() and Payment.objects.count() == 1


def test_staff_who_may_only_look_at_stripe_events_cannot_apply_them_from_the_admin() -> None:
    """The Stripe events admin is read-only (what Stripe sent is evidence): a staff member given only the view
    permission saw the action and could write payments and commissions with it."""
    from django.contrib.auth.models import Permission

    user = customer()
    _, paid = paid_elsewhere()
    BillingCustomer.objects.create(external_id="cus_ada", user=user)
    viewer = make_user("viewer@apertur.example", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_stripeevent"))
    browser = Client()
    browser.force_login(viewer)
    page = "/admin/stripe_billing/stripeevent/"
    assert browser.get(page).status_code == 200  # may look
    assert "apply_again" not in browser.get(page).content.decode()
    row = StripeEvent.objects.get(event_id=paid["id"])
    browser.post(page, {"action": "apply_again", "index": 0, "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.status == "ignored" and not Payment.objects.exists()
    assert not AuditEvent.objects.filter(action="stripe.event_retried").exists()


def test_a_refund_given_up_beside_a_payment_of_current_api_versions_is_applied_with_it() -> None:
    """Since API version 2025-03-31 a payment is stored without its charge (an ``invoice_payment.paid`` event says
    which PaymentIntent paid its invoice): the refunds given up beside it must be found through that too."""
    user = customer()
    paid = events.invoice_paid(
        customer="cus_ada", email="ada@billing.example", amount=10_000, at=RECEIVED, invoice_id="in_ada",
        api_version=events.BASIL,
    )  # fmt: skip
    link = events.invoice_payment_paid(invoice_id="in_ada", amount=10_000, at=RECEIVED, payment_intent="pi_ada")
    refund = events.refund_created(
        refund_id="re_ada", charge_id="ch_ada", payment_intent="pi_ada", amount=2_000, at=RECEIVED
    )
    assert [receive(paid), receive(link), receive(refund)] == ["waiting", "processed", "waiting"]
    give_up()
    assert statuses()[refund["id"]] == "ignored"
    done = services.retry_event(event_id=paid["id"], customer_email=user.email)
    assert [(o.event_id, o.status) for o, _ in done.events] == [(paid["id"], "processed"), (refund["id"], "processed")]
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-200, 1_000]
