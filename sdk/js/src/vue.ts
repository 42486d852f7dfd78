// Vue wrapper: a composable and a button component over the core SDK (render function, no SFC compiler).
import { computed, defineComponent, h, ref, toValue, type MaybeRefOrGetter, type PropType } from "vue";
import { authorize, init, openFlow, resolveConfig, type AuthorizeOptions, type AuthorizeResult, type InitOptions } from "./core";
import type { AptrConnectError } from "./errors";

export type { AuthorizeResult } from "./core";
export { AptrConnectError } from "./errors";

export interface UseAptrConnectOptions
  extends InitOptions,
    Pick<AuthorizeOptions, "scopes" | "redirectUri" | "state" | "uxMode"> {
  onSuccess?: (result: AuthorizeResult) => void;
  onError?: (error: AptrConnectError) => void;
}

/** `options` may be a plain object, a reactive one, a ref or a getter: it is read when needed. */
export function useAptrConnect(options: MaybeRefOrGetter<UseAptrConnectOptions>) {
  const loading = ref(false);
  const failure = ref<AptrConnectError | null>(null);
  const configError = computed(() => {
    const o = toValue(options);
    try {
      resolveConfig({ publicKey: o.publicKey, baseUrl: o.baseUrl });
      return null;
    } catch (e) {
      return e as AptrConnectError;
    }
  });

  let flow: Promise<AuthorizeResult> | null = null;

  /** Opens the consent popup. Call it from a click handler: browsers block popups opened later. */
  function open(): void {
    const o = toValue(options);
    const settle = (pending: Promise<AuthorizeResult> | null, e: AptrConnectError | null, result?: AuthorizeResult) => {
      if (flow !== pending) return; // a flow this composable has since replaced
      flow = null;
      loading.value = false;
      failure.value = e;
      if (e) o.onError?.(e);
      else o.onSuccess?.(result as AuthorizeResult);
    };
    try {
      init({ publicKey: o.publicKey, baseUrl: o.baseUrl });
    } catch (e) {
      flow = null;
      return settle(null, e as AptrConnectError);
    }
    const existing = openFlow();
    const pending = authorize({ scopes: o.scopes, redirectUri: o.redirectUri, state: o.state, uxMode: o.uxMode });
    // A popup is already open (this one's or another button's): authorize() focused it. Its result belongs to
    // the caller that opened it; taking it here too would send the single-use code to the backend twice.
    if (pending === existing) return;
    // Redirect mode: the page leaves and the promise never settles. Not loading, or Back, which can restore this
    // very page from the back/forward cache, would leave a button disabled by `loading` for good.
    if (o.uxMode === "redirect") {
      failure.value = null;
      return;
    }
    flow = pending;
    loading.value = true;
    failure.value = null;
    pending.then(
      (result) => settle(pending, null, result),
      (e: AptrConnectError) => settle(pending, e),
    );
  }

  return {
    open,
    ready: computed(() => !configError.value),
    loading,
    error: computed(() => failure.value || configError.value),
  };
}

/** `<ConnectButton public-key="aptr_live_pk_…" :scopes="[…]" @success="…" @error="…">`: an accessible
 * `<button>`, `aria-busy` while the popup is open; its default slot replaces the label. */
export const ConnectButton = defineComponent({
  name: "ConnectButton",
  props: {
    publicKey: { type: String, required: true },
    scopes: { type: [Array, String] as PropType<string[] | string>, default: () => [] },
    redirectUri: String,
    baseUrl: String,
    state: String,
    uxMode: String as PropType<"popup" | "redirect">,
  },
  emits: {
    success: (result: AuthorizeResult) => !!result,
    error: (error: AptrConnectError) => !!error,
  },
  setup(props, { emit, slots }) {
    const { open, ready, loading } = useAptrConnect(() => ({
      publicKey: props.publicKey,
      baseUrl: props.baseUrl,
      scopes: typeof props.scopes === "string" ? props.scopes.split(/\s+/).filter(Boolean) : props.scopes,
      redirectUri: props.redirectUri,
      state: props.state,
      uxMode: props.uxMode,
      onSuccess: (result) => emit("success", result),
      onError: (error) => emit("error", error),
    }));
    return () =>
      h(
        "button",
        { type: "button", onClick: open, disabled: !ready.value, "aria-busy": String(loading.value) },
        slots.default ? slots.default() : "Connect with Apertur",
      );
  },
});
