"""``apertur serve``: the production server (granian, several worker processes) with static files and /healthz,
on a real SQLite file in WAL mode."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}  # names: any case


@pytest.mark.own_database
def test_serve_multi_process_with_static_and_healthz(tmp_path: Path) -> None:
    db = tmp_path / "serve.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "APERTUR_VAR_DIR": str(tmp_path / "var"),
        "DEBUG": "0",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    exe = str(Path(sys.executable).with_name("apertur"))
    subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body, _ = _get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((tmp_path / "serve.log").read_text()) from None
                time.sleep(0.2)
        assert status == 200
        assert b'"ok"' in body
        status, css, headers = _get(f"http://127.0.0.1:{port}/static/css/apertur.css")
        assert status == 200
        assert b"--accent" in css
        assert headers["content-type"].startswith("text/css")
        status, page, headers = _get(f"http://127.0.0.1:{port}/login")
        assert status == 200
        assert b">Log in</button>" in page
        assert headers["x-frame-options"] == "DENY"
        # A guest upload link is a credential: the access log keeps its prefix only.
        with pytest.raises(urllib.error.HTTPError) as unknown:
            _get(f"http://127.0.0.1:{port}/u/NotARealUploadLinkButSecretLooking")
        assert unknown.value.code == 404
        workers = subprocess.run(
            ["pgrep", "-g", str(os.getpgid(proc.pid))], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(workers) >= 3, workers  # the main process and two workers
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()
    served = (tmp_path / "serve.log").read_text()
    assert '"GET /login HTTP/1.1" 200' in served  # the access log is on
    assert "/u/[redacted]" in served and "NotARealUploadLink" not in served
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.own_database
def test_worker_starts_and_stops_gracefully(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite3'}",
        "APERTUR_VAR_DIR": str(tmp_path),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    exe = str(Path(sys.executable).with_name("apertur"))
    subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([exe, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while b"Starting worker" not in log_path.read_bytes():
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=20)
    assert code == 0, log_path.read_text()


@pytest.mark.django_db
def test_health_check_is_not_redirected_to_https(client: Any, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200  # a load balancer's plain-HTTP probe
    assert client.get("/login").status_code == 301  # everything else goes to https


def test_serve_on_a_port_in_use_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier `apertur serve` (or `make run`) still running: a sentence naming the port, not granian's
    Python-and-Rust traceback of 140 lines after "Apertur on http://…"."""
    import django.core.management
    from typer.testing import CliRunner

    from apertur.cli import app

    started: list[Any] = []
    monkeypatch.setattr(os, "execv", lambda *args: started.append(args))
    monkeypatch.setattr(django.core.management, "call_command", lambda *args, **kwargs: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--host", "127.0.0.1", "--port", str(port)])
    assert started == []
    assert result.exit_code == 1 and result.stdout == ""
    message = " ".join(result.stderr.split())
    assert f"Cannot listen on 127.0.0.1:{port}" in message and "--port" in message
