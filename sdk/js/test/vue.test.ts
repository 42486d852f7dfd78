import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createApp, defineComponent, h, nextTick, reactive, ref, type App } from "vue";
import { ConnectButton, useAptrConnect } from "../src/vue";
import type { AptrConnectError } from "../src/errors";
import { APERTUR, KEY, cleanSlate, fakePopup, flush, openedState, openedUrl, post, stubOpen } from "./helpers";

let app: App | null = null;
let container: HTMLElement;

beforeEach(() => {
  cleanSlate();
  container = document.body.appendChild(document.createElement("div"));
});
afterEach(() => {
  app?.unmount();
  app = null;
  cleanSlate();
});

function mount(component: Parameters<typeof createApp>[0], props?: Record<string, unknown>): void {
  app = createApp(component, props);
  app.config.warnHandler = (msg) => {
    throw new Error(`Vue warning: ${msg}`);
  };
  app.mount(container);
}

function theButton(): HTMLButtonElement {
  return container.querySelector("button") as HTMLButtonElement;
}

async function settle(): Promise<void> {
  await flush();
  await nextTick();
}

describe("useAptrConnect (composable)", () => {
  function probe(options: Parameters<typeof useAptrConnect>[0]) {
    const exposed: { value?: ReturnType<typeof useAptrConnect> } = {};
    const Probe = defineComponent({
      setup() {
        exposed.value = useAptrConnect(options);
        const { open, loading } = exposed.value;
        return () => h("button", { onClick: open, "aria-busy": String(loading.value) }, "Connect");
      },
    });
    mount(Probe);
    return exposed.value!;
  }

  it("returns refs: ready, loading, error; open() opens the popup at once", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onSuccess = vi.fn();
    const { ready, loading, error } = probe({ publicKey: KEY, baseUrl: APERTUR, scopes: ["project:read"], onSuccess });
    expect(ready.value).toBe(true);
    expect(loading.value).toBe(false);
    expect(error.value).toBeNull();

    theButton().click();
    expect(open).toHaveBeenCalledOnce();
    expect(openedUrl(open).searchParams.get("scope")).toBe("project:read");
    expect(loading.value).toBe(true);
    await nextTick();
    expect(theButton().getAttribute("aria-busy")).toBe("true");

    const state = openedState(open);
    post({ source: "aptr-connect", code: "c", state }, { source: popup });
    await settle();
    expect(loading.value).toBe(false);
    expect(onSuccess).toHaveBeenCalledExactlyOnceWith({ code: "c", state });
    expect(theButton().getAttribute("aria-busy")).toBe("false");
  });

  it("follows reactive options: ready turns false with a bad key", async () => {
    const options = reactive({ publicKey: KEY, baseUrl: APERTUR });
    const { ready, error } = probe(options);
    expect(ready.value).toBe(true);
    options.publicKey = "aptr_cs_secret";
    await nextTick();
    expect(ready.value).toBe(false);
    expect(error.value?.code).toBe("invalid_public_key");
  });

  it("accepts a ref or a getter", () => {
    const key = ref(KEY);
    expect(probe(() => ({ publicKey: key.value, baseUrl: APERTUR })).ready.value).toBe(true);
    app?.unmount();
    expect(probe(ref({ publicKey: "bad key" })).ready.value).toBe(false);
  });

  it("sets error and calls onError (access_denied → user_denied)", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onError = vi.fn();
    const { error, loading } = probe({ publicKey: KEY, baseUrl: APERTUR, onError });
    theButton().click();
    post({ source: "aptr-connect", error: "access_denied", state: openedState(open) }, { source: popup });
    await settle();
    expect(error.value?.code).toBe("user_denied");
    expect(loading.value).toBe(false);
    expect(onError).toHaveBeenCalledOnce();
  });

  it("is not left loading in redirect mode (a page restored by Back must still connect)", () => {
    const assign = vi.spyOn(window.location, "assign").mockImplementation(() => undefined);
    const { loading } = probe({ publicKey: KEY, baseUrl: APERTUR, uxMode: "redirect" });
    theButton().click();
    expect(assign).toHaveBeenCalledOnce();
    expect(loading.value).toBe(false);
  });

  it("a second open() focuses the open popup", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onSuccess = vi.fn();
    probe({ publicKey: KEY, baseUrl: APERTUR, onSuccess });
    theButton().click();
    theButton().click();
    expect(open).toHaveBeenCalledOnce();
    expect(popup.focus).toHaveBeenCalledOnce();
    post({ source: "aptr-connect", code: "c", state: openedState(open) }, { source: popup });
    await settle();
    expect(onSuccess).toHaveBeenCalledOnce();
  });
});

describe("two composables on one page", () => {
  it("the second one's open() while the first one's popup is open does not take that flow's code", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const first = vi.fn();
    const second = vi.fn();
    const Two = defineComponent({
      setup() {
        const a = useAptrConnect({ publicKey: KEY, baseUrl: APERTUR, onSuccess: first });
        const b = useAptrConnect({ publicKey: KEY, baseUrl: APERTUR, onSuccess: second });
        return () => [
          h("button", { id: "a", onClick: a.open, "aria-busy": String(a.loading.value) }, "A"),
          h("button", { id: "b", onClick: b.open, "aria-busy": String(b.loading.value) }, "B"),
        ];
      },
    });
    mount(Two);
    (container.querySelector("#a") as HTMLButtonElement).click();
    (container.querySelector("#b") as HTMLButtonElement).click(); // focuses the open popup
    expect(open).toHaveBeenCalledOnce();
    expect(popup.focus).toHaveBeenCalledOnce();
    post({ source: "aptr-connect", code: "c", state: openedState(open) }, { source: popup });
    await settle();
    expect(first).toHaveBeenCalledOnce();
    expect(second).not.toHaveBeenCalled();
    expect(Array.from(container.querySelectorAll("button"), (b) => b.getAttribute("aria-busy"))).toEqual([
      "false",
      "false",
    ]);
  });
});

describe("<ConnectButton> (component)", () => {
  it("renders an accessible button, aria-busy while open, emits success", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onSuccess = vi.fn();
    mount(ConnectButton, {
      publicKey: KEY,
      baseUrl: APERTUR,
      scopes: ["project:read", "upload:create"],
      redirectUri: "https://partner.example/cb",
      onSuccess,
    });
    const btn = theButton();
    expect(btn.type).toBe("button");
    expect(btn.textContent).toBe("Connect with Apertur");
    expect(btn.disabled).toBe(false);
    expect(btn.getAttribute("aria-busy")).toBe("false");

    btn.click();
    expect(open).toHaveBeenCalledOnce();
    const q = openedUrl(open).searchParams;
    expect(q.get("public_key")).toBe(KEY);
    expect(q.get("scope")).toBe("project:read upload:create");
    expect(q.get("redirect_uri")).toBe("https://partner.example/cb");
    await nextTick();
    expect(theButton().getAttribute("aria-busy")).toBe("true");

    const state = openedState(open);
    post({ source: "aptr-connect", code: "oac_1", state }, { source: popup });
    await settle();
    expect(onSuccess).toHaveBeenCalledExactlyOnceWith({ code: "oac_1", state });
    expect(theButton().getAttribute("aria-busy")).toBe("false");
  });

  it("emits error", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const errors: AptrConnectError[] = [];
    mount(ConnectButton, { publicKey: KEY, baseUrl: APERTUR, scopes: "project:read", onError: (e: AptrConnectError) => errors.push(e) });
    theButton().click();
    expect(openedUrl(open).searchParams.get("scope")).toBe("project:read");
    post({ source: "aptr-connect", error: "invalid_scope", error_description: "Unknown scope.", state: openedState(open) }, { source: popup });
    await settle();
    expect(errors.map((e) => [e.code, e.message])).toEqual([["invalid_scope", "Unknown scope."]]);
  });

  it("uses its default slot as the label and is disabled with a bad key", () => {
    mount(defineComponent({ render: () => h(ConnectButton, { publicKey: "not a key" }, () => "Link Apertur") }));
    expect(theButton().textContent).toBe("Link Apertur");
    expect(theButton().disabled).toBe(true);
  });
});
