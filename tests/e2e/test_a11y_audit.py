"""Keyboard and screen-reader essentials (WCAG 2.2 AA) over the pages people use, as Chromium builds them: names from
the accessibility tree, one h1 and a sane heading order, landmarks, no positive tabindex, table headers, image
alternatives, a visible focus ring on every Tab stop, 24 x 24 px targets and reflow at 320 px; then the keyboard
through the consent page and a refused form's errors tied to their fields and announced."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from apertur.commissions.tests.test_dashboard import customer_of, pay
from apertur.core import clock
from apertur.projects.services import create_project
from apertur.referrals.services import create_link
from apertur.testing import authorize_url, make_app, make_partner, make_user
from apertur.uploads import services as uploads
from tests.e2e.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Interactive roles whose accessible name Chromium computed empty (WCAG 1.3.1, 4.1.2).
NAMED_ROLES = {
    "textbox",
    "searchbox",
    "combobox",
    "listbox",
    "checkbox",
    "radio",
    "spinbutton",
    "slider",
    "switch",
    "button",
    "link",
    "menuitem",
    "tab",
}


def unnamed_controls(page: Page) -> list[str]:
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    found = []
    for node in nodes:
        role = node.get("role", {}).get("value")
        if node.get("ignored") or role not in NAMED_ROLES:
            continue
        if not str(node.get("name", {}).get("value", "")).strip():
            found.append(f"{role} without a name")
    return found


# What the markup and the layout show, one list of problems per page.
AUDIT = """() => {
  const problems = [];
  const visible = (el) => { const b = el.getBoundingClientRect(); return b.width > 0 && b.height > 0
    && getComputedStyle(el).visibility !== "hidden"; };
  const describe = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${(el.textContent || el.name
    || el.getAttribute("aria-label") || "").trim().replace(/\\s+/g, " ").slice(0, 30)}"`;
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  const h1s = document.querySelectorAll("h1");
  if (h1s.length !== 1) problems.push(`${h1s.length} h1`);
  let level = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const l = +h.tagName[1];
    if (l > level + 1) problems.push(`heading ${describe(h)} skips from h${level} to h${l}`);
    level = l;
  }
  if (document.querySelectorAll("main").length !== 1) problems.push("not one <main>");
  if (document.querySelector("nav") && !document.querySelector("a.skip-link[href='#main']"))
    problems.push("a nav and no skip link");
  for (const el of document.querySelectorAll("[tabindex]"))
    if (el.tabIndex > 0) problems.push(`positive tabindex on ${describe(el)}`);
  for (const table of document.querySelectorAll("table")) {
    if (!table.querySelector("th")) problems.push("table without th");
    for (const th of table.querySelectorAll("th"))
      if (!th.getAttribute("scope")) problems.push(`th without scope ${describe(th)}`);
  }
  for (const img of document.querySelectorAll("img")) if (!img.hasAttribute("alt")) problems.push(`img without alt`);
  for (const el of document.querySelectorAll("[aria-describedby], [aria-labelledby]"))
    for (const attr of ["aria-describedby", "aria-labelledby"])
      for (const id of (el.getAttribute(attr) || "").split(/\\s+/).filter(Boolean))
        if (!document.getElementById(id)) problems.push(`${attr} of ${describe(el)} names no element: ${id}`);
  const ids = {};
  for (const el of document.querySelectorAll("[id]")) ids[el.id] = (ids[el.id] || 0) + 1;
  for (const [id, n] of Object.entries(ids)) if (n > 1) problems.push(`id ${id} used ${n} times`);
  for (const el of document.querySelectorAll(".messages, .flash")) if (!el.closest("[role=status], [role=alert]"))
    problems.push(`message list outside role=status`);

  // WCAG 2.5.8: a target under 24 x 24 px passes when it is a link inside a sentence, or when a 24 px circle on its
  // centre meets no other target.
  const targets = [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex='-1'])"
  )].filter(visible);
  const boxes = targets.map((el) => el.getBoundingClientRect());
  targets.forEach((el, i) => {
    const b = boxes[i];
    if (b.width >= 23.5 && b.height >= 23.5) return;
    if (el.tagName === "A" && getComputedStyle(el).display === "inline") {
      const block = el.parentElement;
      if (block && block.textContent.trim().length > el.textContent.trim().length) return;
    }
    const cx = b.x + b.width / 2, cy = b.y + b.height / 2;
    const clash = boxes.some((o, j) => {
      if (j === i || targets[j].contains(el) || el.contains(targets[j])) return false;
      const dx = Math.max(o.x - cx, 0, cx - (o.x + o.width)), dy = Math.max(o.y - cy, 0, cy - (o.y + o.height));
      return Math.hypot(dx, dy) < 12;
    });
    if (clash) problems.push(`target ${describe(el)} ${Math.round(b.width)}x${Math.round(b.height)} px`);
  });
  return problems;
}"""

# Every Tab stop, focused from the keyboard's side (no pointer used yet, so :focus-visible matches): an outline of at
# least 2 px, or the browser's own ring.
NO_FOCUS_RING = """() => {
  const problems = [];
  const stops = [...document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]"
  )].filter((el) => el.tabIndex >= 0 && !el.disabled && el.getBoundingClientRect().width > 0);
  for (const el of stops) {
    el.focus();
    if (document.activeElement !== el || !el.matches(":focus-visible")) continue;
    const style = getComputedStyle(el);
    const ring = style.outlineStyle === "auto"
      || (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2);
    const shadow = style.boxShadow && style.boxShadow !== "none";
    if (!ring && !shadow) problems.push(`no focus ring on ${el.tagName.toLowerCase()} "${
      (el.textContent || el.name || "").trim().slice(0, 30)}"`);
  }
  document.activeElement.blur();
  return problems;
}"""


def audit(page: Page, url: str) -> list[str]:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(url)
    problems = page.evaluate(AUDIT) + unnamed_controls(page) + page.evaluate(NO_FOCUS_RING)
    page.set_viewport_size({"width": 320, "height": 640})  # WCAG 1.4.10: 1280 px at 400 % zoom
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > 320:
        problems.append(f"{width} px wide at 320 px")
    return problems


def test_pages_pass_the_markup_focus_target_and_reflow_checks(page: Page, live_server: Any, tmp_path: Path) -> None:
    base = live_server.url
    partner = make_partner(user=make_user("partner@example.com"))
    customer = customer_of(partner, "customer@example.com")
    pay(customer, 10_000, clock.now() - dt.timedelta(days=45))
    pay(customer, 10_000, clock.now() - dt.timedelta(days=2))
    create_link(partner=partner, label="Newsletter")
    created = make_app(partner, name="Snapflow", allowed_domains=["partner.example"])
    project = create_project(owner=partner.user, name="Weddings")
    create_project(owner=partner.user, name="Corporate")
    session = uploads.create_session(project=project, title="Ana & Ben")

    problems = {}
    for path in ["/signup", "/login", "/password-reset", f"/u/{session.token}", authorize_url(created.app.client_id)]:
        problems[path] = audit(page, base + path)
    log_in(page, base, "partner@example.com")
    client_id = created.app.client_id
    # The consent as aptr-connect opens it in its popup: the app named by its public key and the page's origin.
    popup_consent = "/oauth/authorize?" + urlencode(
        {
            "public_key": created.public_key,
            "origin": "https://partner.example",
            "response_type": "code",
            "state": "st4te",
            "scope": "project:read upload:create",
        }
    )
    for path in [
        authorize_url(client_id, scope="project:read upload:create"),
        popup_consent,
        "/projects/",
        f"/projects/{project.public_id}/",
        f"/projects/{project.public_id}/settings",
        f"/projects/{project.public_id}/sessions/{session.public_id}/",
        "/account",
        "/partners/",
        "/partners/apps/",
        "/partners/apps/new",
        f"/partners/apps/{client_id}/",
        f"/partners/apps/{client_id}/edit",
        "/partners/referrals/",
        "/partners/commissions/",
        "/partners/payouts/",
    ]:
        problems[path] = audit(page, base + path)
    assert {path: found for path, found in problems.items() if found} == {}
    page.goto(base + popup_consent)  # what was audited is the consent itself, not an answer page
    expect(page.locator('button[value="allow"]')).to_be_visible()


def test_the_keyboard_goes_project_allow_deny_on_the_consent_page(page: Page, live_server: Any) -> None:
    """WCAG 2.4.3: after the header, the page's own Tab stops in reading order; Enter on Allow sends the form."""
    base = live_server.url
    user = make_user("owner@example.com")
    create_project(owner=user, name="Weddings")
    create_project(owner=user, name="Corporate")
    created = make_app(make_partner(), name="Snapflow")
    log_in(page, base, user.email)
    page.goto(base + authorize_url(created.app.client_id))
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Project")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Allow")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Deny")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name="Allow")).to_be_focused()


# Each field the browser marks invalid, with what describes it.
INVALID_FIELDS = """() => [...document.querySelectorAll("[aria-invalid=true]")].map((el) => ({
  name: el.name,
  described: (el.getAttribute("aria-describedby") || "").split(/\\s+/).filter(Boolean)
    .map((id) => document.getElementById(id)?.textContent.trim() || `missing #${id}`).join(" | "),
}))"""


@pytest.mark.parametrize(
    ("path", "fill", "button", "invalid"),
    [
        ("/login", {}, "Log in", {"email", "password"}),
        ("/signup", {"Email": "not-an-email"}, "Sign up", {"email", "password"}),
    ],
)
def test_a_refused_form_marks_its_fields_and_announces_the_errors(
    page: Page, live_server: Any, path: str, fill: dict[str, str], button: str, invalid: set[str]
) -> None:
    """WCAG 3.3.1 and 4.1.3: each field in error has aria-invalid and is described by its error, and the error is
    in an alert (announced without moving focus)."""
    page.goto(live_server.url + path)
    for label, value in fill.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state()
    fields = page.evaluate(INVALID_FIELDS)
    assert {f["name"] for f in fields} == invalid, fields
    assert all(f["described"] and "missing" not in f["described"] for f in fields), fields
    expect(page.get_by_role("alert").first).to_be_visible()


def test_a_refused_guest_password_is_an_alert_that_describes_the_field(page: Page, live_server: Any) -> None:
    """An error sent back through the flash messages (here the guest page's wrong password) is read out at once
    (role=alert, not the polite status of "Saved"), and the field it is about says so."""
    project = create_project(owner=make_user("owner@example.com"), name="Weddings")
    session = uploads.create_session(project=project, title="Ana & Ben", password="open sesame")
    page.goto(f"{live_server.url}/u/{session.token}")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Continue").click()
    alert = page.get_by_role("alert")
    expect(alert).to_have_count(1)
    message = alert.inner_text().strip()
    assert message
    expect(page.get_by_role("status")).to_have_count(0)
    assert page.evaluate(INVALID_FIELDS) == [{"name": "password", "described": message}]


@pytest.mark.parametrize(
    ("path", "fill", "button"),
    [
        ("/partners/apps/new", {}, "Create app"),
        ("/partners/payouts/", {"PayPal email": "not-an-email"}, "Send confirmation link"),
        ("/account", {"New email": "not-an-email"}, "Change email"),
    ],
)
def test_a_refused_portal_form_marks_its_fields_and_announces_the_errors(
    page: Page, live_server: Any, path: str, fill: dict[str, str], button: str
) -> None:
    make_partner(user=make_user("partner@example.com"))
    log_in(page, live_server.url, "partner@example.com")
    page.goto(live_server.url + path)
    for label, value in fill.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state()
    fields = page.evaluate(INVALID_FIELDS)
    assert fields and all(f["described"] and "missing" not in f["described"] for f in fields), fields
    expect(page.get_by_role("alert").first).to_be_visible()
    assert page.evaluate(AUDIT) == []
