"""The client for customer-given URLs connects only to an address the SSRF rule allows: the address it checks is
the address it connects to (no second resolution for DNS rebinding to change)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from apertur.core import outbound
from apertur.testing import fake_dns

TIMEOUT = httpx.Timeout(5.0)
PUBLIC = "93.184.215.14"  # a global address; nothing connects to it in these tests


class Listener:
    """A loopback HTTP server that records the Host header of each request it gets."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                listener.hosts.append(self.headers["host"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_connected_to(
    listener: Listener, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    asked = fake_dns(monkeypatch, {"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    url = f"http://rebind.example:{listener.port}/hooks"
    outbound.check_destination(url)  # public when checked
    with outbound.http_client(timeout=TIMEOUT) as client, pytest.raises(outbound.BlockedDestination):
        client.post(url, content=b"{}")
    assert asked == ["rebind.example", "rebind.example"]
    assert listener.hosts == []  # never reached


def test_the_connection_goes_to_the_checked_address_and_the_host_header_keeps_the_name(
    listener: Listener, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    asked = fake_dns(monkeypatch, {"hooks.example": [["127.0.0.1"]]})
    with outbound.http_client(timeout=TIMEOUT) as client:
        response = client.post(f"http://hooks.example:{listener.port}/hooks", content=b"{}")
    assert response.status_code == 204
    assert listener.hosts == [f"hooks.example:{listener.port}"]
    assert asked == ["hooks.example"]  # resolved once, by the check that connected


def test_a_name_with_one_private_address_among_public_ones_is_refused(
    listener: Listener, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    fake_dns(monkeypatch, {"mixed.example": [[PUBLIC, "10.0.0.7"]], "meta.example": [["169.254.169.254"]]})
    with outbound.http_client(timeout=TIMEOUT) as client:
        for name in ["mixed.example", "meta.example"]:
            with pytest.raises(outbound.BlockedDestination, match="non-public"):
                client.post(f"http://{name}:{listener.port}/x", content=b"{}")
    assert listener.hosts == []


def test_localhost_names_are_loopback_when_allowed_and_refused_otherwise(listener: Listener, settings: Any) -> None:
    # RFC 6761 §6.3: *.localhost is loopback although this machine's resolver does not know it.
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    with outbound.http_client(timeout=TIMEOUT) as client:
        assert client.post(f"http://partner.localhost:{listener.port}/x", content=b"").status_code == 204
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    with outbound.http_client(timeout=TIMEOUT) as client, pytest.raises(outbound.BlockedDestination, match="loopback"):
        client.post(f"http://localhost:{listener.port}/x", content=b"")
    assert listener.hosts == [f"partner.localhost:{listener.port}"]


def test_no_proxy_from_the_environment_and_no_redirects(
    listener: Listener, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would make the connection (to the proxy) escape the check; a redirect would skip it for the next
    hop. Neither applies to customer-given URLs."""
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.9.9.9:3128")
    with outbound.http_client(timeout=TIMEOUT) as client:
        assert client.post(f"http://127.0.0.1:{listener.port}/x", content=b"").status_code == 204
        assert client.follow_redirects is False


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:7",  # NAT64 (RFC 6052) to 10.0.0.7
        "64:ff9b::a9fe:a9fe",  # NAT64 to the cloud metadata address 169.254.169.254
        "64:ff9b:1::a00:7",  # NAT64 local-use prefix (RFC 8215): its embedding is the network's own
        "2002:a00:7::1",  # 6to4 of 10.0.0.7
        "::a00:7",  # IPv4-compatible (deprecated) 10.0.0.7
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::",
    ],
)
def test_ipv6_addresses_that_lead_to_private_ipv4_ones_are_refused(
    address: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python calls the NAT64, 6to4 and IPv4-compatible forms global; what they deliver to is what counts."""
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    fake_dns(monkeypatch, {"v6.example": [[address]]})
    with pytest.raises(outbound.BlockedDestination, match="non-public"):
        outbound.check_destination("https://v6.example/hooks")


def test_ipv6_forms_of_public_ipv4_addresses_stay_allowed(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    fake_dns(monkeypatch, {"v6.example": [["64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111"]]})
    outbound.check_destination("https://v6.example/hooks")
