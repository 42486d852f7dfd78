"""A guest uploads two photos on the public page in Chromium; the partner lists them through the API and
its webhook receiver gets a verified, signed upload.created for each."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from apertur.projects.services import create_api_key, create_project
from apertur.testing import JPEG_BYTES, PNG_BYTES, make_user
from apertur.uploads import services as uploads
from apertur.uploads.models import Upload
from apertur.webhooks import services as webhooks
from apertur.webhooks.tests.test_services import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_guest_uploads_two_photos(page: Page, live_server: Any, tmp_path: Path, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_LOOPBACK = True
    project = create_project(owner=make_user(), name="Weddings")
    key = create_api_key(project=project, name="Partner server").secret
    receiver = Receiver()
    try:
        endpoint = webhooks.create_endpoint(project=project, url=receiver.url, events=["upload.created"])
        receiver.secret = endpoint.secret
        session = uploads.create_session(project=project, title="Ana & Ben")
        photos = [tmp_path / "first.png", tmp_path / "second.jpg", tmp_path / "fake.png"]
        photos[0].write_bytes(PNG_BYTES)
        photos[1].write_bytes(JPEG_BYTES)
        photos[2].write_bytes(b"not an image at all")

        page.goto(f"{live_server.url}/u/{session.token}")
        expect(page.get_by_role("heading", name="Ana & Ben")).to_be_visible()
        page.get_by_label("Photos").set_input_files([str(p) for p in photos])
        page.get_by_label("Note (optional)").fill("From Carla")
        page.get_by_role("button", name="Upload").click()
        rows = page.locator("#upload-list li.done")
        expect(rows).to_have_count(2)
        expect(page.get_by_label("Progress of first.png")).to_have_attribute("value", "100")
        refused = page.locator("#upload-list li.failed")
        expect(refused).to_contain_text("not an accepted photo type")
        # Its bytes went up, but it was not kept: no full bar beside the error.
        expect(page.get_by_label("Progress of fake.png")).to_have_attribute("value", "0")

        listing = Client().get("/api/v1/uploads", HTTP_AUTHORIZATION=f"Bearer {key}").json()
        names = sorted(u["file_name"] for u in listing["data"])
        assert names == ["first.png", "second.jpg"]
        assert {u["note"] for u in listing["data"]} == {"From Carla"}
        assert {u["content_type"] for u in listing["data"]} == {"image/png", "image/jpeg"}

        webhooks.run_due()
        events = list(receiver.processed.values())
        assert sorted(e["data"]["upload"]["file_name"] for e in events) == names
        assert all(e["type"] == "upload.created" for e in events)
    finally:
        receiver.close()


# Per row of the progress list: how many times its status text was replaced.
COUNT_STATUS_CHANGES = """() => {
  window.statusChanges = new Map();
  new MutationObserver((records) => {
    for (const r of records) {
      if (!r.target.classList.contains("status")) continue;  // a row added to the list, not a status replaced
      const row = r.target.closest("li");
      window.statusChanges.set(row, (window.statusChanges.get(row) || 0) + 1);
    }
  }).observe(document.getElementById("upload-list"), { childList: true, subtree: true });
}"""


def test_the_progress_list_tells_a_screen_reader_each_file_once_per_step(
    page: Page, live_server: Any, tmp_path: Path
) -> None:
    """The list is a live region: each change of a row is read with the file's name (the row is atomic), the status
    changes only when the step does (not once per progress event), and the bar stays in its column instead of
    covering the status. The file field's limits are its description."""
    session = uploads.create_session(project=create_project(owner=make_user(), name="Weddings"), title="Ana & Ben")
    photo = tmp_path / "big.png"
    photo.write_bytes(PNG_BYTES + b"\0" * 1_500_000)  # 1.5 MB: its bytes take a few seconds to go
    page.goto(f"{live_server.url}/u/{session.token}")
    expect(page.get_by_label("Photos")).to_have_accessible_description(re.compile(r"^Up to \d+ MB each"))
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 500_000},
    )
    page.evaluate(COUNT_STATUS_CHANGES)
    page.get_by_label("Photos").set_input_files(str(photo))
    page.get_by_role("button", name="Upload").click()
    row = page.locator("#upload-list li")
    expect(row).to_have_class(re.compile(r"^(done|failed)$"), timeout=30_000)
    expect(row).to_have_attribute("aria-atomic", "true")
    # Waiting → Uploading → the outcome: two replacements, however many progress events came in between.
    assert page.evaluate("[...window.statusChanges.values()]") == [2]
    bar, status = row.locator("progress").bounding_box(), row.locator(".status").bounding_box()
    assert bar and status and bar["x"] + bar["width"] <= status["x"], (bar, status)
    # On a 320 px phone the name takes its own line above the bar and the status, instead of a column 0 px wide.
    page.set_viewport_size({"width": 320, "height": 700})
    name = row.locator(".name").bounding_box()
    assert name and name["width"] > 150 and name["x"] + name["width"] <= 320, name
    assert page.evaluate("document.documentElement.scrollWidth") <= 320


def test_clicking_upload_again_while_photos_go_up_does_not_send_them_twice(
    page: Page, live_server: Any, tmp_path: Path
) -> None:
    """A guest who clicks Upload a second time (or presses Enter in the note) while the photos are still going up
    sent every one of them again: each photo kept twice, counted twice against the link and the month."""
    session = uploads.create_session(project=create_project(owner=make_user(), name="Weddings"), title="Ana & Ben")
    photos = [tmp_path / "first.png", tmp_path / "second.png"]
    for photo in photos:
        photo.write_bytes(PNG_BYTES + b"\0" * 600_000)  # with the throttle below: a second or more each
    page.goto(f"{live_server.url}/u/{session.token}")
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 500_000},
    )
    page.get_by_label("Photos").set_input_files([str(p) for p in photos])
    upload = page.get_by_role("button", name="Upload")
    upload.click()
    expect(page.locator("#upload-list li")).to_have_count(2)
    upload.click(force=True)  # force: the button may be disabled, a person's click lands anyway
    page.get_by_label("Note (optional)").press("Enter")
    expect(page.locator("#upload-list li.done")).to_have_count(2, timeout=30_000)
    page.wait_for_timeout(500)  # any second round would have added its rows by now
    expect(page.locator("#upload-list li")).to_have_count(2)
    expect(upload).to_be_enabled()  # ready for the next photos
    assert sorted(Upload.objects.values_list("original_name", flat=True)) == ["first.png", "second.png"]


def test_a_photo_over_the_plans_size_says_its_size_and_the_limit(page: Page, live_server: Any, tmp_path: Path) -> None:
    """The page refuses a photo over the plan's limit before sending it: it said only "Too large", not how large
    it is nor what the link accepts (the server says both when the page's check is skipped)."""
    project = create_project(owner=make_user(), name="Weddings")
    project.plan.max_file_bytes = 1_048_576
    project.plan.save(update_fields=["max_file_bytes"])
    session = uploads.create_session(project=project, title="Ana & Ben")
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    big.write_bytes(PNG_BYTES + b"\0" * 1_300_000)
    small.write_bytes(PNG_BYTES)
    page.goto(f"{live_server.url}/u/{session.token}")
    page.get_by_label("Photos").set_input_files([str(big), str(small)])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-list li.done")).to_have_count(1)
    expect(page.locator("#upload-list li.failed .status")).to_have_text(
        "big.png is 1.2 MB; this link accepts photos up to 1 MB."
    )
    assert list(Upload.objects.values_list("original_name", flat=True)) == ["small.png"]


def test_a_photo_lost_to_the_network_says_to_choose_it_again_and_then_goes(
    page: Page, live_server: Any, tmp_path: Path
) -> None:
    """Among several photos, one's connection drops and one gets a proxy's error page: they said only "Network
    error" and "Failed", the file field already emptied, and nothing told the guest what became of them or what to
    do. Each now says so; chosen again, the photo goes."""
    session = uploads.create_session(project=create_project(owner=make_user(), name="Weddings"), title="Ana & Ben")
    photos = [tmp_path / f"{name}.png" for name in ("first", "lost", "proxied", "last")]
    for photo in photos:
        photo.write_bytes(PNG_BYTES)
    page.goto(f"{live_server.url}/u/{session.token}")

    def flaky(route: Any) -> None:
        body = route.request.post_data_buffer or b""
        if b'filename="lost.png"' in body:
            route.abort("connectionreset")
        elif b'filename="proxied.png"' in body:
            route.fulfill(status=502, body="<html>Bad gateway</html>", content_type="text/html")
        else:
            route.continue_()

    page.route("**/files", flaky)
    page.get_by_label("Photos").set_input_files([str(p) for p in photos])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-list li.done")).to_have_count(2)
    failed = page.locator("#upload-list li.failed .status")
    expect(failed).to_have_text(
        [
            "Network error: this photo may not have arrived. Choose it again to retry.",
            "Not uploaded (error 502). Choose it again to retry.",
        ]
    )
    page.unroute("**/files")
    page.get_by_label("Photos").set_input_files([str(photos[1])])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-list li.done")).to_have_count(3)
    assert sorted(Upload.objects.values_list("original_name", flat=True)) == ["first.png", "last.png", "lost.png"]
