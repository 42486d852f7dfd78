"""Webhook verification with real deliveries from Apertur's sender, and the README quickstart, executed."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from apertur_connect import Event, Webhook, WebhookVerificationError
from apertur_connect.webhooks import SessionCreated, UploadCreated, WebhookTest

from apertur.testing import image_file
from apertur.uploads import services as upload_services
from apertur.webhooks import services as webhook_services
from tests.sdk_python.conftest import World

pytestmark = pytest.mark.django_db(transaction=True)
README = Path(__file__).resolve().parents[2] / "sdk" / "python" / "README.md"


class Receiver:
    """A partner's webhook endpoint written with the SDK: verifies, records typed events, answers 204/400."""

    def __init__(self) -> None:
        self.webhook: Webhook | None = None
        self.events: list[Event] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.refused: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = dict(self.headers.items())
                receiver.raw.append((headers, body))
                try:
                    assert receiver.webhook is not None
                    receiver.events.append(receiver.webhook.verify(body, headers))
                    self.send_response(204)
                except WebhookVerificationError as exc:
                    receiver.refused.append(exc.code)
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/apertur/webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    r = Receiver()
    yield r
    r.close()


def test_real_deliveries_verify_and_parse_into_typed_events(world: World, receiver: Receiver) -> None:
    with world.client() as client:
        api = world.connect(client).api
        endpoint = api.create_webhook(receiver.url, events=["*"])
        assert endpoint.secret is not None
        receiver.webhook = Webhook(endpoint.secret)

        api.send_test_webhook(endpoint.id)
        session = api.create_upload_session("Party")
        upload = upload_services.accept_upload(session=_session(session.id), file=image_file("cake.png"))
        assert webhook_services.run_due() == 3  # Apertur's sender: signs and POSTs each event

        assert receiver.refused == []
        by_type = {e.type: e for e in receiver.events}
        test_event = by_type["webhook.test"]
        assert isinstance(test_event, WebhookTest) and "test event" in test_event.message
        created = by_type["session.created"]
        assert isinstance(created, SessionCreated) and created.session.id == session.id
        uploaded = by_type["upload.created"]
        assert isinstance(uploaded, UploadCreated)
        assert (uploaded.upload.id, uploaded.upload.file_name) == (upload.public_id, "cake.png")
        assert uploaded.upload.uploaded_at.tzinfo is not None and uploaded.livemode is True

        deliveries = list(api.iter_webhook_deliveries(endpoint.id))
        assert {d.status for d in deliveries} == {"succeeded"}
        assert all(d.attempt_log[0].status_code == 204 for d in deliveries)

    # The same real delivery, tampered with or replayed late, is refused.
    headers, body = receiver.raw[0]
    webhook = Webhook(endpoint.secret)
    assert webhook.verify(body, {k.lower(): v for k, v in headers.items()}).id == headers["webhook-id"]
    with pytest.raises(WebhookVerificationError) as tampered:
        webhook.verify(body.replace(b'"livemode":true', b'"livemode":false'), headers)
    assert tampered.value.code == "invalid_signature"
    with pytest.raises(WebhookVerificationError) as late:
        webhook.verify(body, headers, now=time.time() + 301)
    assert late.value.code == "timestamp_outside_tolerance"
    with pytest.raises(WebhookVerificationError) as wrong_secret:
        Webhook("whsec_" + "A" * 32).verify(body, headers)
    assert wrong_secret.value.code == "invalid_signature"
    with pytest.raises(WebhookVerificationError) as missing:
        webhook.verify(body, {k: v for k, v in headers.items() if k.lower() != "webhook-signature"})
    assert missing.value.code == "missing_header"


def _session(public_id: str) -> Any:
    from apertur.uploads.models import UploadSession

    return UploadSession.objects.get(public_id=public_id)


def quickstart() -> str:
    text = README.read_text()
    section = text.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match
    return match.group(1)


def test_the_readme_quickstart_is_15_lines_and_runs(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = quickstart()
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    from apertur.oauth.models import RedirectURI

    RedirectURI.objects.create(app=world.created.app, uri="https://your-app.example/callback")
    session = _session(upload_services.create_session(project=world.project, title="Party").public_id)
    for name in ["a.png", "b.png"]:
        upload_services.accept_upload(session=session, file=image_file(name))

    from apertur_connect import generate_key

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APERTUR_CLIENT_ID", world.created.app.client_id)
    monkeypatch.setenv("APERTUR_CLIENT_SECRET", world.created.client_secret)
    monkeypatch.setenv("APERTUR_BASE_URL", world.base_url)
    monkeypatch.setenv("APERTUR_TOKENS_KEY", generate_key())
    namespace: dict[str, Any] = {"__name__": "quickstart"}
    exec(compile(code, str(README), "exec"), namespace)

    code_for_app = world.code(scope="upload:read", redirect_uri="https://your-app.example/callback")
    response = namespace["app"].test_client().post("/apertur/connect", json={"code": code_for_app})
    assert response.status_code == 200, response.text
    assert response.get_json() == {"project": world.project.public_id, "uploads": ["b.png", "a.png"]}
    assert len(list((tmp_path / "var" / "apertur-tokens").glob("*.token"))) == 1


def test_a_destination_copy_verifies_with_verify_signature(world: World, receiver: Receiver) -> None:
    """docs/api.md, Destinations: a copy is "signed like webhooks" and its secret is "verified as a webhook
    signature is". Its body is the file, not an event, so ``verify`` refuses it as not JSON; ``verify_signature``
    checks the signature and the time alone."""
    from apertur.uploads import destinations

    destination = destinations.create_https_destination(project=world.project, name="Archive", url=receiver.url)
    session = upload_services.create_session(project=world.project, title="Party")
    upload_services.accept_upload(session=session, file=image_file("cake.png"))
    receiver.webhook = Webhook(destination.secret)
    assert destinations.run_due() == 1
    assert receiver.refused == ["invalid_payload"]  # verify() takes events only

    headers, body = receiver.raw[0]
    webhook = Webhook(destination.secret)
    assert body == image_file("cake.png").read()
    assert webhook.verify_signature(body, headers) == headers["webhook-id"]
    for tampered in (body + b"x", body[:-1]):
        with pytest.raises(WebhookVerificationError) as refused:
            webhook.verify_signature(tampered, headers)
        assert refused.value.code == "invalid_signature"
    with pytest.raises(WebhookVerificationError) as late:
        webhook.verify_signature(body, headers, now=time.time() + 3600)
    assert late.value.code == "timestamp_outside_tolerance"
