"""An emulator per test on 127.0.0.1 port 0, and a client pointed at it over loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from apertur.integrations.paypal.client import PayPalClient
from apertur.integrations.paypal.emulator import Running, running


@pytest.fixture
def emu() -> Iterator[Running]:
    with running() as emulator:
        yield emulator


@pytest.fixture
def client(emu: Running) -> Iterator[PayPalClient]:
    with PayPalClient(emu.base_url, emu.client_id, emu.client_secret, timeout=1.0) as c:
        yield c


def control(emu: Running, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call an /emulator/ control endpoint (GET without a body, POST with one)."""
    url = f"{emu.base_url}/emulator/{path}"
    response = httpx.get(url, timeout=5) if body is None else httpx.post(url, json=body, timeout=5)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


@dataclass
class Receiver:
    """A local webhook endpoint that records what it is sent."""

    url: str
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            box[0].deliveries.append((dict(self.headers.items()), body))
            box[0].arrived.set()
            payload = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box.append(Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/webhooks/paypal"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
