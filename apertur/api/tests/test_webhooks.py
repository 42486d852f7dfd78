from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import time_machine
from django.test import Client

from apertur.api.tests.conftest import Api
from apertur.core.models import AuditEvent
from apertur.oauth.tests.conftest import Flow
from apertur.projects.services import create_project
from apertur.testing import make_user
from apertur.uploads import services as uploads
from apertur.webhooks import services, signing
from apertur.webhooks.models import WebhookEndpoint
from apertur.webhooks.tests.test_services import Captured

pytestmark = pytest.mark.django_db


def test_crud_and_delivery_log(api: Api, flow: Flow, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    created = api.post("/webhooks", {"url": "https://hooks.snapflow.example/apertur", "events": ["upload.created"]})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"].startswith("we_") and body["secret"].startswith("whsec_")
    got = api.get(f"/webhooks/{body['id']}").json()
    assert "secret" not in got  # the key itself, not a null: only create and rotate-secret carry it
    assert got["previous_secret_expires_at"] is None
    listed = api.get("/webhooks").json()["data"]
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    patched = Client().patch(
        f"/api/v1/webhooks/{body['id']}",
        {"events": ["*"], "enabled": False},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert patched.status_code == 200 and patched.json()["events"] == ["*"] and patched.json()["enabled"] is False
    assert "secret" not in patched.json()
    test = api.post(f"/webhooks/{body['id']}/test")
    assert test.status_code == 202 and test.json()["event_type"] == "webhook.test"
    log = api.get(f"/webhooks/{body['id']}/deliveries").json()
    assert log["data"][0]["event_type"] == "webhook.test"
    deleted = Client().delete(f"/api/v1/webhooks/{body['id']}", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert deleted.status_code == 204
    assert WebhookEndpoint.objects.count() == 0


def test_bad_url_is_422_and_stores_nothing(api: Api) -> None:
    response = api.post("/webhooks", {"url": "http://hooks.example.com/x"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "url"
    assert "must use https" in response.json()["error"]["message"]
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/h",
        "https://10.0.0.1/h",
        "https://169.254.169.254/latest",
        "https://localhost/h",
        "https://0x7f000001/h",
        "https://[::1]/h",
    ],
)
def test_private_urls_are_422_at_creation(api: Api, settings: Any, url: str) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    response = api.post("/webhooks", {"url": url})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook_endpoint" and error["field"] == "url"
    assert "must be public" in error["message"]
    assert WebhookEndpoint.objects.count() == 0


def test_an_empty_event_list_is_422(api: Api) -> None:
    response = api.post("/webhooks", {"url": "https://hooks.example.com/x", "events": []})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "events"
    assert WebhookEndpoint.objects.count() == 0


def test_webhook_test_is_not_a_subscription_is_422(api: Api) -> None:
    response = api.post("/webhooks", {"url": "https://hooks.example.com/x", "events": ["webhook.test"]})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_webhook_endpoint", "events")
    assert "cannot be subscribed to" in error["message"]
    assert WebhookEndpoint.objects.count() == 0


def test_needs_webhooks_manage(narrow_api: Api) -> None:
    assert narrow_api.get("/webhooks").status_code == 403
    assert narrow_api.post("/webhooks", {"url": "https://hooks.example.com/x"}).status_code == 403


def test_other_projects_endpoints_are_404(api: Api) -> None:
    other = create_project(owner=make_user(), name="Not mine")
    endpoint = services.create_endpoint(project=other, url="https://hooks.example.com/x")
    assert api.get(f"/webhooks/{endpoint.public_id}").status_code == 404
    deleted = Client().delete(f"/api/v1/webhooks/{endpoint.public_id}", HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert deleted.status_code == 404
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_events_from_api_actions_are_recorded(api: Api, flow: Flow) -> None:
    endpoint = services.create_endpoint(project=flow.project, url="https://hooks.example.com/x")
    session = api.post("/upload-sessions", {"title": "Party"}).json()
    api.post(f"/upload-sessions/{session['id']}/close")
    types = sorted(endpoint.deliveries.values_list("event__type", flat=True))
    assert types == ["session.closed", "session.created"]
    uploads.create_session(project=flow.project, title="another")
    assert endpoint.deliveries.count() == 3


# --- rotate-secret -----------------------------------------------------------------------------------------

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def rotate(api: Api, endpoint_id: str, body: Any = None, *, key: str | None = None) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api.token}"}
    if key:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    raw = b"" if body is None else json.dumps(body)  # None: no body at all
    return Client().generic(
        "POST", f"/api/v1/webhooks/{endpoint_id}/rotate-secret", raw, content_type="application/json", **headers
    )


def test_rotate_secret_returns_the_new_secret_once_and_the_overlap(api: Api) -> None:
    created = api.post("/webhooks", {"url": "https://hooks.example.com/x"}).json()
    with time_machine.travel(T0, tick=False):
        response = rotate(api, created["id"], {"expire_previous_in_seconds": 3600})
    assert response.status_code == 200, response.content
    body = response.json()
    stored = WebhookEndpoint.objects.get()
    assert body["secret"] == stored.secret and body["secret"].startswith("whsec_")
    assert body["secret"] != created["secret"] and stored.previous_secret == created["secret"]
    until = (T0 + dt.timedelta(hours=1)).isoformat()
    assert body["previous_secret_expires_at"] == until
    assert {k: v for k, v in body.items() if k not in {"secret", "previous_secret_expires_at"}} == {
        k: v for k, v in created.items() if k not in {"secret", "previous_secret_expires_at"}
    }
    with time_machine.travel(T0 + dt.timedelta(minutes=59), tick=False):
        got = api.get(f"/webhooks/{created['id']}").json()
        listed = api.get("/webhooks").json()["data"][0]
    assert "secret" not in got and "secret" not in listed
    assert got["previous_secret_expires_at"] == listed["previous_secret_expires_at"] == until
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):
        assert api.get(f"/webhooks/{created['id']}").json()["previous_secret_expires_at"] is None
    audit = AuditEvent.objects.get(action="webhook_endpoint.secret_rotated")
    assert audit.ip == "127.0.0.1" and body["secret"] not in json.dumps(audit.data)


def test_rotate_secret_without_a_body_keeps_the_old_secret_24_hours(api: Api) -> None:
    created = api.post("/webhooks", {"url": "https://hooks.example.com/x"}).json()
    with time_machine.travel(T0, tick=False):
        response = rotate(api, created["id"])
    assert response.status_code == 200, response.content
    assert response.json()["previous_secret_expires_at"] == (T0 + dt.timedelta(hours=24)).isoformat()


def test_rotate_secret_with_zero_stops_the_old_secret_now(api: Api) -> None:
    created = api.post("/webhooks", {"url": "https://hooks.example.com/x"}).json()
    body = rotate(api, created["id"], {"expire_previous_in_seconds": 0}).json()
    assert body["previous_secret_expires_at"] is None
    stored = WebhookEndpoint.objects.get()
    assert stored.signing_secrets(dt.datetime.now(tz=dt.UTC)) == [body["secret"]]
    assert stored.previous_secret == ""


def test_the_longest_overlap_is_seven_days(api: Api) -> None:
    created = api.post("/webhooks", {"url": "https://hooks.example.com/x"}).json()
    with time_machine.travel(T0, tick=False):
        body = rotate(api, created["id"], {"expire_previous_in_seconds": 604800}).json()
    assert body["previous_secret_expires_at"] == (T0 + dt.timedelta(days=7)).isoformat()


@pytest.mark.parametrize("value", [-1, 604801, 10**12, "3600", 3600.0, 1.5, True, None, [3600]])
def test_rotate_secret_refuses_bad_overlaps_with_422(api: Api, value: Any) -> None:
    created = api.post("/webhooks", {"url": "https://hooks.example.com/x"}).json()
    response = rotate(api, created["id"], {"expire_previous_in_seconds": value})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("validation_error", "expire_previous_in_seconds")
    stored = WebhookEndpoint.objects.get()
    assert stored.secret == created["secret"] and stored.previous_secret == ""
    assert not AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated").exists()


def test_rotate_secret_replays_with_its_idempotency_key(api: Api) -> None:
    created = api.post("/webhooks", {"url": "https://hooks.example.com/x"}).json()
    first = rotate(api, created["id"], {"expire_previous_in_seconds": 60}, key="roll-1")
    again = rotate(api, created["id"], {"expire_previous_in_seconds": 60}, key="roll-1")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert WebhookEndpoint.objects.get().secret == first.json()["secret"]  # rolled once, not twice
    assert AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated").count() == 1
    assert rotate(api, created["id"], {"expire_previous_in_seconds": 0}, key="roll-1").status_code == 409


def test_rotate_secret_needs_webhooks_manage(narrow_api: Api, flow: Flow) -> None:
    endpoint = services.create_endpoint(project=flow.project, url="https://hooks.example.com/x")
    assert rotate(narrow_api, endpoint.public_id).status_code == 403
    assert WebhookEndpoint.objects.get().secret == endpoint.secret


def test_rotate_secret_of_another_projects_endpoint_is_404(api: Api) -> None:
    other = services.create_endpoint(
        project=create_project(owner=make_user(), name="Not mine"), url="https://hooks.example.com/x"
    )
    assert rotate(api, other.public_id).status_code == 404
    assert WebhookEndpoint.objects.get(pk=other.pk).secret == other.secret


def test_the_rotated_secret_signs_deliveries_beside_the_old_one(api: Api) -> None:
    """What the answer promises: during the overlap a receiver holding either secret verifies."""
    created = api.post("/webhooks", {"url": "https://hooks.example.com/x"}).json()
    new = rotate(api, created["id"], {"expire_previous_in_seconds": 600}).json()["secret"]
    stored = WebhookEndpoint.objects.get()
    now = dt.datetime.now(tz=dt.UTC)
    header = " ".join(
        signing.sign(secret=s, msg_id="evt_x", timestamp=1, body=b"{}") for s in stored.signing_secrets(now)
    )
    for secret in (new, created["secret"]):
        assert signing.verify(secret=secret, msg_id="evt_x", timestamp=1, body=b"{}", header=header)


def test_openapi_puts_the_secret_only_in_create_and_rotate() -> None:
    schema = Client().get("/api/v1/openapi.json").json()
    schemas, paths = schema["components"]["schemas"], schema["paths"]

    def ref(operation: dict[str, Any], status: str) -> str:
        return str(operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[1]

    assert "secret" not in schemas["EndpointOut"]["properties"]
    assert "previous_secret_expires_at" in schemas["EndpointOut"]["required"]
    assert "secret" in schemas["EndpointWithSecretOut"]["required"]
    assert ref(paths["/api/v1/webhooks"]["post"], "201") == "EndpointWithSecretOut"
    assert ref(paths["/api/v1/webhooks/{endpoint_id}"]["get"], "200") == "EndpointOut"
    assert ref(paths["/api/v1/webhooks/{endpoint_id}"]["patch"], "200") == "EndpointOut"
    page = schemas[ref(paths["/api/v1/webhooks"]["get"], "200")]
    assert page["properties"]["data"]["items"]["$ref"].endswith("/EndpointOut")
    operation = paths["/api/v1/webhooks/{endpoint_id}/rotate-secret"]["post"]
    assert ref(operation, "200") == "EndpointWithSecretOut"
    assert operation["security"] == [{"OAuth2": ["webhooks:manage"]}, {"SecretKey": []}]
    assert {"400", "401", "403", "404", "409", "422", "429"} <= set(operation["responses"])
    assert operation["requestBody"]["required"] is False  # the body may be left out
    bounds = schemas["RotateSecretIn"]["properties"]["expire_previous_in_seconds"]
    assert (bounds["minimum"], bounds["maximum"], bounds["default"]) == (0, 604800, 86400)


@pytest.mark.parametrize("field", ["url", "events", "description", "enabled"])
def test_patch_with_null_is_422_not_ignored(api: Api, field: str) -> None:
    """No field of a webhook endpoint has an empty value: ``{"enabled": null}`` was a 200 that changed nothing
    (the caller believing it had, e.g., paused the endpoint); it is a 422 naming the field."""
    created = api.post("/webhooks", {"url": "https://hooks.snapflow.example/apertur"}).json()
    before = api.get(f"/webhooks/{created['id']}").json()
    response = Client().patch(
        f"/api/v1/webhooks/{created['id']}",
        {field: None},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
    )
    assert response.status_code == 422, response.content
    assert response.json()["error"]["field"] == field
    assert api.get(f"/webhooks/{created['id']}").json() == before


@pytest.mark.parametrize(
    "url",
    [f"https://{'a' * 64}.example.com/hook", "https://hooks..example.com/hook"],
    ids=["label-over-63", "empty-label"],
)
def test_a_host_no_resolver_can_look_up_is_422_not_a_500(api: Api, url: str) -> None:
    """A DNS label is 1 to 63 characters (RFC 1035 §2.3.4): resolving ``https://aaa…(64).example.com`` raised
    UnicodeError from the IDNA codec, a 500 ``server_error`` on POST /webhooks. It is a 422 naming ``url``."""
    response = api.post("/webhooks", {"url": url})
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook_endpoint" and error["field"] == "url"
    assert "not a valid host name" in error["message"]
    assert WebhookEndpoint.objects.count() == 0


def test_deleting_or_disabling_an_endpoint_through_the_api_is_audited_with_the_caller_and_its_address(
    api: Api, flow: Flow, settings: Any
) -> None:
    """The dashboard's delete records who did it; the API's recorded neither the caller nor its address: an owner
    asking staff why their endpoint stopped could not be told which app (or API key) stopped it."""
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    created = api.post("/webhooks", {"url": "https://hooks.snapflow.example/apertur"}).json()
    via = f"app:{flow.created.app.pk}:project:{flow.project.pk}"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {api.token}", "REMOTE_ADDR": "203.0.113.9"}
    patched = Client().patch(
        f"/api/v1/webhooks/{created['id']}", {"enabled": False}, content_type="application/json", **auth
    )
    assert patched.status_code == 200
    updated = AuditEvent.objects.get(action="webhook_endpoint.updated")
    assert updated.ip == "203.0.113.9" and updated.data["via"] == via
    assert Client().delete(f"/api/v1/webhooks/{created['id']}", **auth).status_code == 204
    deleted = AuditEvent.objects.get(action="webhook_endpoint.deleted")
    assert deleted.ip == "203.0.113.9" and deleted.data["via"] == via
    assert deleted.data["url"] == "https://hooks.snapflow.example/apertur"


@pytest.mark.parametrize("how", ["disconnect", "delete_app"])
def test_an_endpoint_an_app_created_stops_when_the_app_loses_the_project(
    api: Api, flow: Flow, live_key_api: Api, how: str
) -> None:
    """The Disconnect page says the app loses access at once, but an endpoint it had created kept receiving the
    project's events (file names, notes) on the partner's server. It is disabled when the customer disconnects the
    app or the app is deleted; one made with the project's own API key (or on another project) is not."""
    from apertur.oauth import services as app_services
    from apertur.oauth.models import Connection
    from apertur.oauth.tokens import disconnect

    by_app = api.post("/webhooks", {"url": "https://hooks.snapflow.example/apertur"}).json()["id"]
    by_owner = live_key_api.post("/webhooks", {"url": "https://hooks.owner.example/apertur"}).json()["id"]
    if how == "disconnect":
        disconnect(connection=Connection.objects.get(project=flow.project), actor=flow.customer)
    else:
        app = flow.created.app
        app_services.delete_app(app=app, confirm_name=app.name, actor=app.partner.user)

    endpoints = {e.public_id: e for e in WebhookEndpoint.objects.all()}
    assert endpoints[by_app].enabled is False and endpoints[by_owner].enabled is True
    event = AuditEvent.objects.get(action="webhook_endpoint.updated", object_id=str(endpoints[by_app].pk))
    assert event.data["enabled"] is False and event.data["via"] == f"app {flow.client_id} lost the project"
    uploads.create_session(project=flow.project, title="After")
    assert not endpoints[by_app].deliveries.exists() and endpoints[by_owner].deliveries.count() == 1


@pytest.mark.parametrize("how", ["deactivate_app", "suspend_partner"])
def test_an_endpoint_an_app_created_is_paused_while_the_app_may_not_be_used(
    api: Api, flow: Flow, live_key_api: Api, how: str, settings: Any
) -> None:
    """An app deactivated by its partner, or whose partner staff suspended, has its tokens refused at once; the
    endpoints it created kept receiving the project's events (file names, guests' notes) on the partner's server
    all the same. They are paused meanwhile: no delivery for an event, and one already queued is not sent; the
    owner's own endpoint goes on. Reactivated (restored), the app's endpoint receives the events that follow."""
    from apertur.oauth import services as app_services
    from apertur.partners import services as partner_services
    from apertur.webhooks.models import DeliveryStatus

    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    by_app = api.post("/webhooks", {"url": "https://hooks.snapflow.example/apertur"}).json()["id"]
    by_owner = live_key_api.post("/webhooks", {"url": "https://hooks.owner.example/apertur"}).json()["id"]
    endpoints = {e.public_id: e for e in WebhookEndpoint.objects.all()}
    uploads.create_session(project=flow.project, title="Queued before")  # a delivery to each, not yet sent
    app = flow.created.app
    if how == "deactivate_app":
        app_services.deactivate_app(app=app, actor=app.partner.user)
    else:
        partner_services.suspend(partner=app.partner, reviewer=None, reason="Abuse report")

    queued = endpoints[by_app].deliveries.get()
    receiver = Captured()
    services.attempt(delivery_id=queued.pk, client=receiver.client)
    queued.refresh_from_db()
    assert queued.status == DeliveryStatus.FAILED and queued.last_error == services.APP_PAUSED_ERROR
    assert receiver.requests == []
    uploads.create_session(project=flow.project, title="While paused")
    assert endpoints[by_app].deliveries.count() == 1 and endpoints[by_owner].deliveries.count() == 2
    owner = Client()
    owner.force_login(flow.customer)
    page = owner.get(f"/projects/{flow.project.public_id}/webhooks/{by_app}/").content.decode()
    assert "Paused</span> The app that created this endpoint is deactivated" in page
    listing = owner.get(f"/projects/{flow.project.public_id}/").content.decode()
    assert listing.count(">Paused</span>") == 1  # the app's endpoint; the owner's is enabled

    if how == "deactivate_app":
        app_services.reactivate_app(app=app, actor=app.partner.user)
    else:
        partner_services.restore(partner=app.partner, reviewer=None)
    uploads.create_session(project=flow.project, title="After")
    assert endpoints[by_app].deliveries.count() == 2 and endpoints[by_owner].deliveries.count() == 3
    endpoints[by_app].refresh_from_db()
    assert endpoints[by_app].enabled is True  # paused, not disabled: nothing for the owner to undo
