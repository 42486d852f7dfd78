import { act, useState } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConnectButton, useAptrConnect, type UseAptrConnectOptions } from "../src/react";
import { APERTUR, KEY, cleanSlate, fakePopup, openedState, openedUrl, post, stubOpen } from "./helpers";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLElement;
let root: Root;

beforeEach(() => {
  cleanSlate();
  container = document.body.appendChild(document.createElement("div"));
  root = createRoot(container);
});
afterEach(() => {
  act(() => root.unmount());
  cleanSlate();
});

function render(node: React.ReactNode): void {
  act(() => root.render(node));
}

function theButton(): HTMLButtonElement {
  return container.querySelector("button") as HTMLButtonElement;
}

/** Shows the hook's state in the DOM, the way an app would. */
function HookProbe(props: UseAptrConnectOptions) {
  const { open, ready, loading, error } = useAptrConnect(props);
  return (
    <div>
      <button onClick={open}>Connect</button>
      <output data-ready={String(ready)} data-loading={String(loading)} data-error={error ? error.code : ""} />
    </div>
  );
}

function probe(): { ready: string; loading: string; error: string } {
  const out = container.querySelector("output") as HTMLOutputElement;
  return { ready: out.dataset.ready!, loading: out.dataset.loading!, error: out.dataset.error! };
}

describe("useAptrConnect", () => {
  it("is ready with a valid key; open() opens the popup at once; loading until the answer", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onSuccess = vi.fn();
    render(<HookProbe publicKey={KEY} baseUrl={APERTUR} scopes={["project:read"]} onSuccess={onSuccess} />);
    expect(probe()).toEqual({ ready: "true", loading: "false", error: "" });

    act(() => theButton().click());
    expect(open).toHaveBeenCalledOnce(); // synchronously, inside the click
    expect(openedUrl(open).searchParams.get("public_key")).toBe(KEY);
    expect(probe().loading).toBe("true");

    const state = openedState(open);
    await act(async () => post({ source: "aptr-connect", code: "c", state }, { source: popup }));
    expect(onSuccess).toHaveBeenCalledExactlyOnceWith({ code: "c", state });
    expect(probe()).toEqual({ ready: "true", loading: "false", error: "" });
  });

  it("is not ready with an invalid key, says why, and open() reports it", () => {
    const open = stubOpen();
    const onError = vi.fn();
    render(<HookProbe publicKey="not a key" scopes={[]} onError={onError} />);
    expect(probe()).toEqual({ ready: "false", loading: "false", error: "invalid_public_key" });
    act(() => theButton().click());
    expect(open).not.toHaveBeenCalled();
    expect(onError.mock.calls[0][0]).toMatchObject({ code: "invalid_public_key" });
  });

  it("exposes the flow's error and calls onError", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onError = vi.fn();
    render(<HookProbe publicKey={KEY} baseUrl={APERTUR} onError={onError} />);
    act(() => theButton().click());
    await act(async () =>
      post({ source: "aptr-connect", error: "origin_not_allowed", state: openedState(open) }, { source: popup }),
    );
    expect(probe()).toEqual({ ready: "true", loading: "false", error: "origin_not_allowed" });
    expect(onError).toHaveBeenCalledOnce();
  });

  it("reports popup_blocked", async () => {
    stubOpen(null);
    const onError = vi.fn();
    render(<HookProbe publicKey={KEY} baseUrl={APERTUR} onError={onError} />);
    await act(async () => theButton().click());
    expect(probe()).toMatchObject({ loading: "false", error: "popup_blocked" });
    expect(onError).toHaveBeenCalledOnce();
  });

  it("a second open() focuses the open popup; callbacks fire once", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onSuccess = vi.fn();
    render(<HookProbe publicKey={KEY} baseUrl={APERTUR} onSuccess={onSuccess} />);
    act(() => theButton().click());
    act(() => theButton().click());
    expect(open).toHaveBeenCalledOnce();
    expect(popup.focus).toHaveBeenCalledOnce();
    await act(async () => post({ source: "aptr-connect", code: "c", state: openedState(open) }, { source: popup }));
    expect(onSuccess).toHaveBeenCalledOnce();
  });

  it("a second hook's open() while another hook's popup is open does not take that flow's code", async () => {
    // Two connect buttons on one page (a header and a card): the code is single-use, and handing it to both
    // handlers sends it to the backend twice, whose second exchange is a replay that revokes the first's tokens.
    const popup = fakePopup();
    const open = stubOpen(popup);
    const first = vi.fn();
    const second = vi.fn();
    render(
      <>
        <HookProbe publicKey={KEY} baseUrl={APERTUR} onSuccess={first} />
        <HookProbe publicKey={KEY} baseUrl={APERTUR} onSuccess={second} />
      </>,
    );
    const [a, b] = Array.from(container.querySelectorAll("button"));
    act(() => a.click());
    act(() => b.click()); // focuses the open popup
    expect(open).toHaveBeenCalledOnce();
    expect(popup.focus).toHaveBeenCalledOnce();
    await act(async () => post({ source: "aptr-connect", code: "c", state: openedState(open) }, { source: popup }));
    expect(first).toHaveBeenCalledOnce();
    expect(second).not.toHaveBeenCalled();
    const loading = Array.from(container.querySelectorAll("output"), (o) => (o as HTMLOutputElement).dataset.loading);
    expect(loading).toEqual(["false", "false"]);
  });

  it("is not left loading in redirect mode (the doc's disabled={!ready || loading} after Back)", () => {
    const assign = vi.spyOn(window.location, "assign").mockImplementation(() => undefined);
    render(<HookProbe publicKey={KEY} baseUrl={APERTUR} uxMode="redirect" />);
    act(() => theButton().click());
    expect(assign).toHaveBeenCalledOnce();
    expect(probe().loading).toBe("false");
  });

  it("calls the latest callbacks after a re-render", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const first = vi.fn();
    const second = vi.fn();
    render(<HookProbe publicKey={KEY} baseUrl={APERTUR} onSuccess={first} />);
    act(() => theButton().click());
    render(<HookProbe publicKey={KEY} baseUrl={APERTUR} onSuccess={second} />);
    await act(async () => post({ source: "aptr-connect", code: "c", state: openedState(open) }, { source: popup }));
    expect(first).not.toHaveBeenCalled();
    expect(second).toHaveBeenCalledOnce();
  });
});

describe("<ConnectButton>", () => {
  it("renders an accessible button, aria-busy while the popup is open", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    const onSuccess = vi.fn();
    render(
      <ConnectButton
        publicKey={KEY}
        baseUrl={APERTUR}
        scopes={["project:read", "upload:create"]}
        redirectUri="https://partner.example/cb"
        className="cta"
        onSuccess={onSuccess}
      />,
    );
    const btn = theButton();
    expect(btn.textContent).toBe("Connect with Apertur");
    expect(btn.type).toBe("button");
    expect(btn.className).toBe("cta");
    expect(btn.disabled).toBe(false);
    expect(btn.getAttribute("aria-busy")).toBe("false");

    act(() => btn.click());
    expect(open).toHaveBeenCalledOnce();
    const q = openedUrl(open).searchParams;
    expect(q.get("scope")).toBe("project:read upload:create");
    expect(q.get("redirect_uri")).toBe("https://partner.example/cb");
    expect(theButton().getAttribute("aria-busy")).toBe("true");

    const state = openedState(open);
    await act(async () => post({ source: "aptr-connect", code: "oac_1", state }, { source: popup }));
    expect(theButton().getAttribute("aria-busy")).toBe("false");
    expect(onSuccess).toHaveBeenCalledExactlyOnceWith({ code: "oac_1", state });
  });

  it("takes children as its label and is disabled with a bad key", () => {
    render(<ConnectButton publicKey="aptr_cs_secret">Link Apertur</ConnectButton>);
    expect(theButton().textContent).toBe("Link Apertur");
    expect(theButton().disabled).toBe(true);
  });

  it("renders the code it receives, as a partner page would", async () => {
    const popup = fakePopup();
    const open = stubOpen(popup);
    function Page() {
      const [code, setCode] = useState("");
      return (
        <>
          <ConnectButton publicKey={KEY} baseUrl={APERTUR} onSuccess={(r) => setCode(r.code)} />
          <p>{code}</p>
        </>
      );
    }
    render(<Page />);
    act(() => theButton().click());
    await act(async () => post({ source: "aptr-connect", code: "oac_xyz", state: openedState(open) }, { source: popup }));
    expect(container.querySelector("p")?.textContent).toBe("oac_xyz");
  });
});
