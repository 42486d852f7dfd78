import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { readFileSync } from "node:fs";
import { VERSION, apertureOrigin, authorize, init, isInitialized } from "../src/core";
import { AptrConnectError, toAptrError } from "../src/errors";
import { APERTUR, KEY, PARTNER, cleanSlate, fakePopup, openedState, openedUrl, peek, post, stubOpen } from "./helpers";

beforeEach(cleanSlate);
afterEach(() => {
  vi.useRealTimers();
  cleanSlate();
});

function start(options: Parameters<typeof authorize>[0] = {}) {
  init({ publicKey: KEY, baseUrl: APERTUR });
  const popup = fakePopup();
  const open = stubOpen(popup);
  const onSuccess = vi.fn();
  const onError = vi.fn();
  const promise = authorize({ scopes: ["project:read"], onSuccess, onError, ...options });
  return { popup, open, onSuccess, onError, promise, state: openedState(open) };
}

describe("init", () => {
  it("accepts live and test public keys", () => {
    expect(isInitialized()).toBe(false);
    init({ publicKey: "aptr_live_pk_Q1w2e3" });
    expect(isInitialized()).toBe(true);
    init({ publicKey: KEY, baseUrl: APERTUR });
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("lets the server judge well-formed unknown keys (invalid_public_key arrives through onError)", () => {
    init({ publicKey: "aptr_pk_your_key_here", baseUrl: APERTUR });
    expect(isInitialized()).toBe(true);
  });

  it.each([undefined, "", "aptr_pk_your key", "aptr_ci_abc", "aptr_cs_secret", 42])(
    "refuses %s with invalid_public_key",
    (publicKey) => {
      const call = () => init({ publicKey } as unknown as { publicKey: string });
      expect(call).toThrow(AptrConnectError);
      try {
        call();
      } catch (e) {
        expect((e as AptrConnectError).code).toBe("invalid_public_key");
        expect((e as AptrConnectError).message).toBeTruthy();
      }
      expect(isInitialized()).toBe(false);
    },
  );

  it("refuses a client secret and says why", () => {
    expect(() => init({ publicKey: "aptr_cs_0123456789abcdef" })).toThrow(/client secret/);
    expect(isInitialized()).toBe(false);
  });

  it.each(["aptr_live_sk_0123456789abcdef", "aptr_test_sk_0123456789abcdef", "oat_0123456789abcdef", "ort_0123456789abcdef"])(
    "refuses the secret %s and says why (it would go to Apertur in the popup's URL)",
    (secret) => {
      expect(() => init({ publicKey: secret })).toThrow(/secret|token/);
      expect(() => init({ publicKey: secret })).toThrow(AptrConnectError);
      expect(isInitialized()).toBe(false);
    },
  );

  it("refuses a baseUrl that is not an http(s) URL", () => {
    expect(() => init({ publicKey: KEY, baseUrl: "apertur.test" })).toThrow(AptrConnectError);
    expect(() => init({ publicKey: KEY, baseUrl: "javascript:alert(1)" })).toThrow(/baseUrl/);
  });

  it("strips trailing slashes from baseUrl", () => {
    init({ publicKey: KEY, baseUrl: APERTUR + "//" });
    const open = stubOpen();
    authorize({ onError: () => undefined });
    expect(String(open.mock.calls[0][0]).startsWith(`${APERTUR}/oauth/authorize?`)).toBe(true);
  });
});

describe("authorize: starting", () => {
  it("rejects with not_initialized before init()", async () => {
    const open = stubOpen();
    const onError = vi.fn();
    const promise = authorize({ scopes: ["project:read"], onError });
    await expect(promise).rejects.toMatchObject({ code: "not_initialized" });
    expect(onError).toHaveBeenCalledOnce();
    expect(onError.mock.calls[0][0]).toBeInstanceOf(AptrConnectError);
    expect(open).not.toHaveBeenCalled();
  });

  it("opens the popup synchronously, centred, with every parameter in the URL", () => {
    const { open, state } = start({
      scopes: ["upload:create", "project:read"],
      redirectUri: "https://partner.example/callback",
    });
    // Synchronously: no await between authorize() and window.open, or the browser would block it.
    expect(open).toHaveBeenCalledOnce();
    const [, name, features] = open.mock.calls[0];
    expect(name).toBe("aptr-connect");
    expect(features).toMatch(/width=480,height=720,left=\d+,top=\d+/);
    const url = openedUrl(open);
    expect(url.origin + url.pathname).toBe(`${APERTUR}/oauth/authorize`);
    const q = url.searchParams;
    expect(q.get("public_key")).toBe(KEY);
    expect(q.get("origin")).toBe(PARTNER);
    expect(q.get("response_type")).toBe("code");
    expect(q.get("scope")).toBe("upload:create project:read");
    expect(q.get("redirect_uri")).toBe("https://partner.example/callback");
    expect(q.has("ux_mode")).toBe(false);
    expect(state).toMatch(/^[0-9a-f]{32}$/);
  });

  it("centres the popup on the page's window also on a screen left of or above the main one", () => {
    // Such a screen has negative coordinates; left=0/top=0 would be on another screen (or the screen's edge).
    vi.spyOn(window, "screenX", "get").mockReturnValue(-1920);
    vi.spyOn(window, "screenY", "get").mockReturnValue(-1080);
    vi.spyOn(window, "outerWidth", "get").mockReturnValue(1920);
    vi.spyOn(window, "outerHeight", "get").mockReturnValue(1080);
    Object.defineProperty(window.screen, "availLeft", { value: -1920, configurable: true });
    Object.defineProperty(window.screen, "availTop", { value: -1080, configurable: true });
    try {
      const { open } = start();
      expect(open.mock.calls[0][2]).toBe("popup=yes,width=480,height=720,left=-1200,top=-900");
    } finally {
      delete (window.screen as unknown as Record<string, unknown>).availLeft;
      delete (window.screen as unknown as Record<string, unknown>).availTop;
    }
  });

  it("keeps the popup on the page's screen when the window is smaller than the popup", () => {
    vi.spyOn(window, "screenX", "get").mockReturnValue(0);
    vi.spyOn(window, "screenY", "get").mockReturnValue(0);
    vi.spyOn(window, "outerWidth", "get").mockReturnValue(400);
    vi.spyOn(window, "outerHeight", "get").mockReturnValue(600);
    const { open } = start();
    expect(open.mock.calls[0][2]).toBe("popup=yes,width=480,height=720,left=0,top=0");
  });

  it("omits redirect_uri and scope when not given, and uses the caller's state", () => {
    const { open, state } = start({ scopes: undefined, state: "my-csrf-value" });
    const q = openedUrl(open).searchParams;
    expect(q.has("redirect_uri")).toBe(false);
    expect(q.has("scope")).toBe(false);
    expect(state).toBe("my-csrf-value");
  });

  it("takes the answer for a state that is not a string (a number from the page's session)", async () => {
    // The URL carries it as text, and Apertur sends that text back: comparing it with the number ignored
    // the real answer, and the user who pressed Allow was reported as user_denied once the popup closed.
    const { popup, promise, state, onSuccess } = start({ state: 12345 as unknown as string });
    expect(state).toBe("12345");
    post({ source: "aptr-connect", code: "oac_1", state: "12345" }, { source: popup });
    expect(await peek(promise)).toEqual({ status: "fulfilled", value: { code: "oac_1", state: "12345" } });
    expect(onSuccess).toHaveBeenCalledOnce();
  });

  it("draws a fresh state for every call", () => {
    const first = start();
    post({ source: "aptr-connect", code: "c1", state: first.state }, { source: first.popup });
    const second = start();
    expect(second.state).not.toBe(first.state);
  });

  it("reports popup_blocked when window.open returns null", async () => {
    init({ publicKey: KEY, baseUrl: APERTUR });
    stubOpen(null);
    const onError = vi.fn();
    const promise = authorize({ onError });
    expect(onError).toHaveBeenCalledOnce();
    expect(onError.mock.calls[0][0]).toMatchObject({ code: "popup_blocked", message: expect.stringContaining("click") });
    await expect(promise).rejects.toMatchObject({ code: "popup_blocked" });
  });

  it("reports popup_blocked when the window comes back already closed", async () => {
    init({ publicKey: KEY, baseUrl: APERTUR });
    const popup = fakePopup();
    popup.closed = true;
    stubOpen(popup);
    await expect(authorize()).rejects.toMatchObject({ code: "popup_blocked" });
  });

  it("focuses the open popup instead of opening a second one, and returns the same promise", async () => {
    const { popup, open, promise, state, onSuccess } = start();
    const again = authorize({ scopes: ["project:read"] });
    expect(again).toBe(promise);
    expect(open).toHaveBeenCalledOnce();
    expect(popup.focus).toHaveBeenCalledOnce();
    post({ source: "aptr-connect", code: "c", state }, { source: popup });
    await expect(again).resolves.toEqual({ code: "c", state });
    expect(onSuccess).toHaveBeenCalledOnce();
  });

  it("opens a new popup once the previous flow is over", async () => {
    const first = start();
    post({ source: "aptr-connect", code: "c", state: first.state }, { source: first.popup });
    await first.promise;
    const second = start();
    expect(second.promise).not.toBe(first.promise);
    expect(second.open).toHaveBeenCalledOnce();
  });
});

describe("authorize: the answer", () => {
  it("resolves and calls onSuccess on Apertur's message from the popup", async () => {
    const { popup, promise, state, onSuccess, onError } = start();
    post({ source: "aptr-connect", code: "oac_123", state }, { source: popup });
    await expect(promise).resolves.toEqual({ code: "oac_123", state });
    expect(onSuccess).toHaveBeenCalledExactlyOnceWith({ code: "oac_123", state });
    expect(onError).not.toHaveBeenCalled();
    // Settled once: a late duplicate does nothing.
    post({ source: "aptr-connect", code: "oac_456", state }, { source: popup });
    expect(onSuccess).toHaveBeenCalledOnce();
  });

  it.each([
    ["another origin", (s: string, popup: unknown) => post({ source: "aptr-connect", code: "x", state: s }, { origin: "https://evil.test", source: popup })],
    ["the partner's own origin", (s: string, popup: unknown) => post({ source: "aptr-connect", code: "x", state: s }, { origin: PARTNER, source: popup })],
    ["another window", (s: string) => post({ source: "aptr-connect", code: "x", state: s }, { source: fakePopup() })],
    ["the page itself", (s: string) => post({ source: "aptr-connect", code: "x", state: s }, { source: window })],
    ["no source window", (s: string) => post({ source: "aptr-connect", code: "x", state: s }, { source: null })],
    ["a wrong state", (_s: string, popup: unknown) => post({ source: "aptr-connect", code: "x", state: "forged" }, { source: popup })],
    ["no state", (_s: string, popup: unknown) => post({ source: "aptr-connect", code: "x" }, { source: popup })],
    ["no source marker", (s: string, popup: unknown) => post({ code: "x", state: s }, { source: popup })],
    ["another marker", (s: string, popup: unknown) => post({ source: "other-sdk", code: "x", state: s }, { source: popup })],
    ["a string payload", (_s: string, popup: unknown) => post("aptr-connect code=x", { source: popup })],
    ["a null payload", (_s: string, popup: unknown) => post(null, { source: popup })],
    ["an empty code", (s: string, popup: unknown) => post({ source: "aptr-connect", code: "", state: s }, { source: popup })],
  ])("ignores a message from %s", async (_label, forge) => {
    const { popup, promise, state, onSuccess, onError } = start();
    forge(state, popup);
    expect(await peek(promise)).toEqual({ status: "pending" });
    expect(onSuccess).not.toHaveBeenCalled();
    expect(onError).not.toHaveBeenCalled();
    // The real answer still gets through afterwards.
    post({ source: "aptr-connect", code: "real", state }, { source: popup });
    await expect(promise).resolves.toEqual({ code: "real", state });
  });

  it.each([
    ["access_denied", "user_denied"],
    ["invalid_public_key", "invalid_public_key"],
    ["origin_not_allowed", "origin_not_allowed"],
    ["invalid_scope", "invalid_scope"],
    ["something_new", "server_error"],
  ])("maps the server's %s to %s", async (serverError, code) => {
    const { popup, promise, state, onSuccess, onError } = start();
    post({ source: "aptr-connect", error: serverError, error_description: "From the server.", state }, { source: popup });
    await expect(promise).rejects.toMatchObject({ code, message: "From the server." });
    expect(onError).toHaveBeenCalledOnce();
    const error = onError.mock.calls[0][0] as AptrConnectError;
    expect(error).toBeInstanceOf(AptrConnectError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe(code);
    expect(onSuccess).not.toHaveBeenCalled();
  });

  it("gives a readable message when the server sends no description", () => {
    expect(toAptrError("access_denied").message).toMatch(/cancel/);
    expect(toAptrError("origin_not_allowed").message).toMatch(/allowed domains/);
    expect(toAptrError("invalid_public_key").message).toMatch(/public key/);
  });

  it("settles the promise even when onSuccess throws", async () => {
    const { popup, promise, state } = start({
      onSuccess: () => {
        throw new Error("partner bug");
      },
    });
    const onWindowError = vi.fn((event: Event) => event.preventDefault());
    window.addEventListener("error", onWindowError);
    try {
      post({ source: "aptr-connect", code: "c", state }, { source: popup });
    } catch {
      // some DOM implementations rethrow listener errors to dispatchEvent's caller
    }
    window.removeEventListener("error", onWindowError);
    await expect(promise).resolves.toEqual({ code: "c", state });
  });
});

describe("authorize: the popup closed", () => {
  it("reports user_denied after the grace period when the popup closes without an answer", async () => {
    vi.useFakeTimers();
    const { popup, promise, onError } = start();
    vi.advanceTimersByTime(3000);
    expect(await peek(promise)).toEqual({ status: "pending" });
    popup.close();
    vi.advanceTimersByTime(300); // the poll notices
    expect(onError).not.toHaveBeenCalled();
    vi.advanceTimersByTime(300); // the grace period ends
    expect(onError).toHaveBeenCalledOnce();
    expect(onError.mock.calls[0][0]).toMatchObject({ code: "user_denied" });
    await expect(promise).rejects.toMatchObject({ code: "user_denied" });
  });

  it("still takes an answer posted just before the popup closed itself", async () => {
    vi.useFakeTimers();
    const { popup, promise, state, onError } = start();
    popup.close();
    vi.advanceTimersByTime(300);
    post({ source: "aptr-connect", code: "late", state }, { source: popup });
    vi.advanceTimersByTime(1000);
    await expect(promise).resolves.toEqual({ code: "late", state });
    expect(onError).not.toHaveBeenCalled();
  });

  it("stops polling once answered", async () => {
    vi.useFakeTimers();
    const { popup, promise, state } = start();
    post({ source: "aptr-connect", code: "c", state }, { source: popup });
    await promise;
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("authorize: redirect mode", () => {
  it("navigates the page with ux_mode=redirect and opens no popup", () => {
    init({ publicKey: KEY, baseUrl: APERTUR });
    const open = stubOpen();
    const assign = vi.spyOn(window.location, "assign").mockImplementation(() => undefined);
    authorize({ scopes: ["project:read"], redirectUri: "https://partner.example/cb", uxMode: "redirect", state: "s1" });
    expect(open).not.toHaveBeenCalled();
    expect(assign).toHaveBeenCalledOnce();
    const url = new URL(String(assign.mock.calls[0][0]));
    expect(url.origin).toBe(APERTUR);
    expect(url.searchParams.get("ux_mode")).toBe("redirect");
    expect(url.searchParams.get("public_key")).toBe(KEY);
    expect(url.searchParams.get("origin")).toBe(PARTNER);
    expect(url.searchParams.get("state")).toBe("s1");
    expect(url.searchParams.get("redirect_uri")).toBe("https://partner.example/cb");
  });
});

describe("where Apertur is", () => {
  it("is where the script came from, except a cdn. host, which serves files only", () => {
    expect(apertureOrigin("https://apertur.ca/sdk/aptr-connect.js")).toBe("https://apertur.ca");
    expect(apertureOrigin("https://cdn.apertur.ca/sdk/aptr-connect.js")).toBe("https://apertur.ca");
    expect(apertureOrigin("https://cdn.apertur.ca/sdk/v1.1.0/aptr-connect.js")).toBe("https://apertur.ca");
    expect(apertureOrigin("http://localhost:8000/sdk/aptr-connect.js")).toBe("http://localhost:8000");
    expect(apertureOrigin("https://apertur.example:8443/sdk/aptr-connect.js")).toBe("https://apertur.example:8443");
    expect(apertureOrigin("https://mycdn.example/sdk/aptr-connect.js")).toBe("https://mycdn.example");
    expect(apertureOrigin("file:///tmp/aptr-connect.js")).toBeNull();
    expect(apertureOrigin("not a url")).toBeNull();
  });

  // Module code evaluated while `src` is document.currentScript: a partner's bundle (a classic script, as webpack
  // and most bundlers emit) evaluates the npm package's modules while its own <script> is the current one.
  async function loadedBy<T>(src: string, load: () => Promise<T>): Promise<T> {
    const script = document.createElement("script");
    script.src = src;
    Object.defineProperty(document, "currentScript", { value: script, configurable: true });
    try {
      vi.resetModules();
      return await load();
    } finally {
      delete (document as unknown as Record<string, unknown>).currentScript;
    }
  }

  it("is https://apertur.ca for the npm package, whatever script bundled it (not the partner's site)", async () => {
    const sdk = await loadedBy("https://partner.example/static/js/main.3f2a.js", () => import("../src/index"));
    sdk.init({ publicKey: KEY });
    const open = stubOpen();
    sdk.authorize({ onError: () => undefined });
    expect(openedUrl(open).origin).toBe("https://apertur.ca");
    sdk.reset();
  });

  it("is the <script> build's own address", async () => {
    const sdk = await loadedBy("https://cdn.apertur.example/sdk/aptr-connect.js", () => import("../src/global"));
    sdk.init({ publicKey: KEY });
    const open = stubOpen();
    sdk.authorize({ onError: () => undefined });
    expect(openedUrl(open).origin).toBe("https://apertur.example");
    sdk.reset();
  });

  it("VERSION is the package's version (the bundle's banner and pinned URL)", () => {
    const pkg = JSON.parse(readFileSync(`${process.cwd()}/package.json`, "utf8")); // vitest runs in sdk/js
    expect(VERSION).toBe(pkg.version);
  });
});
