"""How the benchmarks start and stop a Python app server on loopback (bench/http/harness.py, bench/sdk_popup.py):
one command line per app server, and one way to stop a server's whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def app_server(kind: str, py: Path | str, app: str, port: int, *, threads: int) -> list[str]:
    """One worker process, ``threads`` threads running the WSGI ``app``, keep-alive, no access log, on
    127.0.0.1: granian (what ``apertur serve`` runs) or gunicorn's gthread worker."""
    if kind == "granian":
        return [
            str(py), "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--blocking-threads", str(threads), "--no-ws", "--log-level", "warning", app,
        ]  # fmt: skip
    return [
        str(py), "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "75", "--log-level", "warning",
    ]  # fmt: skip


def stop_group(proc: subprocess.Popen[bytes] | None, *, timeout: float = 20) -> None:
    """SIGTERM to the server's process group (started with ``start_new_session=True``), SIGKILL after
    ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
