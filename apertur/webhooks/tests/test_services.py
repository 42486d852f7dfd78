"""Signed deliveries to a real HTTP receiver on loopback, retries with backoff, and SSRF protection."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import time_machine

from apertur.projects.services import create_project
from apertur.testing import image_file, make_user
from apertur.uploads import services as uploads
from apertur.webhooks import services, signing
from apertur.webhooks.errors import InvalidEndpoint
from apertur.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db


def test_standard_webhooks_reference_vector() -> None:
    # Published by Standard Webhooks: any receiver library must accept what we send.
    signature = signing.sign(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


class Receiver:
    """A webhook receiver as a partner would write one: verifies the signature, dedupes by webhook-id."""

    def __init__(self) -> None:
        self.up = True
        self.requests: list[dict[str, Any]] = []
        self.processed: dict[str, dict[str, Any]] = {}
        self.secret = ""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append({"headers": headers, "body": body})
                if not receiver.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                ok = signing.verify(
                    secret=receiver.secret,
                    msg_id=headers["webhook-id"],
                    timestamp=int(headers["webhook-timestamp"]),
                    body=body,
                    header=headers["webhook-signature"],
                )
                if not ok:
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.processed.setdefault(headers["webhook-id"], json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def project():  # type: ignore[no-untyped-def]
    return create_project(owner=make_user(), name="Weddings")


def test_upload_created_is_delivered_signed(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    endpoint = services.create_endpoint(project=project, url=receiver.url, events=["upload.created"])
    assert endpoint.secret.startswith("whsec_")
    receiver.secret = endpoint.secret
    session = uploads.create_session(project=project, title="Party")  # session.created: not subscribed
    upload = uploads.accept_upload(session=session, file=image_file(), note="hi")
    assert services.run_due() == 1
    assert len(receiver.requests) == 1
    event = receiver.processed[receiver.requests[0]["headers"]["webhook-id"]]
    assert event["type"] == "upload.created"
    assert event["data"]["upload"]["id"] == upload.public_id
    assert event["data"]["upload"]["file_name"] == "photo.png"
    assert event["livemode"] is True
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert delivery.attempt_log.get().status_code == 204


def test_receiver_down_then_up_is_delivered_exactly_once(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    endpoint = services.create_endpoint(project=project, url=receiver.url)
    receiver.secret = endpoint.secret
    receiver.up = False
    uploads.create_session(project=project, title="Party")
    start = dt.datetime.now(tz=dt.UTC)
    assert services.run_due() == 1
    assert services.run_due() == 0  # not due again before the backoff
    with time_machine.travel(start + dt.timedelta(seconds=31)):
        assert services.run_due() == 1  # second attempt, still down
    receiver.up = True
    with time_machine.travel(start + dt.timedelta(seconds=31 + 121)):
        assert services.run_due() == 1
    with time_machine.travel(start + dt.timedelta(hours=30)):
        assert services.run_due() == 0  # delivered: never sent again
    assert len(receiver.requests) == 3
    ids = {r["headers"]["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1  # the same event id on every retry
    assert len(receiver.processed) == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [a.status_code for a in delivery.attempt_log.all()] == [503, 503, 204]


def test_gives_up_after_the_last_attempt(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    services.create_endpoint(project=project, url=receiver.url)
    receiver.up = False
    uploads.create_session(project=project, title="Party")
    now = dt.datetime.now(tz=dt.UTC)
    for _ in range(services.MAX_ATTEMPTS + 2):
        now += dt.timedelta(days=2)
        with time_machine.travel(now):
            services.run_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == services.MAX_ATTEMPTS
    assert len(receiver.requests) == services.MAX_ATTEMPTS


def test_test_event(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    endpoint = services.create_endpoint(project=project, url=receiver.url, events=["upload.created"])
    receiver.secret = endpoint.secret
    services.send_test_event(endpoint=endpoint)
    services.run_due()
    assert [e["type"] for e in receiver.processed.values()] == ["webhook.test"]


def test_a_test_event_reaches_a_disabled_endpoint_so_a_receiver_can_be_checked_before_enabling(
    project, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    endpoint = services.create_endpoint(project=project, url=receiver.url)
    receiver.secret = endpoint.secret
    services.update_endpoint(endpoint=endpoint, enabled=False)
    uploads.create_session(project=project, title="Party")  # a real event: nothing for a disabled endpoint
    delivery = services.send_test_event(endpoint=endpoint)
    services.run_due()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [e["type"] for e in receiver.processed.values()] == ["webhook.test"]


def test_disabled_endpoints_and_test_mode_are_separate(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    live = services.create_endpoint(project=project, url=receiver.url)
    services.update_endpoint(endpoint=live, enabled=False)

    services.create_endpoint(project=project, url=receiver.url, livemode=False)
    uploads.create_session(project=project, title="live")
    assert WebhookDelivery.objects.count() == 0
    uploads.create_session(project=project, title="test", livemode=False)
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/x", "must use https"),
        ("ftp://hooks.example.com/x", "scheme must be https"),
        ("/relative", "must be absolute"),
        ("https://user:pw@hooks.example.com/", "user name or password"),
    ],
)
def test_bad_endpoint_urls(project, url: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidEndpoint, match=message):
        services.create_endpoint(project=project, url=url)
    assert WebhookEndpoint.objects.count() == 0


def test_an_empty_event_list_is_refused_not_read_as_all(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidEndpoint, match="at least one event") as info:
        services.create_endpoint(project=project, url="https://hooks.example.com/x", events=[])
    assert info.value.field == "events"
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x", events=["upload.created"])
    with pytest.raises(InvalidEndpoint, match="at least one event"):
        services.update_endpoint(endpoint=endpoint, events=[])
    assert WebhookEndpoint.objects.get().events == ["upload.created"]
    assert services.create_endpoint(project=project, url="https://hooks.example.com/y").events == ["*"]


def test_unknown_event_type_refused(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidEndpoint, match="Unknown event type"):
        services.create_endpoint(project=project, url="https://hooks.example.com/x", events=["upload.deleted"])


@pytest.mark.parametrize("events", [["webhook.test"], ["upload.created", "webhook.test"]])
def test_webhook_test_cannot_be_subscribed_to(project, events: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Only "Send test event" sends it, to one endpoint: a subscription would wait for events that never come."""
    with pytest.raises(InvalidEndpoint, match=r'"webhook\.test" cannot be subscribed to') as info:
        services.create_endpoint(project=project, url="https://hooks.example.com/x", events=events)
    assert info.value.field == "events"
    assert WebhookEndpoint.objects.count() == 0
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x", events=["upload.created"])
    with pytest.raises(InvalidEndpoint, match=r'"webhook\.test" cannot be subscribed to'):
        services.update_endpoint(endpoint=endpoint, events=events)
    assert WebhookEndpoint.objects.get().events == ["upload.created"]
    assert services.send_test_event(endpoint=endpoint).event.type == "webhook.test"  # still sent on demand


def test_unknown_event_types_are_listed_without_webhook_test(project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidEndpoint) as info:
        services.create_endpoint(project=project, url="https://hooks.example.com/x", events=["upload.deleted"])
    assert "upload.created" in info.value.message and "webhook.test" not in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://10.0.0.1/h",
        "https://192.168.1.10/h",
        "https://169.254.169.254/latest",
        "https://localhost/h",
        "https://app.localhost/h",
        "https://[::1]/h",
        "https://0x7f000001/h",
        "https://[fd00::1]/h",
        "https://0.0.0.0/h",
    ],
)
def test_private_loopback_and_metadata_urls_are_refused_when_saved(project, settings: Any, url: str) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    with pytest.raises(InvalidEndpoint, match="must be public") as info:
        services.create_endpoint(project=project, url=url)
    assert info.value.field == "url"
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    with pytest.raises(InvalidEndpoint, match="must be public"):
        services.update_endpoint(endpoint=endpoint, url=url)
    assert WebhookEndpoint.objects.get().url == "https://hooks.example.com/x"


def test_loopback_receivers_are_allowed_in_development(project, settings: Any) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_ALLOW_LOOPBACK = True  # on with DEBUG: the local demo and the test receivers
    services.create_endpoint(project=project, url="http://127.0.0.1:9/hooks")
    with pytest.raises(InvalidEndpoint, match="must be public"):
        services.create_endpoint(project=project, url="https://10.0.0.1/hooks")


def test_no_deliveries_to_private_or_blocked_loopback_addresses(project, settings: Any) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    # Saved before the rule applied at creation, or a name that resolves elsewhere since: delivery checks again.
    for url in ["http://127.0.0.1:9/hooks", "https://10.0.0.1/hooks", "https://169.254.169.254/latest/meta-data"]:
        endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url)
    uploads.create_session(project=project, title="x")
    services.run_due()
    errors = sorted(d.last_error for d in WebhookDelivery.objects.all())
    assert all(e.startswith("blocked:") for e in errors), errors
    assert WebhookEvent.objects.count() == 1


def test_no_delivery_is_lost_when_a_worker_dies(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    """Attempts are queued in the transaction of the change, and each claim queues the next look before
    the network call: a worker that dies mid-attempt leaves a queued task, and the final check fails a
    delivery whose last attempt never reported back instead of leaving it pending."""
    from django_tasks_db.models import DBTaskResult

    services.create_endpoint(project=project, url=receiver.url)
    uploads.create_session(project=project, title="Party")
    assert DBTaskResult.objects.count() == 1  # queued with the event, not after commit
    delivery = WebhookDelivery.objects.get()
    # A worker claimed the last attempt and died before recording it.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=services.MAX_ATTEMPTS)
    services.run_due()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "the last attempt did not complete"
    assert receiver.requests == []


def test_unexpected_errors_are_failed_attempts_not_lost_deliveries(project, receiver: Receiver, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    services.create_endpoint(project=project, url=receiver.url)
    uploads.create_session(project=project, title="Party")

    def boom(url: str) -> None:
        raise RuntimeError("resolver exploded")

    monkeypatch.setattr(services.outbound, "check_destination", boom)
    services.run_due()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert "resolver exploded" in delivery.last_error


def test_disabling_an_endpoint_stops_its_pending_retries(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    endpoint = services.create_endpoint(project=project, url=receiver.url)
    receiver.up = False
    uploads.create_session(project=project, title="Party")
    start = dt.datetime.now(tz=dt.UTC)
    assert services.run_due() == 1 and len(receiver.requests) == 1
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    with time_machine.travel(start + dt.timedelta(minutes=5)):
        services.run_due()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.FAILED, "not sent: the endpoint is disabled")
    assert len(receiver.requests) == 1 and delivery.next_attempt_at is None


def test_disabling_ends_pending_deliveries_at_once_so_enabling_again_sends_only_new_events(
    project, receiver: Receiver
) -> None:  # type: ignore[no-untyped-def]
    from apertur.core.models import AuditEvent

    endpoint = services.create_endpoint(project=project, url=receiver.url)
    receiver.secret = endpoint.secret
    receiver.up = False
    party = uploads.create_session(project=project, title="Party")
    start = dt.datetime.now(tz=dt.UTC)
    assert services.run_due() == 1 and len(receiver.requests) == 1  # failed once; a retry is scheduled
    services.update_endpoint(endpoint=endpoint, enabled=False, actor=project.owner)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.last_error, delivery.next_attempt_at) == (
        DeliveryStatus.FAILED,
        "not sent: the endpoint is disabled",
        None,
    )
    disabled = AuditEvent.objects.get(action="webhook_endpoint.updated")
    assert disabled.data == {"fields": ["enabled"], "enabled": False, "pending_stopped": 1}
    uploads.close_session(session=party)  # session.closed while disabled: no delivery at all
    assert WebhookDelivery.objects.count() == 1
    receiver.up = True
    services.update_endpoint(endpoint=endpoint, enabled=True)
    enabled = AuditEvent.objects.filter(action="webhook_endpoint.updated").latest("pk")
    assert enabled.data == {"fields": ["enabled"], "enabled": True}
    with time_machine.travel(start + dt.timedelta(hours=1)):  # past the old retry time
        services.run_due()
        assert len(receiver.requests) == 1  # neither the old retry nor the event of the pause
        uploads.create_session(project=project, title="After")
        services.run_due()
    assert [json.loads(r["body"])["data"]["session"]["title"] for r in receiver.requests[1:]] == ["After"]


def test_the_retry_delay_counts_from_the_failure_and_an_attempt_in_flight_is_not_sent_twice(
    project, receiver: Receiver, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    services.create_endpoint(project=project, url=receiver.url)
    receiver.up = False
    uploads.create_session(project=project, title="Party")
    real_post = services._post

    def slow_post(*args: Any, **kwargs: Any) -> int:
        # While this attempt runs (a slow receiver), another worker looks at the delivery: not due.
        assert services.run_due() == 0
        time.sleep(1.0)
        return real_post(*args, **kwargs)

    monkeypatch.setattr(services, "_post", slow_post)
    before = dt.datetime.now(tz=dt.UTC)
    assert services.run_due() == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempts == 1 and len(receiver.requests) == 1
    assert delivery.next_attempt_at - before >= dt.timedelta(seconds=31)  # 30 s after the failure, not the start


def test_an_attempt_is_bounded_even_when_the_receiver_drips_its_answer(
    project, settings: Any, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    """httpx's timeouts bound each socket read; a receiver sending a byte every half second would hold the attempt
    (and the worker) forever without the attempt's own deadline."""
    import socket

    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    monkeypatch.setattr(services, "ATTEMPT_SECONDS", 1.5)
    monkeypatch.setattr(services, "TIMEOUT", httpx.Timeout(1.0, connect=1.0))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 40:  # bounded: 40 bytes, one every 0.5 s
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.5)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        services.create_endpoint(project=project, url=f"http://127.0.0.1:{listener.getsockname()[1]}/hooks")
        uploads.create_session(project=project, title="Party")
        started = time.monotonic()
        services.run_due()
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
        thread.join(5)
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_error == "timed out after 1.5 s" and delivery.status == DeliveryStatus.PENDING
    assert elapsed < 10  # not a speed target: without the deadline the drip holds it 20 s (40 bytes, 0.5 s apart)


# --- rolling the signing secret ------------------------------------------------------------------------------

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


class Captured:
    """An httpx client whose transport records each request's signature headers and answers 204."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.client = httpx.Client(transport=httpx.MockTransport(self._answer))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(204)

    def deliver_test_event(self, endpoint: WebhookEndpoint) -> httpx.Request:
        delivery = services.send_test_event(endpoint=endpoint)
        assert services.attempt(delivery_id=delivery.pk, client=self.client).status == DeliveryStatus.SUCCEEDED
        return self.requests[-1]


def signatures(request: httpx.Request) -> list[str]:
    return request.headers["webhook-signature"].split(" ")


def verifies(request: httpx.Request, secret: str) -> bool:
    return signing.verify(
        secret=secret,
        msg_id=request.headers["webhook-id"],
        timestamp=int(request.headers["webhook-timestamp"]),
        body=request.content,
        header=request.headers["webhook-signature"],
    )


@pytest.fixture
def loopback_endpoint(project, settings: Any) -> WebhookEndpoint:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_ALLOW_LOOPBACK = True  # no DNS: the captured client never opens a socket
    return services.create_endpoint(project=project, url="http://127.0.0.1:9/hooks")


def test_a_rolled_secret_signs_beside_the_new_one_until_it_expires(loopback_endpoint: WebhookEndpoint) -> None:
    old = loopback_endpoint.secret
    capture = Captured()
    with time_machine.travel(T0, tick=False):
        rolled = services.rotate_secret(endpoint=loopback_endpoint, expire_previous_in=dt.timedelta(hours=1))
    new = rolled.secret
    assert new.startswith("whsec_") and new != old
    stored = WebhookEndpoint.objects.get()
    assert (stored.secret, stored.previous_secret) == (new, old)
    assert stored.previous_secret_expires_at == T0 + dt.timedelta(hours=1)
    with time_machine.travel(T0 + dt.timedelta(minutes=59, seconds=59), tick=False):
        during = capture.deliver_test_event(stored)
    assert len(signatures(during)) == 2
    assert all(part.startswith("v1,") for part in signatures(during))
    new_signature, old_signature = signatures(during)  # the current secret's first
    ts, msg_id = int(during.headers["webhook-timestamp"]), during.headers["webhook-id"]
    assert new_signature == signing.sign(secret=new, msg_id=msg_id, timestamp=ts, body=during.content)
    assert old_signature == signing.sign(secret=old, msg_id=msg_id, timestamp=ts, body=during.content)
    assert verifies(during, new) and verifies(during, old)
    assert not verifies(during, signing.new_secret())
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):  # the expiry instant: no longer
        after = capture.deliver_test_event(stored)
    assert len(signatures(after)) == 1
    assert verifies(after, new) and not verifies(after, old)


def test_expiring_the_previous_secret_now_signs_with_the_new_one_only(loopback_endpoint: WebhookEndpoint) -> None:
    old = loopback_endpoint.secret
    rolled = services.rotate_secret(endpoint=loopback_endpoint, expire_previous_in=dt.timedelta(0))
    stored = WebhookEndpoint.objects.get()
    assert stored.secret == rolled.secret != old
    assert (stored.previous_secret, stored.previous_secret_expires_at) == ("", None)  # not kept at all
    request = Captured().deliver_test_event(stored)
    assert len(signatures(request)) == 1
    assert verifies(request, rolled.secret) and not verifies(request, old)


@pytest.mark.parametrize(
    "duration",
    [
        dt.timedelta(seconds=-1),
        dt.timedelta(days=7, seconds=1),
        dt.timedelta(days=30),
        3600,  # seconds are not a duration: the API converts them
        None,
    ],
)
def test_bad_overlaps_are_refused_and_change_nothing(project, duration: Any) -> None:  # type: ignore[no-untyped-def]
    from apertur.core.models import AuditEvent

    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    services.rotate_secret(endpoint=endpoint, expire_previous_in=dt.timedelta(hours=2))
    before = WebhookEndpoint.objects.values().get()
    audits = AuditEvent.objects.count()
    with pytest.raises(InvalidEndpoint, match="up to 7 days") as info:
        services.rotate_secret(endpoint=endpoint, expire_previous_in=duration)
    assert info.value.field == "expire_previous_in"
    assert WebhookEndpoint.objects.values().get() == before
    assert AuditEvent.objects.count() == audits


def test_housekeeping_forgets_a_previous_secret_once_its_overlap_has_ended(project) -> None:  # type: ignore[no-untyped-def]
    from apertur.core import housekeeping

    ending = services.create_endpoint(project=project, url="https://hooks.example.com/a")
    later = services.create_endpoint(project=project, url="https://hooks.example.com/b")
    with time_machine.travel(T0, tick=False):
        services.rotate_secret(endpoint=ending, expire_previous_in=dt.timedelta(hours=1))
        services.rotate_secret(endpoint=later, expire_previous_in=dt.timedelta(hours=2))
    kept = {e.pk: e.previous_secret for e in WebhookEndpoint.objects.all()}
    assert all(kept.values())

    assert housekeeping.prune(now=T0 + dt.timedelta(minutes=59))["previous_signing_secrets"] == 0
    assert housekeeping.prune(now=T0 + dt.timedelta(hours=1))["previous_signing_secrets"] == 1
    cleared, still = WebhookEndpoint.objects.get(pk=ending.pk), WebhookEndpoint.objects.get(pk=later.pk)
    assert (cleared.previous_secret, cleared.previous_secret_expires_at) == ("", None)
    assert still.previous_secret == kept[later.pk]  # its overlap runs on
    assert still.previous_secret_expires_at == T0 + dt.timedelta(hours=2)
    assert cleared.signing_secrets(T0 + dt.timedelta(hours=1)) == [cleared.secret]


def test_the_longest_overlap_is_seven_days(project) -> None:  # type: ignore[no-untyped-def]
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    with time_machine.travel(T0, tick=False):
        rolled = services.rotate_secret(endpoint=endpoint, expire_previous_in=dt.timedelta(days=7))
    assert rolled.previous_secret_expires_at == T0 + dt.timedelta(days=7)


def test_rolling_is_audited_without_any_secret(project) -> None:  # type: ignore[no-untyped-def]
    from apertur.core.models import AuditEvent

    owner = project.owner
    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    old = endpoint.secret
    with time_machine.travel(T0, tick=False):
        rolled = services.rotate_secret(
            endpoint=endpoint, expire_previous_in=dt.timedelta(hours=24), actor=owner, ip="203.0.113.7"
        )
    row = AuditEvent.objects.get(action="webhook_endpoint.secret_rotated")
    assert (row.actor, row.ip, row.object_id) == (owner, "203.0.113.7", str(endpoint.pk))
    assert row.data == {
        "previous_secret_expires_at": (T0 + dt.timedelta(hours=24)).isoformat(),
        "dropped_older_previous_secret": False,
    }
    recorded = json.dumps(row.data)
    for secret in (old, rolled.secret):
        assert secret not in recorded and secret.removeprefix("whsec_") not in recorded


def test_rolling_again_keeps_only_the_secret_it_replaces(loopback_endpoint: WebhookEndpoint) -> None:
    from apertur.core.models import AuditEvent

    first = loopback_endpoint.secret
    with time_machine.travel(T0, tick=False):
        second = services.rotate_secret(endpoint=loopback_endpoint, expire_previous_in=dt.timedelta(days=3)).secret
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):
        # ``loopback_endpoint`` still holds the first secret: the service reads the row, not the caller's copy.
        third = services.rotate_secret(endpoint=loopback_endpoint, expire_previous_in=dt.timedelta(hours=2)).secret
        stored = WebhookEndpoint.objects.get()
        assert (stored.secret, stored.previous_secret) == (third, second)
        assert stored.previous_secret_expires_at == T0 + dt.timedelta(hours=3)
        request = Captured().deliver_test_event(stored)
    assert len(signatures(request)) == 2
    assert verifies(request, third) and verifies(request, second) and not verifies(request, first)
    flags = [
        r.data["dropped_older_previous_secret"]
        for r in AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated").order_by("at", "pk")
    ]
    assert flags == [False, True]


def test_a_receiver_still_holding_the_old_secret_verifies_during_the_overlap(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    endpoint = services.create_endpoint(project=project, url=receiver.url)
    receiver.secret = endpoint.secret  # the partner has not updated its receiver yet
    start = dt.datetime.now(tz=dt.UTC)
    services.rotate_secret(endpoint=endpoint, expire_previous_in=dt.timedelta(hours=24))
    uploads.create_session(project=project, title="During the overlap")
    assert services.run_due() == 1
    assert len(receiver.processed) == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED
    with time_machine.travel(start + dt.timedelta(hours=24, seconds=1)):
        late = services.send_test_event(endpoint=endpoint)
        assert services.run_due() == 1
    assert len(receiver.processed) == 1  # the old secret no longer verifies: the receiver refused it
    assert receiver.requests[-1]["headers"]["webhook-signature"].count("v1,") == 1
    late.refresh_from_db()
    assert late.last_status_code == 400


def test_an_attempt_in_the_log_is_dated_when_it_was_sent(project, receiver: Receiver, monkeypatch: Any) -> None:  # type: ignore[no-untyped-def]
    from apertur.core import clock

    services.create_endpoint(project=project, url=receiver.url)
    uploads.create_session(project=project, title="Party")
    real_post = services._post
    sent: list[dt.datetime] = []

    def slow_post(*args: Any, **kwargs: Any) -> int:
        sent.append(clock.now())
        time.sleep(0.3)  # a slow receiver: the log must not date the attempt at its end
        return real_post(*args, **kwargs)

    monkeypatch.setattr(services, "_post", slow_post)
    services.run_due()
    attempt = WebhookDelivery.objects.get().attempt_log.get()
    assert attempt.at <= sent[0] and attempt.duration_ms >= 300


def test_changing_an_endpoint_deleted_meanwhile_is_not_found(project) -> None:  # type: ignore[no-untyped-def]
    from apertur.webhooks.errors import EndpointNotFound

    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()  # another request deleted it after ours read it
    with pytest.raises(EndpointNotFound):
        services.update_endpoint(endpoint=endpoint, description="late")


def test_an_endpoints_page_costs_the_same_queries_for_one_delivery_or_many(project) -> None:  # type: ignore[no-untyped-def]
    # Issue 10: each dashboard page constant in the number of rows (events and attempts come in fixed queries).
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    browser = Client()
    browser.force_login(project.owner)
    page = f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert browser.get(page).status_code == 200
        return len(captured)

    services.send_test_event(endpoint=endpoint)
    one = queries()
    for _ in range(12):
        services.send_test_event(endpoint=endpoint)
    assert queries() == one


def test_a_delivery_failing_while_the_endpoint_is_disabled_is_not_sent_again_once_enabled(
    project, receiver: Receiver, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    """The owner disables the endpoint while a delivery is being sent, and it fails: the disabling ended the
    delivery (``pending_stopped``), so the attempt's own record must not make it pending again, to be sent once
    the endpoint is enabled (deliveries waiting for a retry end when it is disabled, docs/api.md)."""
    endpoint = services.create_endpoint(project=project, url=receiver.url)
    receiver.secret = endpoint.secret
    uploads.create_session(project=project, title="Party")

    def disabled_meanwhile(*args: Any, **kwargs: Any) -> int:
        services.update_endpoint(endpoint=endpoint, enabled=False, actor=project.owner)
        return 503

    monkeypatch.setattr(services, "_post", disabled_meanwhile)
    assert services.run_due() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.next_attempt_at) == (DeliveryStatus.FAILED, None)
    monkeypatch.undo()
    services.update_endpoint(endpoint=endpoint, enabled=True, actor=project.owner)
    with time_machine.travel(dt.datetime.now(tz=dt.UTC) + dt.timedelta(days=1)):
        services.run_due()
    assert receiver.requests == []


def test_an_endpoint_deleted_while_its_delivery_is_being_sent_ends_the_attempt_quietly(
    project, receiver: Receiver, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    """The owner deletes the endpoint while a delivery to it is on the wire: its deliveries went with it, so the
    attempt has nothing left to record. Recording it anyway failed the worker's task (``DatabaseError``: an update
    of a deleted row) and stopped ``run_due`` before the other due deliveries."""
    doomed = services.create_endpoint(project=project, url=receiver.url)
    kept = services.create_endpoint(project=project, url=receiver.url)
    receiver.secret = kept.secret
    uploads.create_session(project=project, title="Party")

    def deleted_meanwhile(url: str, *, body: bytes, headers: dict[str, str], client: Any) -> int:
        if WebhookEndpoint.objects.filter(pk=doomed.pk).exists():
            services.delete_endpoint(endpoint=doomed, actor=project.owner)
            return 204
        return 204

    monkeypatch.setattr(services, "_post", deleted_meanwhile)
    assert services.run_due() == 2
    delivery = WebhookDelivery.objects.get()  # the deleted endpoint's is gone, the other one was sent
    assert (delivery.endpoint_id, delivery.status) == (kept.pk, DeliveryStatus.SUCCEEDED)


def test_a_blocked_attempt_with_a_long_host_name_is_recorded(project) -> None:  # type: ignore[no-untyped-def]
    """A URL's host may be longer than a name any resolver looks up (labels of up to 63 characters each, as the
    URL check allows): "blocked: cannot resolve <host>" was recorded whole, past the error's 300 characters, so
    on PostgreSQL every attempt's record failed (the worker's task with it) and the log never showed a try."""
    host = ".".join(["a" * 60] * 5) + ".example.com"
    endpoint = services.create_endpoint(project=project, url="https://a.example/hooks")
    # Saved before URLs were refused past a name's 253 characters (core.validation): the attempt still copes.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"https://{host}/hooks")
    uploads.create_session(project=project, title="Party")
    services.run_due()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    [attempt] = delivery.attempt_log.all()
    assert attempt.error.startswith("blocked: cannot resolve aaaa") and len(attempt.error) <= 300
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.PENDING, 1, attempt.error)


def test_a_pending_delivery_whose_task_was_lost_is_queued_again_by_housekeeping(project, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    """Each attempt's next look is a queued task. One lost (it failed inside its claim's transaction, or the
    housekeeping gave it up as abandoned) left the delivery pending for ever: the hourly pass queues a delivery
    still pending 15 minutes past its time again (attempt() claims it once, whichever task comes first)."""
    from django_tasks_db.models import DBTaskResult

    from apertur.core import housekeeping

    services.create_endpoint(project=project, url=receiver.url)
    uploads.create_session(project=project, title="Party")
    delivery = WebhookDelivery.objects.get()
    DBTaskResult.objects.all().delete()  # its task is lost
    due = delivery.next_attempt_at
    assert due is not None

    assert housekeeping.prune(now=due + dt.timedelta(minutes=14))["overdue_webhook_deliveries"] == 0
    assert not DBTaskResult.objects.exists()
    assert housekeeping.prune(now=due + dt.timedelta(minutes=16))["overdue_webhook_deliveries"] == 1
    task = DBTaskResult.objects.get()
    assert task.task_path == "apertur.webhooks.tasks.deliver_webhook" and task.args_kwargs["args"] == [delivery.pk]


def test_an_endpoints_page_says_each_deliverys_last_response_once(project) -> None:  # type: ignore[no-untyped-def]
    """An error answer is both the status code and the error ("HTTP 503"): the log said "HTTP 503 HTTP 503"."""
    from django.test import Client

    endpoint = services.create_endpoint(project=project, url="https://hooks.example.com/x")
    services.send_test_event(endpoint=endpoint)
    services.send_test_event(endpoint=endpoint)
    failed, succeeded = WebhookDelivery.objects.order_by("pk")
    WebhookDelivery.objects.filter(pk=failed.pk).update(last_status_code=503, last_error="HTTP 503")
    WebhookDelivery.objects.filter(pk=succeeded.pk).update(last_status_code=200, last_error="")
    browser = Client()
    browser.force_login(project.owner)
    html = browser.get(f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/").content.decode()
    assert html.count("HTTP 503") == 1 and html.count("HTTP 200") == 1


def test_a_delivery_does_not_write_its_url_to_the_log(project, receiver: Receiver, caplog: Any) -> None:  # type: ignore[no-untyped-def]
    """An endpoint's URL may hold the receiver's own secret (``?token=…``, a path segment): httpx wrote every
    request's URL to the worker's log at INFO. Each attempt is in the delivery log already."""
    import logging

    endpoint = services.create_endpoint(project=project, url=f"{receiver.url}?token=s3cr3t-in-the-url")
    receiver.secret = endpoint.secret
    services.send_test_event(endpoint=endpoint)
    with caplog.at_level(logging.INFO):
        assert services.run_due() == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED
    assert "s3cr3t-in-the-url" not in caplog.text


def test_the_owner_is_told_once_a_day_when_deliveries_to_an_endpoint_are_given_up(
    project, receiver: Receiver, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:  # type: ignore[no-untyped-def]
    """After the last retry (about a day and a half) a delivery is failed for good, which only its log showed:
    the project's owner is emailed which endpoint and event, the last answer and where to look — once a day per
    endpoint however many events it drops, and never for a test event (its sender is watching the log)."""
    endpoint = services.create_endpoint(project=project, url=receiver.url)
    receiver.up = False
    services.send_test_event(endpoint=endpoint)
    uploads.close_session(session=uploads.create_session(project=project, title="Party"))  # two events
    now = dt.datetime.now(tz=dt.UTC)
    for _ in range(services.MAX_ATTEMPTS + 2):
        now += dt.timedelta(days=2)
        with time_machine.travel(now), django_capture_on_commit_callbacks(execute=True):
            services.run_due()
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.FAILED}
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [project.owner.email]
    assert receiver.url in message.subject
    assert "session.created" in message.body and "HTTP 503" in message.body
    assert f"/projects/{project.public_id}/webhooks/{endpoint.public_id}/" in message.body

    # A day later, another event given up: told again.
    uploads.create_session(project=project, title="Later")
    for _ in range(services.MAX_ATTEMPTS + 2):
        now += dt.timedelta(days=2)
        with time_machine.travel(now), django_capture_on_commit_callbacks(execute=True):
            services.run_due()
    assert len(mailoutbox) == 2


def test_housekeeping_deletes_events_with_their_deliveries_30_days_on_unless_one_is_still_pending(  # type: ignore[no-untyped-def]
    project, receiver: Receiver
) -> None:
    """The delivery log grew for ever (an event, a delivery per endpoint and an attempt per try, for every upload):
    an event goes 30 days after it happened with its deliveries and attempts, once none is still being retried."""
    from apertur.core import housekeeping
    from apertur.webhooks.models import DeliveryAttempt

    endpoint = services.create_endpoint(project=project, url=receiver.url)
    receiver.secret = endpoint.secret
    with time_machine.travel(T0, tick=False):
        delivered = services.emit(project=project, type="session.created", data={"n": 1})
        services.run_due()
        receiver.up = False
        retrying = services.emit(project=project, type="session.created", data={"n": 2})
        services.run_due()
        quiet = create_project(owner=project.owner, name="No endpoints")
        unsent = services.emit(project=quiet, type="session.created", data={"n": 3})  # no delivery to wait for
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        newer = services.emit(project=project, type="session.created", data={"n": 4})
    WebhookDelivery.objects.filter(event=retrying).update(next_attempt_at=T0 + dt.timedelta(days=40))
    assert WebhookDelivery.objects.get(event=delivered).status == DeliveryStatus.SUCCEEDED
    assert not WebhookDelivery.objects.filter(event=unsent).exists()
    assert DeliveryAttempt.objects.count() == 2

    assert housekeeping.prune(now=T0 + dt.timedelta(days=30))["old_webhook_events"] == 0  # not older than 30 days
    assert housekeeping.prune(now=T0 + dt.timedelta(days=30, seconds=1))["old_webhook_events"] == 2
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {retrying.pk, newer.pk}
    assert set(WebhookDelivery.objects.values_list("event_id", flat=True)) == {retrying.pk, newer.pk}
    assert list(DeliveryAttempt.objects.values_list("delivery__event_id", flat=True)) == [retrying.pk]

    WebhookDelivery.objects.filter(event=retrying).update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    assert housekeeping.prune(now=T0 + dt.timedelta(days=30, seconds=1))["old_webhook_events"] == 1
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [newer.pk]
    assert not DeliveryAttempt.objects.exists()
