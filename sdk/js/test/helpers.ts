import { vi, type MockInstance } from "vitest";
import { reset } from "../src/core";

export const APERTUR = "https://apertur.test";
export const PARTNER = "http://partner.localhost:3000";
export const KEY = "aptr_test_pk_Abc123";

export interface FakePopup {
  closed: boolean;
  focus: ReturnType<typeof vi.fn>;
  close(): void;
}

export function fakePopup(): FakePopup {
  return {
    closed: false,
    focus: vi.fn(),
    close() {
      this.closed = true;
    },
  };
}

/** window.open returns `popup` (or null: a blocked popup); the spy records the URL, name and features. */
export function stubOpen(popup: FakePopup | null = fakePopup()): MockInstance<typeof window.open> {
  return vi.spyOn(window, "open").mockImplementation(() => popup as unknown as Window);
}

export function openedUrl(spy: MockInstance<typeof window.open>, call = 0): URL {
  return new URL(String(spy.mock.calls[call][0]));
}

/** The state the SDK put in the authorize URL of window.open's `call`-th call. */
export function openedState(spy: MockInstance<typeof window.open>, call = 0): string {
  return openedUrl(spy, call).searchParams.get("state") as string;
}

/** What Apertur's popup page does: postMessage to the opener. */
export function post(data: unknown, { origin = APERTUR, source }: { origin?: string; source: unknown }): void {
  window.dispatchEvent(new MessageEvent("message", { origin, source: source as Window, data }));
}

/** Resolves to "pending", or to the settled value/error, without waiting for a pending promise. */
export async function peek<T>(promise: Promise<T>): Promise<{ status: "pending" | "fulfilled" | "rejected"; value?: unknown }> {
  const marker = Symbol("pending");
  try {
    const value = await Promise.race([promise, Promise.resolve().then(() => Promise.resolve(marker))]);
    return value === marker ? { status: "pending" } : { status: "fulfilled", value };
  } catch (error) {
    return { status: "rejected", value: error };
  }
}

/** Let promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

export function cleanSlate(): void {
  reset();
  document.body.innerHTML = "";
}
