"""``apertur payouts run`` and ``apertur payouts reconcile`` (ARCHITECTURE section 6), against the PayPal emulator
over loopback, with time moved by time-machine."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import time_machine
from rich.console import Console
from typer.testing import CliRunner

from apertur import cli as cli_module
from apertur.cli import app
from apertur.integrations.paypal.emulator import Running
from apertur.payouts import services
from apertur.payouts.models import Payout, PayoutRun, PayoutStatus
from apertur.payouts.tests.test_run import make_world, pay
from apertur.testing import paypal_emulator

pytestmark = pytest.mark.django_db
runner = CliRunner()


@pytest.fixture
def emu(settings: Any) -> Iterator[Running]:
    with paypal_emulator(settings) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _stripe_secret(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = "whsec_test_secret"


def cli(*args: str, at: dt.datetime, ok: bool = True) -> Any:
    with time_machine.travel(at, tick=False):
        result = runner.invoke(app, ["payouts", *args])
    if ok:
        assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def world() -> Any:
    partner, customer = make_world()
    pay(customer, 1, 60_000, dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC))  # 6,000 commission
    return partner


AFTER_APRIL_RUN = services.run_at("2026-04") + dt.timedelta(hours=1)


def test_dry_run_lists_what_would_be_paid_and_writes_nothing(emu: Running) -> None:
    partner = world()
    data = json.loads(cli("run", "--period", "2026-04", "--dry-run", "--json", at=AFTER_APRIL_RUN).stdout)
    assert data["period"] == "2026-04" and data["dry_run"] is True
    assert data["run_at"] == "2026-04-15T09:00:00-04:00"
    [row] = data["payouts"]
    assert (row["partner_email"], row["amount_cents"], row["reason"]) == (partner.user.email, 6_000, "would_pay")
    assert row["sender_batch_id"] == f"aptr-{partner.pk}-2026-04-1"
    assert Payout.objects.count() == 0 and PayoutRun.objects.count() == 0
    assert emu.emulator.counters["create_requests"] == 0


def test_run_pays_through_paypal_once_and_records_the_run(emu: Running) -> None:
    partner = world()
    data = json.loads(cli("run", "--period", "2026-04", "--json", at=AFTER_APRIL_RUN).stdout)
    [row] = data["payouts"]
    assert (row["reason"], row["status"], row["amount_cents"]) == ("paid", "sent", 6_000)
    assert data["summary"] == {"partners": 1, "reasons": {"paid": 1}, "paid_cents": 6_000}
    assert PayoutRun.objects.get(period="2026-04").finished_at is not None
    again = json.loads(cli("run", "--period", "2026-04", "--json", at=AFTER_APRIL_RUN).stdout)
    assert [r["reason"] for r in again["payouts"]] == ["already_paid"]
    assert emu.emulator.counters["batches_created"] == 1
    payout = Payout.objects.get(partner=partner)
    state = httpx.get(f"{emu.base_url}/emulator/state").json()
    [batch] = state["batches"]
    assert batch["batch_header"]["sender_batch_header"]["sender_batch_id"] == payout.sender_batch_id
    assert batch["items"][0]["payout_item"]["amount"] == {"value": "60.00", "currency": "CAD"}


def test_human_output_is_a_table_with_the_reason(emu: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "out", Console(width=200))  # a wide terminal: no wrapped cells
    partner = world()
    partner.paypal_verified_at = None
    partner.save(update_fields=["paypal_verified_at"])
    result = cli("run", "--period", "2026-04", at=AFTER_APRIL_RUN)
    assert partner.user.email in result.stdout
    assert "no verified PayPal email" in result.stdout and "$60.00" in result.stdout
    assert Payout.objects.count() == 0


def test_a_persons_run_is_not_interleaved_with_httpx_request_lines(
    emu: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx logs each request at INFO ("HTTP Request: POST …/v1/oauth2/token") to the console handler: noise between
    the progress lines and the table on a person's terminal. (The command's django.setup() reconfigures logging, so
    caplog cannot see it: the level httpx logs at after the command is what decides.)"""
    httpx_log = logging.getLogger("httpx")
    monkeypatch.setattr(httpx_log, "level", logging.NOTSET)  # as a fresh process has it; restored afterwards
    world()
    cli("run", "--period", "2026-04", at=AFTER_APRIL_RUN)
    assert Payout.objects.count() == 1  # PayPal was called
    assert not httpx_log.isEnabledFor(logging.INFO)


def test_default_period_is_the_run_that_is_due_and_a_preview_this_months(emu: Running) -> None:
    partner = world()
    early = dt.datetime(2026, 4, 10, 12, tzinfo=dt.UTC)
    # Before April 15th the due run is March's: the March 1 commission was still on hold then.
    ran = json.loads(cli("run", "--json", at=early).stdout)
    assert ran["period"] == "2026-03" and ran["dry_run"] is False
    assert [(r["partner_email"], r["reason"]) for r in ran["payouts"]] == [(partner.user.email, "nothing_due")]
    preview = json.loads(cli("run", "--dry-run", "--json", at=early).stdout)
    assert preview["period"] == "2026-04" and preview["payouts"][0]["reason"] == "would_pay"
    assert Payout.objects.count() == 0
    # An explicit period before its date is still refused.
    result = cli("run", "--period", "2026-04", "--json", at=early, ok=False)
    assert result.exit_code == 1
    assert json.loads(result.stderr)["error"]["code"] == "run_not_due"
    # --json: the one object on stdout is the error (ARCHITECTURE 6), so a script reading stdout sees it.
    assert json.loads(result.stdout)["error"]["code"] == "run_not_due"
    after = json.loads(cli("run", "--json", at=AFTER_APRIL_RUN).stdout)
    assert after["period"] == "2026-04"
    assert [(r["reason"], r["amount_cents"]) for r in after["payouts"]] == [("paid", 6_000)]


def test_a_bad_period_is_a_clear_error(emu: Running) -> None:
    result = cli("run", "--period", "2026-13", "--json", at=AFTER_APRIL_RUN, ok=False)
    assert result.exit_code == 1
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "invalid_period" and "YYYY-MM" in error["message"]


@pytest.mark.parametrize("period", ["0000-05", "2026-04\n", "\u0662\u0660\u0662\u0666-04"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_period_a_run_cannot_be_dated_by_is_a_clear_error(emu: Running, period: str, dry_run: bool) -> None:
    """Year 0 has no date (it crashed with a traceback); a trailing newline or non-ASCII digits named April's run
    under another period string, a second payout per partner for the same month."""
    partner = world()
    result = cli("run", "--period", period, *(["--dry-run"] if dry_run else []), "--json", at=AFTER_APRIL_RUN, ok=False)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["error"]["code"] == "invalid_period"
    assert not Payout.objects.filter(partner=partner).exists()


def test_a_paypal_outage_leaves_the_run_unfinished_for_a_retry_with_the_same_id(emu: Running) -> None:
    partner = world()
    httpx.post(f"{emu.base_url}/emulator/config", json={"fail_next_n_with_5xx": 1}).raise_for_status()
    result = cli("run", "--period", "2026-04", "--json", at=AFTER_APRIL_RUN, ok=False)
    # The run's own output, not an error object, and exit status 3 so that cron or a service manager notices.
    assert result.exit_code == 3, (result.stdout, result.stderr)
    data = json.loads(result.stdout)
    [row] = data["payouts"]
    assert (row["reason"], row["status"], data["waiting"]) == ("retry_pending", "created", 1)
    assert "run is not finished" in result.stderr and "1 payout(s) wait to be sent again" in result.stderr
    assert PayoutRun.objects.get(period="2026-04").finished_at is None
    data = json.loads(cli("run", "--period", "2026-04", "--json", at=AFTER_APRIL_RUN).stdout)
    [row] = data["payouts"]
    assert (row["reason"], row["sender_batch_id"], data["waiting"]) == ("paid", f"aptr-{partner.pk}-2026-04-1", 0)
    assert PayoutRun.objects.get(period="2026-04").finished_at is not None
    assert emu.emulator.counters["batches_created"] == 1


def test_reconcile_applies_paypal_outcomes(emu: Running) -> None:
    world()
    cli("run", "--period", "2026-04", "--json", at=AFTER_APRIL_RUN)
    httpx.post(f"{emu.base_url}/emulator/advance", json={}).raise_for_status()
    data = json.loads(cli("reconcile", "--json", at=AFTER_APRIL_RUN + dt.timedelta(hours=1)).stdout)
    assert data["checked"] == 1 and data["errors"] == []
    payout = Payout.objects.get()
    assert data["changed"] == [
        {
            "sender_batch_id": payout.sender_batch_id,
            "sender_item_id": payout.sender_item_id,
            "partner_id": payout.partner_id,
            "from": "sent",
            "to": "paid",
        }
    ]
    assert Payout.objects.get().status == PayoutStatus.PAID


def two_partners() -> None:
    world()
    _, other = make_world(customer_email="other@example.com", paypal_email="other-paypal@example.com")
    pay(other, 2, 70_000, dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), stripe_customer="cus_2")


def test_a_long_run_shows_its_progress_on_stderr_for_a_person(emu: Running, settings: Any) -> None:
    """10,000 partners take about 40 s (docs/performance.md): a person sees each PayPal batch go, not a silence."""
    settings.PAYOUT_BATCH_SIZE = 1  # one batch per partner
    two_partners()
    result = cli("run", "--period", "2026-04", at=AFTER_APRIL_RUN)
    progress = " ".join(result.stderr.split())
    assert "1 of 2 partner(s) done" in progress and "2 of 2 partner(s) done" in progress
    assert "partner(s) done" not in result.stdout


def test_with_json_a_run_shows_no_progress(emu: Running, settings: Any) -> None:
    settings.PAYOUT_BATCH_SIZE = 1
    two_partners()
    result = cli("run", "--period", "2026-04", "--json", at=AFTER_APRIL_RUN)
    assert json.loads(result.stdout)["summary"]["reasons"] == {"paid": 2}
    assert "partner(s) done" not in result.stderr
