import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { init } from "../src/core";
import { button, defineConnectButton } from "../src/button";
import type { AptrConnectError } from "../src/errors";
import { APERTUR, KEY, cleanSlate, fakePopup, flush, openedState, openedUrl, post, stubOpen } from "./helpers";

beforeEach(cleanSlate);
afterEach(cleanSlate);

function inner(host: Element): HTMLButtonElement {
  const btn = host.shadowRoot?.querySelector("button");
  if (!btn) throw new Error("no button in the shadow root");
  return btn;
}

describe("AptrConnect.button()", () => {
  it("renders a focusable, labelled <button> in a shadow root", () => {
    const host = document.body.appendChild(document.createElement("div"));
    const btn = button(host);
    expect(btn).toBe(inner(host));
    expect(btn.tagName).toBe("BUTTON");
    expect(btn.type).toBe("button");
    expect(btn.textContent).toBe("Connect with Apertur");
    expect(btn.getAttribute("aria-busy")).toBe("false");
    expect(btn.tabIndex).toBe(0);
    btn.focus();
    expect(host.shadowRoot?.activeElement).toBe(btn);
    expect(host.getAttribute("data-theme")).toBe("auto");
    // The mark is decoration only.
    expect(btn.querySelector(".mark")?.getAttribute("aria-hidden")).toBe("true");
  });

  it("takes a label and a theme, and styles itself without a <style> element", () => {
    const host = document.body.appendChild(document.createElement("div"));
    const btn = button(host, { label: "Link Apertur", theme: "dark" });
    expect(btn.textContent).toBe("Link Apertur");
    expect(host.getAttribute("data-theme")).toBe("dark");
    const root = host.shadowRoot as ShadowRoot;
    expect(root.adoptedStyleSheets.length).toBe(1);
    expect(root.querySelector("style")).toBeNull();
  });

  it("click opens the popup, aria-busy while it is open, then calls onSuccess", async () => {
    init({ publicKey: KEY, baseUrl: APERTUR });
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onSuccess = vi.fn();
    const btn = button(document.body.appendChild(document.createElement("div")), {
      scopes: ["project:read"],
      onSuccess,
    });
    btn.click();
    expect(open).toHaveBeenCalledOnce();
    expect(openedUrl(open).searchParams.get("scope")).toBe("project:read");
    expect(btn.getAttribute("aria-busy")).toBe("true");

    btn.click(); // busy: no second flow
    expect(open).toHaveBeenCalledOnce();

    post({ source: "aptr-connect", code: "c", state: openedState(open) }, { source: popup });
    await flush();
    expect(onSuccess).toHaveBeenCalledExactlyOnceWith({ code: "c", state: openedState(open) });
    expect(btn.getAttribute("aria-busy")).toBe("false");
  });

  it("is no longer busy after an error (a blocked popup)", async () => {
    init({ publicKey: KEY, baseUrl: APERTUR });
    stubOpen(null);
    const onError = vi.fn();
    const btn = button(document.body.appendChild(document.createElement("div")), { onError });
    btn.click();
    await flush();
    expect(onError.mock.calls[0][0]).toMatchObject({ code: "popup_blocked" });
    expect(btn.getAttribute("aria-busy")).toBe("false");
  });

  it("is not left busy in redirect mode: a page restored by Back (bfcache) must still connect", () => {
    init({ publicKey: KEY, baseUrl: APERTUR });
    const assign = vi.spyOn(window.location, "assign").mockImplementation(() => undefined);
    const btn = button(document.body.appendChild(document.createElement("div")), { uxMode: "redirect" });
    btn.click(); // the page goes to Apertur; the user presses Back and the same page comes back
    expect(btn.getAttribute("aria-busy")).toBe("false");
    btn.click();
    expect(assign).toHaveBeenCalledTimes(2);
  });

  it("wires a page's own <button> as it is", () => {
    init({ publicKey: KEY, baseUrl: APERTUR });
    const open = stubOpen();
    const own = document.body.appendChild(document.createElement("button"));
    own.textContent = "Connect your Apertur account";
    expect(button(own, { onError: () => undefined })).toBe(own);
    expect(own.shadowRoot).toBeNull();
    own.click();
    expect(open).toHaveBeenCalledOnce();
    expect(own.getAttribute("aria-busy")).toBe("true");
  });
});

describe("<aptr-connect-button>", () => {
  beforeEach(() => defineConnectButton());

  function element(attrs: Record<string, string>): HTMLElement {
    const el = document.createElement("aptr-connect-button");
    for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
    document.body.appendChild(el);
    return el;
  }

  it("is registered once and renders the same accessible button", () => {
    defineConnectButton();
    expect(customElements.get("aptr-connect-button")).toBeDefined();
    const el = element({ label: "Connect", theme: "light" });
    const btn = inner(el);
    expect(btn.textContent).toBe("Connect");
    expect(btn.getAttribute("aria-busy")).toBe("false");
    expect(el.getAttribute("data-theme")).toBe("light");
    el.setAttribute("label", "Relabelled");
    expect(inner(el).textContent).toBe("Relabelled");
  });

  it("turns its attributes into authorize() options and dispatches aptr-success", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const el = element({
      "public-key": KEY,
      "base-url": APERTUR,
      scopes: "upload:create  project:read",
      "redirect-uri": "https://partner.example/cb",
      state: "st4te",
    });
    const seen = vi.fn();
    const listener = (e: Event) => seen((e as CustomEvent).detail);
    document.addEventListener("aptr-success", listener);
    onTestFinished(() => document.removeEventListener("aptr-success", listener));
    inner(el).click();
    const q = openedUrl(open).searchParams;
    expect(openedUrl(open).origin).toBe(APERTUR);
    expect(q.get("public_key")).toBe(KEY);
    expect(q.get("scope")).toBe("upload:create project:read");
    expect(q.get("redirect_uri")).toBe("https://partner.example/cb");
    expect(q.get("state")).toBe("st4te");
    expect(inner(el).getAttribute("aria-busy")).toBe("true");

    post({ source: "aptr-connect", code: "c", state: "st4te" }, { source: popup });
    await flush();
    expect(seen).toHaveBeenCalledExactlyOnceWith({ code: "c", state: "st4te" }); // bubbled to document
    expect(inner(el).getAttribute("aria-busy")).toBe("false");
  });

  it("dispatches aptr-error with the error", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const el = element({ "public-key": KEY, "base-url": APERTUR });
    const errors: AptrConnectError[] = [];
    el.addEventListener("aptr-error", (e) => errors.push((e as CustomEvent).detail));
    inner(el).click();
    post({ source: "aptr-connect", error: "access_denied", state: openedState(open) }, { source: popup });
    await flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: "user_denied" });
  });

  it("reports a bad public-key attribute as aptr-error without opening anything or staying busy", () => {
    const open = stubOpen();
    const el = element({ "public-key": "aptr_cs_secret", "base-url": APERTUR });
    const errors: AptrConnectError[] = [];
    el.addEventListener("aptr-error", (e) => errors.push((e as CustomEvent).detail));
    inner(el).click();
    expect(open).not.toHaveBeenCalled();
    expect(errors.map((e) => e.code)).toEqual(["invalid_public_key"]);
    expect(inner(el).getAttribute("aria-busy")).toBe("false");
  });

  it("uses its own key over an earlier init() with another, keeping that baseUrl", () => {
    init({ publicKey: "aptr_live_pk_Other", baseUrl: APERTUR });
    const open = stubOpen();
    const el = element({ "public-key": KEY });
    inner(el).click();
    expect(openedUrl(open).origin).toBe(APERTUR);
    expect(openedUrl(open).searchParams.get("public_key")).toBe(KEY);
  });

  it("supports ux-mode=redirect", () => {
    const open = stubOpen();
    const assign = vi.spyOn(window.location, "assign").mockImplementation(() => undefined);
    const el = element({ "public-key": KEY, "base-url": APERTUR, "ux-mode": "redirect" });
    inner(el).click();
    expect(open).not.toHaveBeenCalled();
    expect(new URL(String(assign.mock.calls[0][0])).searchParams.get("ux_mode")).toBe("redirect");
  });
});
