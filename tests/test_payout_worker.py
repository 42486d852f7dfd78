"""The real ``apertur worker`` runs the monthly payout schedule: started after the run dates have passed (the
runs were "missed"), it runs each due period at start, pays the demo partner through the PayPal emulator over
loopback, and follows the payout to paid by polling. Restarting it pays nobody twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from apertur.integrations.paypal.emulator import running

pytestmark = pytest.mark.own_database

SETUP = """
import django
django.setup()
from apertur.demo import ensure_demo
ensure_demo()
"""


def _payouts(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("select sender_batch_id, status, amount_cents from payouts_payout order by id").fetchall()


def _finished_runs(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select period from payouts_payoutrun where finished_at is not null order by period")
        return [r[0] for r in rows.fetchall()]


def _start_worker(exe: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([exe, "worker"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=5)


def test_worker_runs_missed_payouts_at_start_and_follows_them_to_paid(tmp_path: Path) -> None:
    db = tmp_path / "worker.sqlite3"
    log = tmp_path / "worker.log"
    with running() as emu:
        httpx.post(f"{emu.base_url}/emulator/config", json={"advance_after_seconds": 0}).raise_for_status()
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{db}",
            "APERTUR_VAR_DIR": str(tmp_path / "var"),
            "DJANGO_SETTINGS_MODULE": "apertur.config.settings",
            "PAYPAL_API_BASE": emu.base_url,
            "PAYPAL_CLIENT_ID": emu.client_id,
            "PAYPAL_CLIENT_SECRET": emu.client_secret,
            "PAYOUT_SCHEDULER_INTERVAL": "1",
        }
        exe = str(Path(sys.executable).with_name("apertur"))
        subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, capture_output=True, timeout=120)
        assert _payouts(db) == []
        worker = _start_worker(exe, env, log)
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                assert worker.poll() is None, log.read_text()
                rows = _payouts(db)
                if rows and all(status == "paid" for _, status, _ in rows):
                    break
                time.sleep(0.3)
            rows = _payouts(db)
            assert rows and all(status == "paid" for _, status, _ in rows), (rows, log.read_text())
            assert all(amount >= 5_000 for _, _, amount in rows)
            assert emu.emulator.counters["batches_created"] == len(rows)
            finished = _finished_runs(db)
            assert finished, log.read_text()  # every due period was run, each for its own period
        finally:
            _stop(worker)
        # A restart finds every due run finished and every payout settled: nothing is sent again.
        worker = _start_worker(exe, env, log)
        try:
            time.sleep(3)
            assert worker.poll() is None, log.read_text()
        finally:
            _stop(worker)
        assert _payouts(db) == rows
        assert _finished_runs(db) == finished
        assert emu.emulator.counters["batches_created"] == len(rows)
