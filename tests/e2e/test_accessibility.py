"""What the pages' markup alone does not show (WCAG 2.2 AA): contrast of the colours as Chromium computes them, in
the light and the dark scheme."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from apertur.commissions.tests.test_dashboard import customer_of, pay
from apertur.core import clock
from apertur.partners import services as partner_services
from apertur.projects.services import create_project
from apertur.testing import PNG_BYTES, make_partner, make_staff, make_user
from apertur.uploads import services as uploads
from tests.e2e.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Colour as computed (rgb(), rgba() or, from color-mix(), color(srgb …)) → [r, g, b, a] in 0..255 and 0..1; the
# background an element's text is seen on, its ancestors' composited; the WCAG contrast ratio of two colours.
COLOUR_JS = """
const parse = (css) => {
  let m = css.match(/^rgba?\\(([\\d.]+),\\s*([\\d.]+),\\s*([\\d.]+)(?:,\\s*([\\d.]+))?\\)$/);
  if (m) return [+m[1], +m[2], +m[3], m[4] === undefined ? 1 : +m[4]];
  m = css.match(/^color\\(srgb ([\\d.e-]+) ([\\d.e-]+) ([\\d.e-]+)(?: \\/ ([\\d.]+))?\\)$/);
  if (m) return [m[1] * 255, m[2] * 255, m[3] * 255, m[4] === undefined ? 1 : +m[4]];
  throw new Error("colour not understood: " + css);
};
const over = (top, below) => [0, 1, 2].map((i) => top[i] * top[3] + below[i] * (1 - top[3])).concat(1);
const behind = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const bg = parse(getComputedStyle(e).backgroundColor);
    if (bg[3] > 0) layers.push(bg);
    if (bg[3] === 1) break;
  }
  return layers.reduceRight((below, top) => over(top, below), [255, 255, 255, 1]);
};
const channel = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
const ratio = (a, b) => {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
};
"""

# Every visible element with text of its own, whose colour on its background is under 4.5:1 (3:1 for large text:
# 24 px, or 18.66 px bold).
LOW_CONTRAST_TEXT = (
    "() => {"
    + COLOUR_JS
    + """
  const low = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest("svg, .visually-hidden, option")) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const box = el.getBoundingClientRect();
    if (!own || box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden") continue;
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const background = behind(el);
    const r = ratio(over(parse(style.color), background), background);
    const text = el.textContent.trim().slice(0, 30);
    if (r < needed) low.push(`${el.tagName.toLowerCase()}.${el.className} "${text}" ${r.toFixed(2)}`);
  }
  return low;
}"""
)


def low_contrast(page: Page, path: str) -> dict[str, list[str]]:
    found = {}
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(path)
        found[scheme] = page.evaluate(LOW_CONTRAST_TEXT)
    return {scheme: low for scheme, low in found.items() if low}


def test_text_keeps_4_5_to_1_contrast_in_light_and_dark(page: Page, live_server: Any, tmp_path: Path) -> None:
    """WCAG 1.4.3: the header's Sign up button, status pills of every kind, field errors, the referral funnel's
    labels and the guest page's upload statuses, in both colour schemes."""
    base = live_server.url
    staff = make_staff("staff@example.com")
    partner = make_partner(user=make_user("partner@example.com"))
    customer = customer_of(partner, "customer@example.com")
    pay(customer, 10_000, clock.now() - dt.timedelta(days=45))  # past the hold: eligible
    pay(customer, 10_000, clock.now() - dt.timedelta(days=2))  # pending
    partner_services.reject(partner=make_partner(approved=False), reviewer=staff, reason="No product")
    partner_services.suspend(partner=make_partner(), reviewer=staff, reason="Fraud")
    make_partner(approved=False)  # pending

    problems = {}
    for path in ["/", "/signup"]:
        problems[path] = low_contrast(page, base + path)
    page.emulate_media(color_scheme="light")
    session = uploads.create_session(project=customer.projects.get(), title="Ana & Ben")
    (tmp_path / "photo.png").write_bytes(PNG_BYTES)
    (tmp_path / "fake.png").write_bytes(b"not an image")
    page.goto(f"{base}/u/{session.token}")
    page.get_by_label("Photos").set_input_files([str(tmp_path / "photo.png"), str(tmp_path / "fake.png")])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-list li.done")).to_have_count(1)
    expect(page.locator("#upload-list li.failed")).to_have_count(1)
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        problems[f"guest page after uploads, {scheme}"] = page.evaluate(LOW_CONTRAST_TEXT)
    page.emulate_media(color_scheme="light")
    page.goto(f"{base}/login")
    page.get_by_role("button", name="Log in").click()  # both fields in error
    expect(page.get_by_text("This field is required.").first).to_be_visible()
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        problems[f"/login with errors, {scheme}"] = page.evaluate(LOW_CONTRAST_TEXT)

    project = create_project(owner=partner.user, name="Weddings")
    log_in(page, base, "partner@example.com")
    settings_page = f"/projects/{project.public_id}/settings"
    for path in ["/account", "/partners/", "/partners/commissions/", "/partners/payouts/", settings_page]:
        problems[path] = low_contrast(page, base + path)
    page.get_by_role("button", name="Log out").click()
    log_in(page, base, staff.email)
    problems["/partners/staff/?status=all"] = low_contrast(page, f"{base}/partners/staff/?status=all")

    assert {where: low for where, low in problems.items() if low} == {}


# Each text field's and select's border, and the focus ring of each of the first Tab stops, against what is
# around them: under 3:1 is reported (the ring is drawn outside the element, over its parent's background).
LOW_CONTRAST_FIELDS = (
    "() => {"
    + COLOUR_JS
    + """
  const low = [];
  const fields = document.querySelectorAll("input:not([type=hidden], [type=checkbox], [type=radio]), select, textarea");
  for (const el of fields) {
    if (el.getBoundingClientRect().width === 0) continue;
    const around = behind(el.parentElement);
    const r = ratio(over(parse(getComputedStyle(el).borderTopColor), around), around);
    if (r < 3) low.push(`border of ${el.tagName.toLowerCase()}#${el.id} ${r.toFixed(2)}`);
  }
  return low;
}"""
)
FOCUS_RING = (
    "() => {"
    + COLOUR_JS
    + """
  const el = document.activeElement, style = getComputedStyle(el);
  // The browser draws its own ring for "auto" and for a part inside a native control (a date field's calendar
  // button, focused while the field itself does not match :focus-visible).
  if (el === document.body || style.outlineStyle === "auto" || !el.matches(":focus-visible")) return null;
  const label = `${el.tagName.toLowerCase()} "${(el.textContent || el.name || "").trim().slice(0, 20)}"`;
  if (style.outlineStyle === "none" || parseFloat(style.outlineWidth) < 2) return `no focus ring on ${label}`;
  const around = behind(el.parentElement);
  const r = ratio(over(parse(style.outlineColor), around), around);
  return r < 3 ? `focus ring of ${label} ${r.toFixed(2)}` : null;
}"""
)


def test_fields_and_the_focus_ring_keep_3_to_1_contrast_in_light_and_dark(page: Page, live_server: Any) -> None:
    """WCAG 1.4.11: a field's border is what shows where to type, and the focus ring where the keyboard is."""
    base = live_server.url
    project = create_project(owner=make_partner(user=make_user("partner@example.com")).user, name="Weddings")
    log_in(page, base, "partner@example.com")
    problems = {}
    for path in ["/account", "/partners/commissions/", "/partners/apps/new", f"/projects/{project.public_id}/settings"]:
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.goto(base + path)
            low = page.evaluate(LOW_CONTRAST_FIELDS)
            for _ in range(25):
                page.keyboard.press("Tab")
                ring = page.evaluate(FOCUS_RING)
                if ring and ring not in low:
                    low.append(ring)
            if low:
                problems[f"{path}, {scheme}"] = low
    assert problems == {}


def test_the_skip_link_shows_when_the_keyboard_reaches_it_and_skips_the_header(page: Page, live_server: Any) -> None:
    """WCAG 2.4.1 and 2.4.7: the first Tab stop is the skip link, on screen while focused; it leads into <main>."""
    make_user("owner@example.com")
    log_in(page, live_server.url, "owner@example.com")
    page.goto(f"{live_server.url}/account")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box and box["x"] >= 0 and box["y"] >= 0, box
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # past the header's links, into the page's own content
    expect(page.get_by_label("New email")).to_be_focused()
