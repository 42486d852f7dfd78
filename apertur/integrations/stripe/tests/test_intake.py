"""The intake's edges: what ``parse`` refuses, handler errors stored instead of raised, a waiting event
applied by another process's retry, and the development signing secret."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.commissions.models import CommissionEntry
from apertur.core.alerts import ALERT_EVERY
from apertur.integrations.stripe import events, handlers, services
from apertur.integrations.stripe.models import RejectedDelivery, StripeEvent
from apertur.projects.models import Payment
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_staff, make_user

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_secret"
UTC = dt.UTC


@pytest.fixture(autouse=True)
def _secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = SECRET


@pytest.fixture
def customer() -> Any:
    partner = make_partner()
    user = make_user("customer@example.com")
    create_project(owner=user, name="Weddings")
    Attribution.objects.create(
        customer=user, partner=partner, source=AttributionSource.REFERRAL, at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )
    return user


def post(body: bytes) -> Any:
    return Client().post(
        "/webhooks/stripe", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=events.sign(body, SECRET)
    )


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"id": "evt_1", "type": "invoice.paid", "created": "yesterday", "data": {"object": {}}}, "created"),
        ({"id": "evt_1", "type": "invoice.paid", "created": None, "data": {"object": {}}}, "created"),
        ({"id": "evt_1", "type": "invoice.paid", "created": 10**20, "data": {"object": {}}}, "created"),
        ({"id": 42, "type": "invoice.paid", "created": 1, "data": {"object": {}}}, "id and type"),
        ({"id": "evt_1", "type": "invoice.paid", "created": 1, "data": {"object": []}}, "data.object"),
        ([1, 2], "not an object"),
    ],
)
def test_signed_but_malformed_events_are_refused_and_recorded(event: Any, reason: str) -> None:
    """Regression: a signed event whose ``created`` was not a Unix time passed verification and crashed
    the view with a 500 when stored."""
    response = post(json.dumps(event).encode())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_event"
    assert reason in RejectedDelivery.objects.get().reason
    assert StripeEvent.objects.count() == 0


def test_a_bad_exchange_rate_is_stored_as_failed_not_a_server_error(customer: Any) -> None:
    """Regression: ``Decimal("abc")`` raises InvalidOperation (not a ValueError), which escaped the
    handler and answered 500 — Stripe would retry it for days."""
    paid = events.invoice_paid(
        customer="cus_1",
        email=customer.email,
        amount=10_000,
        currency="usd",
        at=dt.datetime(2026, 3, 1, tzinfo=UTC),
        exchange_rate="abc",
    )
    response = post(events.encode(paid))
    assert response.status_code == 200 and response.json()["status"] == "failed"
    assert StripeEvent.objects.get().status == "failed"
    assert Payment.objects.count() == 0 and CommissionEntry.objects.count() == 0


def test_an_accepted_event_that_failed_is_told_to_staff_once(
    customer: Any, settings: Any, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    """Regression: Stripe is answered 200 for an event whose object has the wrong shape (it will not send it
    again), and it was stored `failed` with nobody told: a payment, refund or dispute lost without a trace but a row
    in the admin. Staff are told, once, with what to do."""
    settings.STAFF_NOTIFY_EMAIL = "ops@apertur.example"
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=10_000, currency="usd", at=dt.datetime(2026, 3, 1, tzinfo=UTC),
        exchange_rate="abc",
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert post(events.encode(paid)).json()["status"] == "failed"
        assert post(events.encode(paid)).json()["duplicate"] is True
    [mail] = [m for m in mailoutbox if m.to == ["ops@apertur.example"]]
    assert paid["id"] in mail.subject + mail.body and "invoice.paid" in mail.body
    assert "malformed invoice.paid" in mail.body and "apertur billing retry" in mail.body


def _malformed(customer: Any, at: dt.datetime) -> dict[str, Any]:
    """An ``invoice.paid`` Apertur cannot apply (its exchange rate is not a number): stored failed."""
    return events.invoice_paid(
        customer="cus_1", email=customer.email, amount=10_000, currency="usd", at=at, exchange_rate="abc"
    )


def _staff_mail(mailoutbox: list[Any]) -> list[Any]:
    return [m for m in mailoutbox if m.to == ["ops@apertur.example"]]


def test_failed_events_of_one_type_are_told_once_a_day_with_where_to_find_the_rest(
    customer: Any, settings: Any, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    """Regression: a change in the shape of one event type (a new Stripe API version) fails every event of that
    type, and staff got a mail per event (a day of renewals, a mail each). The first failure of a type is told,
    with where the admin lists the others and how to apply them together; another type is told on its own, and the
    same type again after 24 hours."""
    settings.STAFF_NOTIFY_EMAIL = "ops@apertur.example"
    day = dt.datetime(2026, 3, 1, tzinfo=UTC)

    first, *same_type = _malformed(customer, day), _malformed(customer, day), _malformed(customer, day)
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(day, tick=False):
        for evt in (first, *same_type):
            assert post(events.encode(evt)).json()["status"] == "failed"
    [mail] = _staff_mail(mailoutbox)
    assert first["id"] in mail.subject
    listed = "/admin/stripe_billing/stripeevent/?status__exact=failed&type=invoice.paid"
    assert f"{settings.APERTUR_BASE_URL}{listed}" in mail.body and "Apply the selected events again" in mail.body
    other = events.invoice_payment_paid(invoice_id="in_1", amount=10_000, at=day, charge_id="ch_1")
    other["data"]["object"]["invoice"] = None  # a shape Apertur does not read
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(day, tick=False):
        assert post(events.encode(other)).json()["status"] == "failed"
    assert len(_staff_mail(mailoutbox)) == 2 and "invoice_payment.paid" in _staff_mail(mailoutbox)[1].subject
    staff = Client()
    staff.force_login(make_staff())
    page = staff.get(listed).content.decode()
    assert all(evt["id"] in page for evt in (first, *same_type)) and other["id"] not in page  # the admin's list
    next_day = day + ALERT_EVERY + dt.timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(next_day, tick=False):
        assert post(events.encode(_malformed(customer, next_day))).json()["status"] == "failed"
    assert len(_staff_mail(mailoutbox)) == 3


def test_a_failure_after_staff_applied_the_failed_events_of_its_type_is_told_at_once(
    customer: Any, settings: Any, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    """Regression: the once-a-day rule for failed events of one type counted from the first mail, whatever staff did
    since. Once they had applied every failed event of the type, another failure that day (another cause, other money)
    was stored failed and told to nobody: no mail that day, none ever if no other of its type failed. Now the rule
    holds while events of the type are still failed."""
    settings.STAFF_NOTIFY_EMAIL = "ops@apertur.example"
    day = dt.datetime(2026, 3, 1, tzinfo=UTC)

    burst = [_malformed(customer, day) for _ in range(2)]
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(day, tick=False):
        for evt in burst:
            assert post(events.encode(evt)).json()["status"] == "failed"
    assert len(_staff_mail(mailoutbox)) == 1  # the burst: one mail
    StripeEvent.objects.filter(event_id__in=[evt["id"] for evt in burst]).update(status="processed")  # applied
    later = day + dt.timedelta(hours=6)
    evt = _malformed(customer, later)
    with django_capture_on_commit_callbacks(execute=True), time_machine.travel(later, tick=False):
        assert post(events.encode(evt)).json()["status"] == "failed"
    assert len(_staff_mail(mailoutbox)) == 2 and evt["id"] in _staff_mail(mailoutbox)[1].subject


def test_an_event_another_process_applied_first_is_not_applied_again(
    customer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: ``receive`` stores the row as waiting, then locks it to apply it. If another process's
    ``retry_waiting`` applied it in between, ``receive`` applied it a second time."""
    calls: list[str] = []
    original = handlers.HANDLERS["invoice.paid"]

    def counting(event: dict[str, Any]) -> str:
        calls.append(event["id"])
        return original(event)

    monkeypatch.setitem(services.HANDLERS, "invoice.paid", counting)
    real_create = StripeEvent.objects.create

    def create_then_another_process_retries(**fields: Any) -> StripeEvent:
        row = real_create(**fields)
        services.retry_waiting()  # what a concurrent delivery's retry does with the committed row
        return row

    monkeypatch.setattr(StripeEvent.objects, "create", create_then_another_process_retries)
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=dt.datetime(2026, 3, 1, tzinfo=UTC)
    )
    outcome = services.receive(paid)
    assert outcome.status == "processed" and not outcome.duplicate
    assert calls == [paid["id"]]
    assert CommissionEntry.objects.count() == 1


def test_intake_is_what_the_view_does(customer: Any) -> None:
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=dt.datetime(2026, 3, 1, tzinfo=UTC)
    )
    body = events.encode(paid)
    outcome = services.intake(body=body, signature=events.sign(body, SECRET))
    assert (outcome.status, outcome.duplicate) == ("processed", False)
    again = post(body).json()
    assert again["duplicate"] is True and again["status"] == "processed"
    with pytest.raises(services.Rejected) as refused:
        services.intake(body=body, signature=events.sign(body, "whsec_other"))
    assert refused.value.code == "invalid_signature"


def test_the_development_secret_is_stable_and_derived_from_the_secret_key() -> None:
    from apertur.config.settings import dev_stripe_webhook_secret

    first = dev_stripe_webhook_secret("one-key")
    assert first.startswith("whsec_") and len(first) > 40
    assert dev_stripe_webhook_secret("one-key") == first
    assert dev_stripe_webhook_secret("another-key") != first


def test_deploy_check_warns_when_production_runs_on_the_derived_secret(settings: Any) -> None:
    from apertur.config.settings import dev_stripe_webhook_secret
    from apertur.integrations.stripe.checks import webhook_secret_configured

    settings.DEBUG = False
    settings.STRIPE_WEBHOOK_SECRET = dev_stripe_webhook_secret(settings.SECRET_KEY)
    assert [w.id for w in webhook_secret_configured(None)] == ["stripe_billing.W001"]
    settings.DEBUG = True
    assert webhook_secret_configured(None) == []
    settings.DEBUG = False
    settings.STRIPE_WEBHOOK_SECRET = "whsec_from_the_dashboard"
    assert webhook_secret_configured(None) == []


@pytest.mark.own_database  # its processes read the settings only
def test_without_the_environment_variable_the_webhook_works_with_the_derived_secret() -> None:
    """``make run`` sets nothing: the server and ``apertur billing simulate`` agree on the derived secret."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "STRIPE_WEBHOOK_SECRET"}
    env["SECRET_KEY"] = "a-fixed-key-for-this-test"
    code = (
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'apertur.config.settings';"
        "import django; django.setup(); from django.conf import settings; print(settings.STRIPE_WEBHOOK_SECRET)"
    )
    derived = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        for _ in range(2)
    ]
    assert derived[0] == derived[1] and derived[0].startswith("whsec_")
    env["STRIPE_WEBHOOK_SECRET"] = "whsec_from_the_dashboard"
    explicit = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert explicit == "whsec_from_the_dashboard"


def test_staff_can_inspect_stored_and_rejected_deliveries_but_not_edit_them(customer: Any) -> None:
    from apertur.testing import make_staff

    post(
        events.encode(events.invoice_paid(customer="cus_1", email=customer.email, amount=100, at=dt.datetime.now(UTC)))
    )
    post(b'{"id": "evt_bad"}')
    staff = Client()
    staff.force_login(make_staff())
    stored = StripeEvent.objects.get()
    assert staff.get("/admin/stripe_billing/stripeevent/").status_code == 200
    page = staff.get(f"/admin/stripe_billing/stripeevent/{stored.pk}/change/")
    assert page.status_code == 200 and stored.event_id in page.content.decode()
    assert staff.get("/admin/stripe_billing/rejecteddelivery/").status_code == 200
    assert staff.get("/admin/stripe_billing/stripeevent/add/").status_code == 403
    assert staff.post(f"/admin/stripe_billing/stripeevent/{stored.pk}/delete/").status_code == 403


def test_an_event_of_the_wrong_shape_fails_on_its_own_and_blocks_no_waiting_event(customer: Any) -> None:
    """Regression: an object of the wrong shape (``status_transitions`` a string, as an imported line can have)
    raised AttributeError, which ``_apply`` did not count as malformed. Stored as waiting first (its customer was
    unknown), it then raised from every ``retry_waiting``: each later delivery answered 500 after committing, no
    waiting event was ever applied again, and none was ever given up (the expiry rolled back with the error)."""
    at = dt.datetime(2026, 3, 1, tzinfo=UTC)
    odd = events.invoice_paid(customer="cus_odd", email="nobody@example.com", amount=5_000, at=at)
    odd["data"]["object"]["status_transitions"] = "paid"
    assert services.receive(odd).status == "waiting"  # unknown customer: waits for the customer event
    refund = events.refund_created(refund_id="re_1", charge_id="ch_1", amount=10_000, at=at + dt.timedelta(days=2))
    assert services.receive(refund).status == "waiting"  # before its payment
    link = events.customer(
        customer_id="cus_odd", at=at, metadata={"apertur_user_id": customer.public_id}, kind="customer.updated"
    )
    assert services.receive(link).status == "processed"
    assert StripeEvent.objects.get(event_id=odd["id"]).status == "failed"
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=at, invoice_id="in_1", charge_id="ch_1"
    )
    assert services.receive(paid).status == "processed"
    assert StripeEvent.objects.get(event_id=refund["id"]).status == "processed"  # applied once its payment came
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-1_000, 2_500]


def test_an_unexpected_error_of_one_waiting_event_leaves_it_waiting_and_the_others_go_on(
    customer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a handler raises for one waiting event (a database error, a bug), ``retry_waiting`` applies the
    others, gives up on the expired ones, and the delivery that triggered it is answered normally."""
    from django.db import DataError

    at = dt.datetime(2026, 3, 1, tzinfo=UTC)
    refund = events.refund_created(refund_id="re_1", charge_id="ch_1", amount=10_000, at=at + dt.timedelta(days=2))
    assert services.receive(refund).status == "waiting"
    stuck = events.dispute(
        charge_id="ch_1", amount=24_999, at=at, status="needs_response", dispute_id="dp_1", closed=False
    )
    assert services.receive(stuck).status == "waiting"
    original = handlers.HANDLERS["charge.dispute.created"]

    def broken(event: dict[str, Any]) -> str:
        if Payment.objects.exists():
            raise DataError("value too long for type character varying(100)")
        return original(event)

    monkeypatch.setitem(services.HANDLERS, "charge.dispute.created", broken)
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=24_999, at=at, invoice_id="in_1", charge_id="ch_1"
    )
    assert services.receive(paid).status == "processed"
    assert StripeEvent.objects.get(event_id=refund["id"]).status == "processed"
    row = StripeEvent.objects.get(event_id=stuck["id"])
    assert row.status == "waiting" and "DataError" in row.detail
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-1_000, 2_500]


def test_a_signed_event_holding_a_nul_is_stored_and_applied(customer: Any) -> None:
    # PostgreSQL's jsonb refuses "\u0000": the delivery was a 500 at every retry, so the event was never accepted.
    body = json.dumps(
        {
            "id": "evt_nul",
            "type": "customer.created",
            "created": 1_767_225_600,
            "data": {"object": {"id": "cus_nul", "email": customer.email, "name": "Ana\u0000 Ben", "x\u0000": 1}},
        }
    ).encode()
    response = post(body)
    assert response.status_code == 200, response.content
    stored = StripeEvent.objects.get(event_id="evt_nul")
    assert stored.payload["data"]["object"]["name"] == "Ana\ufffd Ben"
    assert "x\ufffd" in stored.payload["data"]["object"]
    assert stored.status != "failed"


@pytest.mark.parametrize(
    ("body", "signature", "code"),
    [
        # Anyone can post this: a body with a NUL and no valid signature.
        (b'{"id": "evt_\x00", "type": "invoice.paid"}', "t=1,v1=00\x00", "invalid_signature"),
        (b'{"id": "evt_\x00"}', None, "invalid_signature"),
        # Signed but not JSON (a raw NUL is no JSON string character).
        (b'{"id": "evt_1", "type": "x\x00"}', "signed", "malformed_event"),
    ],
)
def test_a_refused_delivery_holding_a_nul_is_a_400_and_kept(body: bytes, signature: str | None, code: str) -> None:
    """Regression: PostgreSQL refuses a NUL in text, so keeping such a refused delivery for inspection raised, and
    the delivery that should have been a 400 was a 500 (a request anyone can send)."""
    headers = {} if signature is None else {"HTTP_STRIPE_SIGNATURE": signature}
    if signature == "signed":
        headers["HTTP_STRIPE_SIGNATURE"] = events.sign(body, SECRET)
    response = Client().post("/webhooks/stripe", body, content_type="application/json", **headers)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    kept = RejectedDelivery.objects.get()
    assert "\x00" not in kept.body and "\ufffd" in kept.body
    assert "\x00" not in kept.signature_header
    assert StripeEvent.objects.count() == 0


def test_refused_deliveries_kept_are_bounded_per_address_and_in_all(settings: Any) -> None:
    """Regression: anyone could post to the endpoint, and every refused delivery kept up to 100 KB of its body, with
    no bound and no end: a loop of unsigned posts filled the database. What is kept for inspection is now bounded
    (per client address and in all, per hour); past that a delivery is refused the same way and kept no more."""
    body = b'{"junk": "' + b"x" * 50_000 + b'"}'

    def refuse(address: str) -> None:
        response = Client(REMOTE_ADDR=address).post(
            "/webhooks/stripe", body, content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00"
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_signature"

    for _ in range(services.REFUSED_KEPT_PER_ADDRESS.max_hits + 5):
        refuse("203.0.113.7")
    assert RejectedDelivery.objects.count() == services.REFUSED_KEPT_PER_ADDRESS.max_hits
    refuse("203.0.113.8")  # another address: kept
    assert RejectedDelivery.objects.count() == services.REFUSED_KEPT_PER_ADDRESS.max_hits + 1
    per_address = services.REFUSED_KEPT_PER_ADDRESS.max_hits
    addresses = services.REFUSED_KEPT_IN_ALL.max_hits // per_address + 2
    for n in range(addresses):
        for _ in range(per_address):
            refuse(f"198.51.100.{n}")
    assert RejectedDelivery.objects.count() == services.REFUSED_KEPT_IN_ALL.max_hits


def test_refused_deliveries_are_kept_30_days() -> None:
    from apertur.core import housekeeping

    now = dt.datetime(2026, 3, 31, 12, tzinfo=UTC)
    old = RejectedDelivery.objects.create(
        reason="invalid signature", body="{}", received_at=now - dt.timedelta(days=31)
    )
    recent = RejectedDelivery.objects.create(
        reason="invalid signature", body="{}", received_at=now - dt.timedelta(days=29)
    )
    assert housekeeping.prune(now=now)["stripe_refused_deliveries"] == 1
    assert list(RejectedDelivery.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not RejectedDelivery.objects.filter(pk=old.pk).exists()
