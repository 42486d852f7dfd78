"""Uploads copied to an HTTPS endpoint and to an S3-compatible bucket (moto's S3 server on loopback)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import time_machine

from apertur.core import clock, outbound
from apertur.projects.services import create_project
from apertur.testing import PNG_BYTES, image_file, make_user
from apertur.uploads import destinations, services
from apertur.uploads.errors import InvalidDestination
from apertur.uploads.models import Destination, DestinationDelivery
from apertur.webhooks import signing

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(settings: Any):  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    return create_project(owner=make_user(), name="Weddings")


class FileReceiver:
    def __init__(self) -> None:
        self.up = True
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                self.send_response(200 if receiver.up else 500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/incoming"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[FileReceiver]:
    r = FileReceiver()
    yield r
    r.close()


def test_https_destination_gets_the_signed_file(project, receiver: FileReceiver) -> None:  # type: ignore[no-untyped-def]
    destination = destinations.create_https_destination(project=project, name="Our archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    upload = services.accept_upload(session=session, file=image_file("a b.png"))
    assert destinations.run_due() == 1
    [request] = receiver.received
    assert request["body"] == PNG_BYTES
    headers = request["headers"]
    assert headers["content-type"] == "image/png"
    assert headers["apertur-upload-id"] == upload.public_id
    assert headers["apertur-file-name"] == "a%20b.png"
    assert signing.verify(
        secret=destination.secret,
        msg_id=headers["webhook-id"],
        timestamp=int(headers["webhook-timestamp"]),
        body=request["body"],
        header=headers["webhook-signature"],
    )
    destination.refresh_from_db()
    assert destination.status == "active" and destination.last_delivery_at is not None


def test_failing_destination_retries_and_reports(project, receiver: FileReceiver) -> None:  # type: ignore[no-untyped-def]
    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    receiver.up = False
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())
    start = dt.datetime.now(tz=dt.UTC)
    destinations.run_due()
    destination.refresh_from_db()
    assert destination.status == "failing" and "HTTP 500" in destination.last_error
    receiver.up = True
    with time_machine.travel(start + dt.timedelta(seconds=31)):
        assert destinations.run_due() == 1
    destination.refresh_from_db()
    assert destination.status == "active"
    assert DestinationDelivery.objects.get().status == "succeeded"
    assert len(receiver.received) == 2


def test_s3_destination_puts_the_object(project) -> None:  # type: ignore[no-untyped-def]
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="AKIATEST",
            aws_secret_access_key="secret",
        )
        s3.create_bucket(Bucket="wedding-photos")
        destination = destinations.create_s3_destination(
            project=project,
            name="Bucket",
            bucket="wedding-photos",
            access_key_id="AKIATEST",
            secret_access_key="secret",
            endpoint_url=endpoint,
            prefix="apertur/",
        )
        session = services.create_session(project=project, title="Party")
        upload = services.accept_upload(session=session, file=image_file())
        assert destinations.run_due() == 1
        key = destinations.s3_key(destination, upload)
        assert key.startswith("apertur/") and key.endswith(f"{upload.public_id}.png")
        stored = s3.get_object(Bucket="wedding-photos", Key=key)
        assert stored["Body"].read() == PNG_BYTES
        assert stored["ContentType"] == "image/png"
        assert stored["Metadata"]["apertur-upload-id"] == upload.public_id
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("kind", "kwargs", "field"),
    [
        ("https", {"name": "x", "url": "http://archive.example.com/in"}, "url"),
        ("https", {"name": "", "url": "https://archive.example.com/in"}, "name"),
        ("s3", {"name": "x", "bucket": "Bad_Bucket", "access_key_id": "a", "secret_access_key": "b"}, "bucket"),
        ("s3", {"name": "x", "bucket": "photos", "access_key_id": "", "secret_access_key": "b"}, "access_key_id"),
        (
            "s3",
            {
                "name": "x",
                "bucket": "photos",
                "access_key_id": "a",
                "secret_access_key": "b",
                "endpoint_url": "ftp://minio.local",
            },
            "endpoint_url",
        ),
    ],
)
def test_bad_destination_input_stores_nothing(project, kind: str, kwargs: dict, field: str) -> None:  # type: ignore[no-untyped-def]
    create = destinations.create_https_destination if kind == "https" else destinations.create_s3_destination
    with pytest.raises(InvalidDestination) as info:
        create(project=project, **kwargs)
    assert info.value.field == field
    assert Destination.objects.count() == 0


def test_private_addresses_are_never_contacted(project, settings: Any) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    with pytest.raises(InvalidDestination, match="must be public"):
        destinations.create_https_destination(project=project, name="x", url="https://10.1.2.3/in")
    with pytest.raises(InvalidDestination, match="must be public"):
        destinations.create_s3_destination(
            project=project,
            name="x",
            bucket="photos",
            endpoint_url="https://169.254.169.254",
            access_key_id="a",
            secret_access_key="b",
        )
    # Saved before the rule applied at creation (or resolving elsewhere since): never contacted either.
    destination = destinations.create_https_destination(project=project, name="x", url="https://hooks.example.com/in")
    Destination.objects.filter(pk=destination.pk).update(config={"url": "https://10.1.2.3/in"})
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())
    destinations.run_due()
    assert DestinationDelivery.objects.get().last_error.startswith("blocked:")


def test_a_destination_name_that_rebinds_to_loopback_is_never_contacted(
    project, receiver: FileReceiver, settings: Any, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    from apertur.testing import fake_dns

    port = receiver.server.server_address[1]
    fake_dns(monkeypatch, {"archive.rebind.example": [["93.184.215.14"], ["93.184.215.14"], ["127.0.0.1"]]})
    destination = destinations.create_https_destination(
        project=project, name="x", url="https://archive.rebind.example/in"
    )
    Destination.objects.filter(pk=destination.pk).update(config={"url": f"http://archive.rebind.example:{port}/in"})
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())
    destinations.run_due()
    assert DestinationDelivery.objects.get().last_error.startswith("blocked: archive.rebind.example resolves")
    assert receiver.received == []


@pytest.fixture
def moto_port() -> Iterator[int]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield int(server.get_host_and_port()[1])
    finally:
        server.stop()


def _bucket(port: int) -> Any:
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="AKIATEST",
        aws_secret_access_key="secret",
    )
    s3.create_bucket(Bucket="wedding-photos")
    return s3


def test_an_s3_endpoint_is_connected_to_only_at_a_checked_address(
    project, settings: Any, monkeypatch: Any, moto_port: int
) -> None:  # type: ignore[no-untyped-def]
    """The endpoint's name is public when saved and checked, loopback when the request connects (DNS rebinding):
    nothing is sent. (A custom endpoint is addressed path-style, so its own name is the one connected to.)"""
    from apertur.testing import fake_dns

    s3 = _bucket(moto_port)
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    asked = fake_dns(monkeypatch, {"s3.rebind.example": [["93.184.215.14"], ["93.184.215.14"], ["127.0.0.1"]]})
    destination = destinations.create_s3_destination(
        project=project,
        name="Bucket",
        bucket="wedding-photos",
        access_key_id="AKIATEST",
        secret_access_key="secret",
        endpoint_url="https://s3.rebind.example",
    )
    # moto speaks plain HTTP on its port (only loopback may be http when saved).
    config = {**destination.config, "endpoint_url": f"http://s3.rebind.example:{moto_port}"}
    Destination.objects.filter(pk=destination.pk).update(config=config)
    services.accept_upload(session=services.create_session(project=project, title="Party"), file=image_file())
    assert destinations.run_due() == 1
    delivery = DestinationDelivery.objects.get()
    assert delivery.status == "pending"  # a failed attempt, retried on schedule
    assert delivery.last_error.startswith("blocked: ") and "resolves to a non-public address" in delivery.last_error
    assert asked == ["s3.rebind.example"] * 3  # saved, checked, connected: all by the check's resolution
    # moto's buckets live in the test process (shared by every server it starts): look for this project's key.
    assert s3.list_objects_v2(Bucket="wedding-photos", Prefix=project.public_id).get("KeyCount") == 0


def test_an_s3_error_is_parsed_from_the_checked_clients_answer(project, moto_port: int) -> None:  # type: ignore[no-untyped-def]
    _bucket(moto_port)
    destinations.create_s3_destination(
        project=project,
        name="Bucket",
        bucket="no-such-bucket",
        access_key_id="AKIATEST",
        secret_access_key="secret",
        endpoint_url=f"http://127.0.0.1:{moto_port}",
    )
    services.accept_upload(session=services.create_session(project=project, title="Party"), file=image_file())
    assert destinations.run_due() == 1
    assert "NoSuchBucket" in DestinationDelivery.objects.get().last_error


def _signatures_verify(request: dict[str, Any], secret: str) -> bool:
    headers = request["headers"]
    return signing.verify(
        secret=secret,
        msg_id=headers["webhook-id"],
        timestamp=int(headers["webhook-timestamp"]),
        body=request["body"],
        header=headers["webhook-signature"],
    )


T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def test_rolling_an_https_destinations_secret_signs_with_both_until_the_overlap_ends(
    project, receiver: FileReceiver
) -> None:  # type: ignore[no-untyped-def]
    from apertur.core.models import AuditEvent

    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    old = destination.secret
    with time_machine.travel(T0, tick=False):
        rolled = destinations.rotate_secret(
            destination=destination, expire_previous_in=dt.timedelta(hours=1), actor=project.owner, ip="203.0.113.9"
        )
    assert rolled.secret != old and rolled.secret.startswith("whsec_")
    stored = Destination.objects.get()
    assert (stored.secret, stored.previous_secret) == (rolled.secret, old)
    assert stored.previous_secret_expires_at == T0 + dt.timedelta(hours=1)
    event = AuditEvent.objects.get(action="destination.secret_rotated")
    assert event.data == {
        "previous_secret_expires_at": (T0 + dt.timedelta(hours=1)).isoformat(),
        "dropped_older_previous_secret": False,
    }
    assert old not in str(event.data) and rolled.secret not in str(event.data)

    session = services.create_session(project=project, title="Party")
    with time_machine.travel(T0 + dt.timedelta(minutes=59), tick=False):
        services.accept_upload(session=session, file=image_file())
        assert destinations.run_due() == 1
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):  # the expiry instant: no longer
        services.accept_upload(session=session, file=image_file("b.png"))
        assert destinations.run_due() == 1
    during, after = receiver.received
    assert len(during["headers"]["webhook-signature"].split()) == 2
    assert _signatures_verify(during, rolled.secret) and _signatures_verify(during, old)
    assert len(after["headers"]["webhook-signature"].split()) == 1
    assert _signatures_verify(after, rolled.secret) and not _signatures_verify(after, old)


@pytest.mark.parametrize("duration", [dt.timedelta(seconds=-1), dt.timedelta(days=7, seconds=1), 3600, None])
def test_bad_roll_overlaps_are_refused_and_change_nothing(project, duration: Any) -> None:  # type: ignore[no-untyped-def]
    destination = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    before = Destination.objects.values().get()
    with pytest.raises(InvalidDestination, match="up to 7 days") as info:
        destinations.rotate_secret(destination=destination, expire_previous_in=duration)
    assert info.value.field == "expire_previous_in"
    assert Destination.objects.values().get() == before


def test_an_s3_destination_has_no_signing_secret_to_roll_but_replaces_its_access_key(project) -> None:  # type: ignore[no-untyped-def]
    from apertur.core.models import AuditEvent

    s3 = destinations.create_s3_destination(
        project=project, name="Bucket", bucket="photos", access_key_id="AKIAOLD", secret_access_key="old-secret"
    )
    with pytest.raises(InvalidDestination, match="Only an HTTPS destination"):
        destinations.rotate_secret(destination=s3, expire_previous_in=dt.timedelta(hours=1))
    with pytest.raises(InvalidDestination, match="access key id and the secret") as info:
        destinations.replace_s3_credentials(destination=s3, access_key_id="AKIANEW", secret_access_key="  ")
    assert info.value.field == "access_key_id"
    assert Destination.objects.get().config["access_key_id"] == "AKIAOLD"
    destinations.replace_s3_credentials(
        destination=s3, access_key_id=" AKIANEW ", secret_access_key="new-secret", actor=project.owner
    )
    stored = Destination.objects.get()
    assert (stored.config["access_key_id"], stored.secret, stored.config["bucket"]) == (
        "AKIANEW",
        "new-secret",
        "photos",
    )
    event = AuditEvent.objects.get(action="destination.credentials_replaced")
    assert event.data == {"access_key_id": "AKIANEW"}
    https = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    with pytest.raises(InvalidDestination, match="Only an S3 destination"):
        destinations.replace_s3_credentials(destination=https, access_key_id="A", secret_access_key="B")


def test_housekeeping_forgets_a_destinations_previous_secret_once_its_overlap_has_ended(project) -> None:  # type: ignore[no-untyped-def]
    from apertur.core import housekeeping

    destination = destinations.create_https_destination(project=project, name="Archive", url="https://a.example.com/in")
    with time_machine.travel(T0, tick=False):
        destinations.rotate_secret(destination=destination, expire_previous_in=dt.timedelta(hours=3))
    assert housekeeping.prune(now=T0 + dt.timedelta(hours=2))["previous_signing_secrets"] == 0
    assert Destination.objects.get().previous_secret
    assert housekeeping.prune(now=T0 + dt.timedelta(hours=3))["previous_signing_secrets"] == 1
    stored = Destination.objects.get()
    assert (stored.previous_secret, stored.previous_secret_expires_at) == ("", None)


def test_a_disabled_destination_gets_no_more_copies_even_of_uploads_already_queued(
    project, receiver: FileReceiver
) -> None:  # type: ignore[no-untyped-def]
    """Disabling used to be a status nothing set, and a queued copy went out anyway (and set the destination
    back to active): a claimed account's destinations must stop at once (accounts/tests/test_claim.py)."""
    from apertur.core.models import AuditEvent

    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())  # queued before the destination is disabled
    destinations.disable_destination(destination=destination, actor=project.owner)
    services.accept_upload(session=session, file=image_file())  # after: not even queued
    delivery = DestinationDelivery.objects.get()  # ended by the disabling itself
    assert delivery.status == "failed" and delivery.last_error == "not sent: the destination is disabled"
    # One queued in a race with the disabling (scheduled from a read made before it) stops at its attempt.
    late = DestinationDelivery.objects.create(
        upload=services.accept_upload(session=session, file=image_file()), destination=destination
    )
    assert destinations.run_due() == 0 and DestinationDelivery.objects.filter(status="pending").count() == 1
    destinations.attempt(delivery_id=late.pk)
    late.refresh_from_db()
    assert (late.status, late.last_error) == ("failed", "not sent: the destination is disabled")
    assert receiver.received == []
    destination.refresh_from_db()
    assert destination.status == "disabled"
    assert AuditEvent.objects.filter(action="destination.disabled", object_id=str(destination.pk)).count() == 1
    destinations.disable_destination(destination=destination)  # once is enough: no second event
    assert AuditEvent.objects.filter(action="destination.disabled").count() == 1


def test_an_enabled_destination_copies_the_next_upload_but_not_those_made_while_it_was_disabled(
    project, receiver: FileReceiver
) -> None:  # type: ignore[no-untyped-def]
    from apertur.core.models import AuditEvent

    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    receiver.up = False
    services.accept_upload(session=session, file=image_file("first.png"))
    destinations.run_due()
    destination.refresh_from_db()
    assert destination.status == "failing" and destination.last_error
    receiver.received.clear()
    destinations.disable_destination(destination=destination)  # the first copy's retry ends now
    first = DestinationDelivery.objects.get(upload__original_name="first.png")
    assert (first.status, first.last_error, first.next_attempt_at) == ("failed", destinations.DISABLED_ERROR, None)
    stopped = AuditEvent.objects.get(action="destination.disabled").data
    assert stopped == {"name": "Archive", "pending_stopped": 1}
    services.accept_upload(session=session, file=image_file("meanwhile.png"))
    receiver.up = True
    enabled = destinations.enable_destination(destination=destination, actor=project.owner, ip="203.0.113.9")
    assert (enabled.status, enabled.last_error) == ("active", "")  # the pause's error goes with it
    stored = Destination.objects.get()
    assert (stored.status, stored.last_error) == ("active", "")
    event = AuditEvent.objects.get(action="destination.enabled")
    assert (event.object_id, event.ip, event.data) == (str(destination.pk), "203.0.113.9", {"name": "Archive"})
    destinations.enable_destination(destination=destination)  # already enabled: no second event
    assert AuditEvent.objects.filter(action="destination.enabled").count() == 1
    with time_machine.travel(clock.now() + dt.timedelta(days=1)):  # past the first copy's retry time
        destinations.run_due()  # the first copy ended when disabled; the one made meanwhile was never queued
        assert receiver.received == []
        services.accept_upload(session=session, file=image_file("after.png"))
        destinations.run_due()
    assert [r["headers"]["apertur-file-name"] for r in receiver.received] == ["after.png"]
    assert DestinationDelivery.objects.get(upload__original_name="first.png").status == "failed"


def test_a_copy_under_way_when_the_destination_is_disabled_does_not_turn_it_back_on(
    project, receiver: FileReceiver, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())
    send = destinations._send_https

    def disabled_meanwhile(*args: Any) -> None:
        destinations.disable_destination(destination=destination)
        send(*args)

    monkeypatch.setattr(destinations, "_send_https", disabled_meanwhile)
    destinations.run_due()
    destination.refresh_from_db()
    assert destination.status == "disabled"


def test_a_copy_failing_while_the_destination_is_disabled_is_not_sent_again_once_enabled(
    project, receiver: FileReceiver, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    """The owner disables the destination while a copy is being sent, and the send fails: the disabling ended the
    copy (counted in ``pending_stopped``), so the attempt's own record must not make it pending again, to go out
    once the destination is enabled (the disable page says copies waiting for a retry are not sent)."""
    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file("before.png"))

    def disabled_meanwhile(*args: Any) -> None:
        destinations.disable_destination(destination=destination, actor=project.owner)
        raise RuntimeError("HTTP 500")

    monkeypatch.setattr(destinations, "_send_https", disabled_meanwhile)
    assert destinations.run_due() == 1
    delivery = DestinationDelivery.objects.get()
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)
    monkeypatch.undo()
    destinations.enable_destination(destination=destination, actor=project.owner)
    with time_machine.travel(clock.now() + dt.timedelta(days=1)):
        destinations.run_due()
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_disabling_while_a_failed_copy_is_being_recorded_does_not_deadlock(
    project, receiver: FileReceiver, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL row locks: recording an attempt locked the copy then the destination, and disabling (which now
    ends the pending copies) locks the destination then the copies. Both at once deadlocked, and PostgreSQL killed
    one: the owner's disable (or an account claim turning destinations off) answered 500."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())
    delivery = DestinationDelivery.objects.get()
    receiver.up = False
    recorded = threading.Event()
    save = DestinationDelivery.save

    def save_then_pause(self: DestinationDelivery, *args: Any, **kwargs: Any) -> None:
        save(self, *args, **kwargs)
        if "delivered_at" in (kwargs.get("update_fields") or ()):  # the attempt's record, in its transaction
            recorded.set()
            time.sleep(1.5)  # the disabling meanwhile takes the destination's lock and waits for the copy's

    monkeypatch.setattr(DestinationDelivery, "save", save_then_pause)
    errors: list[BaseException] = []

    def run(work: Any) -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def disable() -> None:
        assert recorded.wait(10)
        destinations.disable_destination(destination=destination, actor=project.owner)

    threads = [
        threading.Thread(target=run, args=(lambda: destinations.attempt(delivery_id=delivery.pk),)),
        threading.Thread(target=run, args=(disable,)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    delivery.refresh_from_db()
    destination.refresh_from_db()
    assert (destination.status, delivery.status, delivery.next_attempt_at) == ("disabled", "failed", None)


# --- a receiver's answer, its pace, and an attempt in flight -------------------------------------------------


def _raw_server(answer: Any) -> tuple[str, Any]:
    """A one-connection HTTP server on loopback whose answer ``answer(conn, stop)`` writes; returns its URL and a
    function that stops it."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(1 << 20)
                answer(conn, stop)
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        listener.close()
        thread.join(10)

    return f"http://127.0.0.1:{listener.getsockname()[1]}/incoming", close


def _endless_answer(conn: Any, stop: threading.Event) -> None:
    """A 200 whose body never ends (a huge Content-Length, then bytes for 8 s at most, so the test ends)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\n")
    deadline = time.monotonic() + 8
    while not stop.is_set() and time.monotonic() < deadline:
        conn.sendall(b"x" * 65536)


def _copy_one_upload(project: Any) -> float:
    """Upload one photo to a new link of ``project`` and run the copies due; the seconds the run took."""
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())
    started = time.monotonic()
    destinations.run_due()
    return time.monotonic() - started


def test_an_https_destinations_answer_body_is_not_read(project) -> None:  # type: ignore[no-untyped-def]
    """A receiver that answers 200 and then an endless body must not have it read into the worker's memory (nor
    hold the attempt while it streams): the status line and headers are the answer."""
    url, close = _raw_server(_endless_answer)
    try:
        destinations.create_https_destination(project=project, name="Archive", url=url)
        elapsed = _copy_one_upload(project)
    finally:
        close()
    delivery = DestinationDelivery.objects.get()
    assert delivery.status == "succeeded", delivery.last_error
    assert elapsed < 5  # without the fix the body is read until the server gives up (8 s), then fails


def test_an_s3_answer_is_read_only_up_to_a_bound(project) -> None:  # type: ignore[no-untyped-def]
    url, close = _raw_server(_endless_answer)
    try:
        destinations.create_s3_destination(
            project=project,
            name="Bucket",
            bucket="photos",
            access_key_id="AKIA",
            secret_access_key="secret",
            endpoint_url=url.removesuffix("/incoming"),
        )
        elapsed = _copy_one_upload(project)
    finally:
        close()
    delivery = DestinationDelivery.objects.get()
    assert delivery.status == "pending" and "answer is over" in delivery.last_error, delivery.last_error
    assert elapsed < 5


def test_a_copy_is_bounded_even_when_the_receiver_drips_its_answer(project, monkeypatch: Any) -> None:  # type: ignore[no-untyped-def]
    import httpx

    monkeypatch.setattr(destinations, "ATTEMPT_SECONDS", 1.5, raising=False)
    monkeypatch.setattr(destinations, "TIMEOUT", httpx.Timeout(1.0, connect=1.0), raising=False)

    def drip(conn: Any, stop: threading.Event) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 40:  # 40 bytes, one every 0.5 s
            if stop.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(0.5)

    url, close = _raw_server(drip)
    try:
        destinations.create_https_destination(project=project, name="Archive", url=url)
        elapsed = _copy_one_upload(project)
    finally:
        close()
    delivery = DestinationDelivery.objects.get()
    assert "timed out after 1.5 s" in delivery.last_error and delivery.status == "pending"
    assert elapsed < 10  # without the deadline the drip holds it 20 s


def test_a_copy_in_flight_is_not_sent_twice_and_its_retry_counts_from_the_failure(
    project, receiver: FileReceiver, monkeypatch: Any
) -> None:  # type: ignore[no-untyped-def]
    """A copy still being sent when its retry delay (30 s after the claim) has passed is not claimed and sent
    again by another worker; once it fails, the next attempt is 30 s after the failure."""
    destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    receiver.up = False
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())
    real_send = destinations._send_https
    sends: list[int] = []

    def slow_send(*args: Any, **kwargs: Any) -> None:
        sends.append(1)
        if len(sends) == 1:
            # 40 s into a slow transfer, another worker looks at the copy: not due.
            with time_machine.travel(clock.now() + dt.timedelta(seconds=40), tick=False):
                destinations.run_due()
        real_send(*args, **kwargs)

    monkeypatch.setattr(destinations, "_send_https", slow_send)
    assert destinations.run_due() == 1
    delivery = DestinationDelivery.objects.get()
    assert len(sends) == 1 and delivery.attempts == 1 and len(receiver.received) == 1
    assert delivery.next_attempt_at - clock.now() >= dt.timedelta(seconds=29)


@pytest.mark.parametrize("deleted", ["upload", "destination"])
def test_a_copy_whose_upload_or_destination_is_deleted_while_it_is_sent_ends_the_attempt_quietly(
    project, receiver: FileReceiver, monkeypatch: Any, deleted: str
) -> None:  # type: ignore[no-untyped-def]
    """The owner deletes the upload (or the destination) while its copy is on the wire: the copy's row went with
    it, so the attempt has nothing left to record. Recording it anyway failed the worker's task (``DatabaseError``:
    an update of a deleted row) and stopped ``run_due`` before the other due copies."""
    from apertur.uploads.models import Upload

    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    doomed = services.accept_upload(session=session, file=image_file("doomed.png"))
    kept = services.accept_upload(session=session, file=image_file("kept.png"))
    send = destinations._send_https

    def deleted_meanwhile(destination_: Destination, upload: Any, body: bytes) -> None:
        if upload.pk == doomed.pk:
            if deleted == "upload":
                Upload.objects.filter(pk=doomed.pk).delete()
            else:
                destinations.delete_destination(destination=destination, actor=project.owner)
        send(destination_, upload, body)

    monkeypatch.setattr(destinations, "_send_https", deleted_meanwhile)
    DestinationDelivery.objects.filter(upload=kept).update(next_attempt_at=clock.now() + dt.timedelta(microseconds=1))
    with time_machine.travel(clock.now() + dt.timedelta(seconds=1)):
        assert destinations.run_due() == 2
    left = list(DestinationDelivery.objects.values_list("upload_id", "status"))
    assert left == ([(kept.pk, "succeeded")] if deleted == "upload" else [])


def test_a_secret_access_key_too_long_to_store_is_refused_not_a_server_error(project) -> None:  # type: ignore[no-untyped-def]
    """The secret access key is kept in a 200-character column: a longer one (a whole credentials file pasted)
    failed the save on PostgreSQL (a 500 on the owner's form), and SQLite kept it silently. Refused on its field,
    with nothing stored or changed, when added and when replaced."""
    too_long = "s" * 201
    with pytest.raises(InvalidDestination) as info:
        destinations.create_s3_destination(
            project=project, name="Bucket", bucket="photos", access_key_id="AKIA", secret_access_key=too_long
        )
    assert info.value.field == "secret_access_key"
    assert Destination.objects.count() == 0
    s3 = destinations.create_s3_destination(
        project=project, name="Bucket", bucket="photos", access_key_id="AKIA", secret_access_key="s" * 200
    )
    with pytest.raises(InvalidDestination) as info:
        destinations.replace_s3_credentials(destination=s3, access_key_id="AKIANEW", secret_access_key=too_long)
    assert info.value.field == "secret_access_key"
    stored = Destination.objects.get()
    assert (stored.config["access_key_id"], stored.secret) == ("AKIA", "s" * 200)


def test_a_blocked_copy_with_a_long_host_name_is_recorded(project) -> None:  # type: ignore[no-untyped-def]
    """As for webhooks: "blocked: cannot resolve <host>" past the 300 characters of ``last_error`` failed the
    copy's record (and the worker's task) on PostgreSQL, and the destination never said why it failed."""
    host = ".".join(["a" * 60] * 5) + ".example.com"
    destination = destinations.create_https_destination(project=project, name="Archive", url="https://a.example/in")
    # Saved before URLs were refused past a name's 253 characters (core.validation): the attempt still copes.
    Destination.objects.filter(pk=destination.pk).update(config={**destination.config, "url": f"https://{host}/in"})
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file())
    destinations.run_due()
    delivery = DestinationDelivery.objects.get()
    assert delivery.last_error.startswith("blocked: cannot resolve aaaa") and len(delivery.last_error) <= 300
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    destination.refresh_from_db()
    assert (destination.status, destination.last_error) == ("failing", delivery.last_error)


def test_a_pending_copy_whose_task_was_lost_is_queued_again_by_housekeeping(project, receiver: FileReceiver) -> None:  # type: ignore[no-untyped-def]
    """As for webhook deliveries: a copy still pending 15 minutes past its time has lost its task; the hourly
    housekeeping queues it again instead of leaving the customer's file uncopied for ever."""
    from django_tasks_db.models import DBTaskResult

    from apertur.core import housekeeping

    destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file("photo.png"))
    copy = DestinationDelivery.objects.get()
    DBTaskResult.objects.all().delete()  # its task is lost
    due = copy.next_attempt_at
    assert due is not None

    assert housekeeping.prune(now=due + dt.timedelta(minutes=14))["overdue_destination_copies"] == 0
    assert housekeeping.prune(now=due + dt.timedelta(minutes=16))["overdue_destination_copies"] == 1
    task = DBTaskResult.objects.get()
    assert task.task_path.startswith("apertur.uploads.") and task.args_kwargs["args"] == [copy.pk]


def test_the_owner_is_told_once_a_day_when_copies_to_a_destination_are_given_up(
    project, receiver: FileReceiver, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any
) -> None:  # type: ignore[no-untyped-def]
    """A copy failed for good after its last retry means a guest's photo never reached the owner's storage; a later
    copy that succeeds sets the destination back to active, so only its copies log kept it. The owner is emailed
    the destination, the file and the last error, once a day per destination."""
    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    receiver.up = False
    session = services.create_session(project=project, title="Party")
    services.accept_upload(session=session, file=image_file("first.png"))
    services.accept_upload(session=session, file=image_file("second.png"))
    now = clock.now()
    for _ in range(outbound.MAX_ATTEMPTS + 2):
        now += dt.timedelta(days=2)
        with time_machine.travel(now), django_capture_on_commit_callbacks(execute=True):
            destinations.run_due()
    assert set(DestinationDelivery.objects.values_list("status", flat=True)) == {"failed"}
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [project.owner.email] and "Archive" in message.subject
    assert "first.png" in message.body and "HTTP 500" in message.body
    assert f"/projects/{project.public_id}/destinations/{destination.public_id}/" in message.body


def test_a_copy_whose_file_left_storage_says_so_without_the_servers_path(project, receiver: FileReceiver) -> None:  # type: ignore[no-untyped-def]
    """The copy's error is shown to the owner: a missing stored file read "FileNotFoundError: [Errno 2] No such file
    or directory: '/srv/…/media/…'", a path of Apertur's server."""
    destination = destinations.create_https_destination(project=project, name="Archive", url=receiver.url)
    session = services.create_session(project=project, title="Party")
    upload = services.accept_upload(session=session, file=image_file("photo.png"))
    path = upload.file.path
    upload.file.storage.delete(upload.file.name)
    assert destinations.run_due() == 1
    copy = DestinationDelivery.objects.get(destination=destination)
    assert copy.last_error == "The photo's file is no longer in Apertur's storage."
    assert path not in copy.last_error and receiver.received == []
