"""``apertur billing simulate|import``, ``apertur commissions statements`` and the demo's billing history."""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import time_machine
from typer.testing import CliRunner

from apertur import cli as cli_module
from apertur.cli import app
from apertur.commissions.models import CommissionEntry, PartnerNotice
from apertur.commissions.selectors import balance
from apertur.core.clock import BUSINESS_TZ
from apertur.integrations.stripe import events
from apertur.integrations.stripe.models import RejectedDelivery, StripeEvent
from apertur.integrations.stripe.simulate import at_noon
from apertur.partners.models import Partner
from apertur.projects.models import Payment, Refund, Subscription
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_partner, make_user

runner = CliRunner()
UTC = dt.UTC


def run(*args: str, ok: bool = True) -> Any:
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def run_json(*args: str) -> dict[str, Any]:
    return json.loads(run(*args, "--json").stdout)


def stderr_error(stderr: str) -> dict[str, Any]:
    """The command's one JSON error line on stderr. Django's request log shares this process's stderr, and a
    live server thread may write its line after the command's, so the line is found, not assumed last."""
    errors = [json.loads(line)["error"] for line in stderr.splitlines() if line.startswith("{")]
    assert len(errors) == 1, stderr
    return errors[0]


def referred_customer(email: str = "buyer@example.com", at: dt.datetime | None = None) -> tuple[Partner, Any]:
    partner = make_partner()
    customer = make_user(email)
    create_project(owner=customer, name="Weddings")
    Attribution.objects.create(
        customer=customer,
        partner=partner,
        source=AttributionSource.REFERRAL,
        at=at or dt.datetime(2026, 1, 1, tzinfo=UTC),
    )
    return partner, customer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- simulate -------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_simulate_posts_signed_events_to_the_running_server(live_server: Any) -> None:
    partner, customer = referred_customer()
    data = run_json(
        "billing",
        "simulate",
        "--email",
        customer.email,
        "--plan",
        "Pro",
        "--months",
        "3",
        "--start",
        "2026-03-01",
        "--refund",
        "500@2026-03-10",
        "--refund",
        "2499@2026-05-02",
        "--base-url",
        live_server.url,
    )
    assert data["url"] == f"{live_server.url}/webhooks/stripe" and data["plan"] == "Pro"
    assert [e["type"] for e in data["events"]] == [
        "customer.subscription.created",
        "invoice.paid",
        "charge.refunded",
        "invoice.paid",
        "invoice.paid",
        "charge.refunded",
    ]
    assert all(set(e) == {"event_id", "type", "status", "detail"} for e in data["events"])
    assert {e["status"] for e in data["events"]} == {"processed"}
    # The server stored exactly these events, through the signature check.
    assert set(StripeEvent.objects.values_list("event_id", flat=True)) == {e["event_id"] for e in data["events"]}
    assert RejectedDelivery.objects.count() == 0
    assert Subscription.objects.get().plan.name == "Pro"
    payments = list(Payment.objects.order_by("paid_at"))
    assert [p.amount_cad_cents for p in payments] == [2_499] * 3
    # Each payment happens at noon in Toronto on its date, a calendar month apart.
    assert [p.paid_at for p in payments] == [at_noon(dt.date(2026, m, 1)) for m in (3, 4, 5)]
    assert sorted(Refund.objects.values_list("amount_cents", flat=True)) == [500, 2_499]
    # 3 x 250 earned; 10 % of 500 reversed on March; the May payment refunded in full: its whole 250.
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-250, -50, 250, 250, 250]
    assert balance(partner=partner).lifetime_cents == 450


@pytest.mark.django_db(transaction=True)
def test_simulate_without_start_ends_with_a_payment_today_on_a_months_last_day(live_server: Any) -> None:
    """docs/commissions.md: `--start` defaults so that the last payment is today, also on May 31 (Feb has no 31st:
    counting forward from a clamped Feb 28 ended on May 28)."""
    referred_customer()
    now = dt.datetime(2026, 5, 31, 15, 0, tzinfo=BUSINESS_TZ)
    with time_machine.travel(now, tick=False):
        run_json(
            "billing", "simulate", "--email", "buyer@example.com", "--plan", "Pro", "--months", "4",
            "--base-url", live_server.url,
        )  # fmt: skip
    paid = [p.paid_at for p in Payment.objects.order_by("paid_at")]
    assert paid == [*(at_noon(dt.date(2026, m, d)) for m, d in ((2, 28), (3, 31), (4, 30))), now]


@pytest.mark.django_db
def test_simulate_fails_clearly_when_the_server_is_unreachable() -> None:
    make_user("buyer@example.com")
    url = f"http://127.0.0.1:{free_port()}"
    result = run("billing", "simulate", "--email", "buyer@example.com", "--plan", "Pro", "--base-url", url, ok=False)
    assert result.exit_code == 1 and result.stdout == ""
    assert "Cannot reach" in result.stderr and "make run" in result.stderr
    as_json = run(
        "billing", "simulate", "--email", "buyer@example.com", "--plan", "Pro", "--base-url", url, "--json", ok=False
    )
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"]["code"] == "server_unreachable"
    assert json.loads(as_json.stderr)["error"]["code"] == "server_unreachable"


@pytest.mark.django_db(transaction=True)
def test_simulate_fails_clearly_when_the_server_answers_an_error(live_server: Any) -> None:
    make_user("buyer@example.com")
    missing = run(
        "billing",
        "simulate",
        "--email",
        "buyer@example.com",
        "--plan",
        "Pro",
        "--base-url",
        f"{live_server.url}/nothing-here",
        "--json",
        ok=False,
    )
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["code"] == "server_error"
    assert "answered 404" in stderr_error(missing.stderr)["message"]


@pytest.mark.django_db
def test_simulate_reports_a_signature_the_server_refuses(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """The server answers 400 invalid_signature when the secrets differ: the command says which and stops
    at the first event. (Django's test client stands in for the server behind httpx.)"""
    import httpx
    from django.test import Client

    from apertur import cli

    make_user("buyer@example.com")
    posted: list[str] = []

    def through_django(request: httpx.Request) -> httpx.Response:
        settings.STRIPE_WEBHOOK_SECRET = "whsec_the_servers_own"  # what the server believes
        answer = Client().post(
            request.url.path,
            request.content,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=request.headers["Stripe-Signature"],
        )
        posted.append(request.url.path)
        return httpx.Response(answer.status_code, content=answer.content, headers={"Content-Type": "application/json"})

    monkeypatch.setattr(cli, "_http_client", lambda: httpx.Client(transport=httpx.MockTransport(through_django)))
    result = run(
        "billing", "simulate", "--email", "buyer@example.com", "--plan", "Pro", "--months", "2", "--json", ok=False
    )
    assert result.exit_code == 1 and json.loads(result.stdout)["error"]["code"] == "invalid_signature"
    error = stderr_error(result.stderr)
    assert error["code"] == "invalid_signature" and "STRIPE_WEBHOOK_SECRET differs" in error["message"]
    assert posted == ["/webhooks/stripe"]  # stopped at the first refusal
    assert StripeEvent.objects.count() == 0 and RejectedDelivery.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plan", "Gold"], "no plan named 'Gold'"),
        (["--plan", "Pro", "--refund", "lots@2026-03-01"], "is not a refund like"),
        (["--plan", "Pro", "--start", "2026-03-01", "--refund", "100@2026-02-01"], "No simulated payment"),
        (["--plan", "Pro", "--start", "2026-03-01", "--refund", "9999@2026-03-02"], "exceeds what is left"),
        (["--plan", "Pro", "--start", "March"], "Invalid isoformat"),
        # A date that looks right but is not one: the message names the value, not only "month must be in 1..12".
        (["--plan", "Pro", "--start", "2026-13-01"], "'2026-13-01' is not a date"),
        # Not a rate: refused here, not sent and stored as failed events that no retry can mend.
        (["--plan", "Pro", "--currency", "usd", "--exchange-rate", "abc"], "--exchange-rate 'abc'"),
        (["--plan", "Pro", "--currency", "usd", "--exchange-rate", "-1.3"], "--exchange-rate '-1.3'"),
        (["--plan", "Pro", "--currency", "usd", "--exchange-rate", "NaN"], "--exchange-rate 'NaN'"),
    ],
)
def test_simulate_refuses_bad_options_before_sending_anything(args: list[str], message: str) -> None:
    result = run(
        "billing", "simulate", "--email", "buyer@example.com", *args, "--base-url", "http://127.0.0.1:9", ok=False
    )
    assert result.exit_code == 1 and result.stdout == ""
    assert message in " ".join(result.stderr.split())


# --- import ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_backfills_through_the_intake_and_skips_malformed_lines(tmp_path: Path) -> None:
    _, customer = referred_customer()
    paid = events.invoice_paid(
        customer="cus_1",
        email=customer.email,
        amount=24_999,
        at=dt.datetime(2026, 3, 1, 15, tzinfo=UTC),
        invoice_id="in_1",
        charge_id="ch_1",
    )
    refund = events.charge_refunded(
        charge_id="ch_1", invoice_id="in_1", refunds=[("re_1", 5_000, dt.datetime(2026, 3, 10, tzinfo=UTC))]
    )
    stranger = events.invoice_paid(
        customer="cus_2", email="stranger@example.com", amount=1_000, at=dt.datetime(2026, 3, 2, tzinfo=UTC)
    )
    export = tmp_path / "events.jsonl"
    # Newest first, as Stripe exports list them; a replay, a blank line and two broken lines in between.
    export.write_text(
        "\n".join(
            [
                json.dumps(refund),
                "{not json",
                json.dumps(stranger),
                "",
                json.dumps({"id": "evt_x", "type": "invoice.paid", "created": "yesterday", "data": {"object": {}}}),
                json.dumps(paid),
                json.dumps(paid),
            ]
        )
        + "\n"
    )
    data = run_json("billing", "import", str(export), "--test-mode")  # events.* are test-mode events
    assert data["events"] == 4
    # The stranger's invoice names a Stripe customer nothing has identified yet: it waits for that.
    assert data["counts"] == {"processed": 2, "waiting": 1, "ignored": 0, "failed": 0, "duplicate": 1}
    assert [m["line"] for m in data["malformed"]] == [2, 5]
    assert "created is not a Unix time" in data["malformed"][1]["error"]
    assert sorted(CommissionEntry.objects.values_list("amount_cents", flat=True)) == [-500, 2_500]
    assert StripeEvent.objects.count() == 3 and RejectedDelivery.objects.count() == 0  # malformed: not stored
    # Importing the same file again changes nothing.
    again = run_json("billing", "import", str(export), "--test-mode")
    assert again["counts"]["duplicate"] == 4 and again["counts"]["processed"] == 0
    assert CommissionEntry.objects.count() == 2 and StripeEvent.objects.count() == 3
    human = run("billing", "import", str(export), "--test-mode")
    assert "line 2:" in human.stderr and "line 5:" in human.stderr


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("modes", "flags", "refused_lines"),
    [
        ([False, False], [], [1, 2]),  # a test-mode export imported as if live
        ([True, False], [], [2]),  # one test-mode event in a live export
        ([True, True], ["--test-mode"], [1, 2]),  # a live export imported as test data
        ([True, None], [], [2]),  # an event that does not say
    ],
)
def test_import_refuses_events_of_the_other_mode_and_changes_nothing(
    tmp_path: Path, modes: list[bool | None], flags: list[str], refused_lines: list[int]
) -> None:
    """Regression: the import ignored ``livemode``, so a test-mode export imported into production recorded payments
    (and commissions) that never happened."""
    _, customer = referred_customer()
    lines = []
    for n, livemode in enumerate(modes, start=1):
        paid = events.invoice_paid(
            customer="cus_1", email=customer.email, amount=10_000, at=dt.datetime(2026, 3, n, tzinfo=UTC)
        )
        if livemode is None:
            del paid["livemode"]
        else:
            paid["livemode"] = livemode
        lines.append(json.dumps(paid))
    export = tmp_path / "events.jsonl"
    export.write_text("\n".join(lines) + "\n")
    result = run("billing", "import", str(export), *flags, "--json", ok=False)
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "livemode_mismatch"
    assert f"line(s) {', '.join(map(str, refused_lines))}" in error["message"]
    assert StripeEvent.objects.count() == 0 and Payment.objects.count() == 0 and CommissionEntry.objects.count() == 0


@pytest.mark.django_db
def test_import_of_a_test_mode_export_with_test_mode(tmp_path: Path) -> None:
    _, customer = referred_customer()
    paid = events.invoice_paid(
        customer="cus_1", email=customer.email, amount=10_000, at=dt.datetime(2026, 3, 1, tzinfo=UTC)
    )
    export = tmp_path / "events.jsonl"
    export.write_text(json.dumps(paid) + "\n")
    assert run_json("billing", "import", str(export), "--test-mode")["counts"]["processed"] == 1
    live = dict(paid, id="evt_live", livemode=True)
    export.write_text(json.dumps(live) + "\n")
    assert run_json("billing", "import", str(export))["counts"]["duplicate"] == 0
    assert StripeEvent.objects.count() == 2


@pytest.mark.django_db
def test_import_of_a_big_file_shows_progress_on_stderr_for_a_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """About 4 ms an event: a year's export of 50,000 events is minutes of work, which a person sees go by."""
    monkeypatch.setattr(cli_module, "IMPORT_PROGRESS_EVERY", 2, raising=False)
    export = tmp_path / "events.jsonl"
    export.write_text(
        "".join(
            json.dumps(
                events.invoice_paid(
                    customer=f"cus_{n}", email=f"c{n}@example.com", amount=1_000, at=dt.datetime(2026, 3, n, tzinfo=UTC)
                )
            )
            + "\n"
            for n in range(1, 6)
        )
    )
    human = run("billing", "import", str(export), "--test-mode")
    progress = " ".join(human.stderr.split())
    assert "2 of 5 event(s) imported" in progress and "4 of 5 event(s) imported" in progress
    assert "event(s) imported" not in human.stdout
    # Never with --json: a script reads the one object at the end.
    scripted = run("billing", "import", str(export), "--test-mode", "--json")
    assert json.loads(scripted.stdout)["counts"]["duplicate"] == 5
    assert "event(s) imported" not in scripted.stderr


@pytest.mark.django_db
def test_import_of_a_file_with_no_readable_event_fails_and_says_why(tmp_path: Path) -> None:
    """Every line malformed (here a ``created`` that is a boolean, an int to Python): it exited 0 having imported
    nothing, so a script never noticed."""
    export = tmp_path / "broken.jsonl"
    line = {"id": "evt_bool", "type": "invoice.paid", "created": True, "livemode": True, "data": {"object": {}}}
    export.write_text(json.dumps(line) + "\nnot json\n")
    result = runner.invoke(app, ["billing", "import", str(export), "--json"])
    assert result.exit_code == 1, result.stdout
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "no_events" and "2 malformed line(s)" in error["message"]
    assert "line 1: created is not a Unix time: True" in error["message"]


@pytest.mark.django_db
def test_import_of_an_empty_file_reports_no_events_and_succeeds(tmp_path: Path) -> None:
    """docs/commissions.md: an empty file (or blank lines only) is not the ``no_events`` error of a file whose lines
    cannot be read; it reports 0 events and exits 0, and the doc tells a script to check ``events``."""
    export = tmp_path / "empty.jsonl"
    export.write_text("\n\n")
    result = runner.invoke(app, ["billing", "import", str(export), "--json"])
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["events"] == 0 and report["malformed"] == []


@pytest.mark.django_db
def test_import_of_a_missing_file_fails() -> None:
    result = run("billing", "import", "/nonexistent/events.jsonl", ok=False)
    assert result.exit_code == 1 and "Cannot read" in result.stderr


def test_import_help_says_signatures_are_not_checked() -> None:
    result = run("billing", "import", "--help")
    assert "signatures are not checked" in " ".join(result.stdout.split())


# --- statements -----------------------------------------------------------------------------------------


def _pay(customer: Any, invoice: str, amount: int, at: dt.datetime) -> None:
    from apertur.integrations.stripe.services import receive

    receive(events.invoice_paid(customer="cus_1", email=customer.email, amount=amount, at=at, invoice_id=invoice))


@pytest.mark.django_db
def test_statements_are_sent_once_per_partner_and_month(maildir: Path, django_capture_on_commit_callbacks: Any) -> None:
    partner, customer = referred_customer()
    make_partner()  # approved, no commissions: nothing to send
    with django_capture_on_commit_callbacks(execute=True):
        _pay(customer, "in_1", 24_999, dt.datetime(2026, 3, 1, 15, tzinfo=UTC))
        _pay(customer, "in_2", 10_000, dt.datetime(2026, 4, 1, 3, tzinfo=UTC))  # March 31 in Toronto
        _pay(customer, "in_3", 10_000, dt.datetime(2026, 4, 2, 3, tzinfo=UTC))  # April
    with time_machine.travel(dt.datetime(2026, 4, 20, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            data = run_json("commissions", "statements")  # default: the previous month
        assert data["month"] == "2026-03"
        sent = [s for s in data["statements"] if s["status"] == "sent"]
        assert len(sent) == 1 and sent[0]["email"] == partner.user.email
        assert (sent[0]["payments"], sent[0]["earned_cents"], sent[0]["net_cents"]) == (2, 3_500, 3_500)
        assert sent[0]["balance"]["lifetime_cents"] == 4_500  # today's balance, April's payment included
        assert {s["status"] for s in data["statements"] if s is not sent[0]} == {"no_entries"}
        with django_capture_on_commit_callbacks(execute=True):
            again = run_json("commissions", "statements", "--month", "2026-03")
    assert [s["status"] for s in again["statements"] if s["email"] == partner.user.email] == ["already_sent"]
    statements = [
        m for m in run_json("mail", "list", "--to", partner.user.email)["messages"] if "statement" in m["subject"]
    ]
    assert len(statements) == 1
    assert statements[0]["subject"] == "Your Apertur commission statement for March 2026"
    text = statements[0]["text"]
    assert "Commission earned: $35.00 CAD" in text and "Net for the month: $35.00 CAD" in text
    assert "Lifetime: $45.00 CAD" in text
    assert PartnerNotice.objects.filter(partner=partner, key="statement:2026-03").count() == 1


@pytest.mark.django_db
def test_statements_reject_a_bad_month() -> None:
    result = run("commissions", "statements", "--month", "2026-13", "--json", ok=False)
    assert result.exit_code == 1 and json.loads(result.stderr)["error"]["code"] == "invalid_month"


@pytest.mark.django_db
@pytest.mark.parametrize("month", ["2026-04", "2026-05"])
def test_statements_refuse_a_month_not_over_yet(month: str) -> None:
    """Sent once per partner and month: a statement sent on April 20 for April would leave out the rest of April,
    and the one sent in May would only say already_sent."""
    _, customer = referred_customer()
    _pay(customer, "in_1", 24_999, dt.datetime(2026, 4, 2, 15, tzinfo=UTC))
    with time_machine.travel(dt.datetime(2026, 4, 20, tzinfo=UTC), tick=False):
        result = run("commissions", "statements", "--month", month, "--json", ok=False)
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "invalid_month" and f"'{month}' is not over yet" in error["message"]
    assert PartnerNotice.objects.filter(key__startswith="statement:").count() == 0


@pytest.mark.django_db
def test_statements_reject_the_calendars_last_month_with_a_clear_error() -> None:
    """December 9999 parses, but its end (January 10000, Toronto) does not exist: an error, not a traceback."""
    make_partner()
    result = run("commissions", "statements", "--month", "9999-12", "--json", ok=False)
    assert result.exit_code == 1 and json.loads(result.stderr)["error"]["code"] == "invalid_month"
    assert PartnerNotice.objects.count() == 0


# --- demo -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_demo_partner_has_earnings_from_signed_stripe_events() -> None:
    first = run_json("demo")
    partner_balance = run_json("partner", "balance", "--email", first["partner"]["email"])
    assert partner_balance["lifetime_cents"] > 0
    # 9 Business payments (1,000 each), a 10.00 refund of the second (-100); the last payment is still on hold.
    carried = partner_balance.pop("carried_cents")
    assert partner_balance == {
        "pending_cents": 1_000,
        "eligible_cents": 7_900,
        "paid_cents": 0,
        "lifetime_cents": 8_900,
    }
    # What the last monthly run could have paid but left (under the 50 CAD minimum): part of eligible.
    # Which entries that is depends on where today falls against the demo's payment dates.
    assert 0 <= carried <= partner_balance["eligible_cents"]
    # Written by the webhook's intake from signed events, none refused.
    assert StripeEvent.objects.filter(status="processed").count() == 11 and RejectedDelivery.objects.count() == 0
    assert Attribution.objects.get(customer__email=first["user"]["email"]).source == "referral"
    # The partner's dashboard shows them.
    from django.test import Client

    browser = Client()
    assert browser.login(email=first["partner"]["email"], password=first["partner"]["password"])
    page = browser.get("/partners/commissions/").content.decode()
    assert "$89.00 CAD" in page and "$79.00 CAD" in page and "Wedding photos" in page
    # Idempotent: a second run delivers nothing and prints the same object.
    assert run_json("demo") == first
    assert StripeEvent.objects.count() == 11 and CommissionEntry.objects.count() == 10
    assert run_json("partner", "balance", "--email", first["partner"]["email"]) == {
        **partner_balance,
        "carried_cents": carried,
    }


@pytest.mark.django_db
def test_demo_partner_is_told_of_the_first_payment_once(maildir: Path, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = run_json("demo")
    with django_capture_on_commit_callbacks(execute=True):
        run_json("demo")
    messages = run_json("mail", "list", "--to", first["partner"]["email"])["messages"]
    notices = [m for m in messages if m["subject"] == "A customer you referred made their first payment"]
    assert len(notices) == 1
    assert "cu***@example.com" in notices[0]["text"] and "customer@example.com" not in notices[0]["text"]
    assert 'project "Wedding photos"' in notices[0]["text"] and "$10.00 CAD" in notices[0]["text"]


@pytest.mark.parametrize("month", ["2026-1", "\u0662\u0660\u0662\u0666-03", "2026-03\n"])
def test_a_statements_month_is_typed_as_a_payout_period_is(month: str) -> None:
    """`commissions statements --month 2026-1` was read as January (strptime) where `payouts run --period 2026-1`
    is refused: one rule for a typed month, core.clock.parse_year_month. Nothing is sent."""
    result = run("commissions", "statements", "--month", month, "--json", ok=False)
    assert result.exit_code != 0
    assert "is not a month like 2026-03" in stderr_error(result.stderr)["message"]
