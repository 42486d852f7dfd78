"""``apertur paypal-emulator``: starts without a database, prints its URL and credentials, answers the OAuth
token endpoint, and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from apertur.integrations.paypal.client import PayPalClient
from apertur.integrations.paypal.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from apertur.integrations.paypal.errors import Retryable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_paypal_emulator_command_serves_tokens(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET"}}
    # A database URL that cannot work proves the command does not touch Django's database.
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'missing' / 'nowhere.sqlite3'}"
    exe = str(Path(sys.executable).with_name("apertur"))
    log_path = tmp_path / "emulator.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [exe, "paypal-emulator", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            with PayPalClient(
                f"http://127.0.0.1:{port}", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, timeout=2.0
            ) as client:
                deadline = time.monotonic() + 30
                token = None
                for _ in range(300):
                    try:
                        token = client.access_token()
                        break
                    except Retryable:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise AssertionError(log_path.read_text()) from None
                        time.sleep(0.1)
                assert token
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    output = log_path.read_text()
    assert f"http://127.0.0.1:{port}" in output
    assert f"PAYPAL_CLIENT_ID={DEFAULT_CLIENT_ID}" in output
    assert f"PAYPAL_CLIENT_SECRET={DEFAULT_CLIENT_SECRET}" in output
    assert "POST /v1/oauth2/token" in output  # the request log
    assert proc.returncode == 0
