"""The emulator's own surface: raw PayPal endpoints and the /emulator/ controls."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from apertur.integrations.paypal.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Running

from .conftest import control


def test_token_endpoint_shape(emu: Running) -> None:
    response = httpx.post(
        f"{emu.base_url}/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        timeout=5,
    )
    assert response.status_code == 200
    data = response.json()
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 32400
    assert {"scope", "access_token", "app_id", "nonce"} <= set(data)


def test_token_endpoint_refuses_missing_grant_and_bad_credentials(emu: Running) -> None:
    url = f"{emu.base_url}/v1/oauth2/token"
    no_grant = httpx.post(url, auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET), timeout=5)
    assert (no_grant.status_code, no_grant.json()["error"]) == (400, "unsupported_grant_type")
    no_auth = httpx.post(url, data={"grant_type": "client_credentials"}, timeout=5)
    assert no_auth.status_code == 401
    assert no_auth.json() == {"error": "invalid_client", "error_description": "Client Authentication failed"}


def test_api_needs_a_bearer_token(emu: Running) -> None:
    response = httpx.get(f"{emu.base_url}/v1/payments/payouts/ANY", timeout=5)
    assert response.status_code == 401
    assert response.json()["name"] == "AUTHENTICATION_FAILURE"


def test_custom_credentials() -> None:
    from apertur.integrations.paypal.client import PayPalClient
    from apertur.integrations.paypal.emulator import running

    with (
        running(client_id="id-1", client_secret="s-1") as emu,
        PayPalClient(emu.base_url, "id-1", "s-1", timeout=2) as c,
    ):
        assert c.access_token()


def test_config_rejects_unknown_switches_and_bad_values(emu: Running) -> None:
    url = f"{emu.base_url}/emulator/config"
    for body in (
        {"no_such_switch": 1},
        {"default_item_status": "PAID"},
        {"item_status": {"a@example.com": "NOPE"}},
        {"timeout_seconds": 300},
        {"fail_status": 404},
        {"webhook_url": "file:///etc/passwd"},
        {"fail_next_n_with_5xx": -1},
    ):
        response = httpx.post(url, json=body, timeout=5)
        assert response.status_code == 400, body
    assert control(emu, "state")["config"]["default_item_status"] == "SUCCESS"


def test_config_merges_item_statuses_and_reset_clears(emu: Running) -> None:
    control(emu, "config", {"item_status": {"A@example.com": "FAILED"}})
    config = control(emu, "config", {"item_status": {"b@example.com": "UNCLAIMED"}})["config"]
    assert config["item_status"] == {"a@example.com": "FAILED", "b@example.com": "UNCLAIMED"}
    control(emu, "reset", {})
    assert control(emu, "state")["config"]["item_status"] == {}


@pytest.mark.parametrize("path", ["/nothing", "/emulator/nothing"])
def test_unknown_paths_are_404(emu: Running, path: str) -> None:
    assert httpx.post(f"{emu.base_url}{path}", json={}, timeout=5).status_code == 404


def test_stop_is_prompt_even_while_a_request_sleeps() -> None:
    import threading
    import time

    from apertur.integrations.paypal.emulator import running

    with running() as emu:
        control(emu, "config", {"timeout_next_n": 1, "timeout_seconds": 30, "timeout_after_commit": False})
        token = httpx.post(
            f"{emu.base_url}/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            timeout=5,
        ).json()["access_token"]

        def slow() -> None:
            with contextlib.suppress(httpx.TimeoutException):
                httpx.get(
                    f"{emu.base_url}/v1/payments/payouts/X", headers={"Authorization": f"Bearer {token}"}, timeout=0.5
                )

        thread = threading.Thread(target=slow)
        thread.start()
        thread.join(5)
        started = time.monotonic()
    assert time.monotonic() - started < 3
