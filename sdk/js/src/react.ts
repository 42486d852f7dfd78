// React wrapper: a hook and a button over the core SDK, as thin as react-plaid-link's usePlaidLink.
import {
  createElement,
  useCallback,
  useMemo,
  useRef,
  useState,
  type ButtonHTMLAttributes,
  type ReactElement,
  type ReactNode,
} from "react";
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

export interface UseAptrConnect {
  /** Opens the consent popup. Call it from a click handler: browsers block popups opened later. */
  open: () => void;
  /** The public key and baseUrl are valid: open() can start a flow. */
  ready: boolean;
  /** A flow is in progress (the popup is open). */
  loading: boolean;
  /** The last flow's error, or the configuration error that keeps `ready` false. */
  error: AptrConnectError | null;
}

export function useAptrConnect(options: UseAptrConnectOptions): UseAptrConnect {
  const latest = useRef(options);
  latest.current = options; // callbacks and scopes are read at click time, never stale
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<AptrConnectError | null>(null);
  const flow = useRef<Promise<AuthorizeResult> | null>(null);

  const configError = useMemo(() => {
    try {
      resolveConfig({ publicKey: options.publicKey, baseUrl: options.baseUrl });
      return null;
    } catch (e) {
      return e as AptrConnectError;
    }
  }, [options.publicKey, options.baseUrl]);

  const open = useCallback(() => {
    const o = latest.current;
    const settle = (pending: Promise<AuthorizeResult> | null, e: AptrConnectError | null, result?: AuthorizeResult) => {
      if (flow.current !== pending) return; // a flow this hook has since replaced
      flow.current = null;
      setLoading(false);
      setError(e);
      if (e) latest.current.onError?.(e);
      else latest.current.onSuccess?.(result as AuthorizeResult);
    };
    try {
      init({ publicKey: o.publicKey, baseUrl: o.baseUrl }); // this hook's key, even with several on a page
    } catch (e) {
      flow.current = null;
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
      setError(null);
      return;
    }
    flow.current = pending;
    setLoading(true);
    setError(null);
    pending.then(
      (result) => settle(pending, null, result),
      (e: AptrConnectError) => settle(pending, e),
    );
  }, []);

  return { open, ready: !configError, loading, error: error || configError };
}

export interface ConnectButtonProps
  extends UseAptrConnectOptions,
    Omit<ButtonHTMLAttributes<HTMLButtonElement>, "onError" | "onClick" | "type"> {
  children?: ReactNode;
}

/** A plain, accessible `<button>` (style it with className): `aria-busy` while the popup is open. */
export function ConnectButton(props: ConnectButtonProps): ReactElement {
  const { publicKey, baseUrl, scopes, redirectUri, state, uxMode, onSuccess, onError, children, disabled, ...rest } =
    props;
  const { open, ready, loading } = useAptrConnect({
    publicKey,
    baseUrl,
    scopes,
    redirectUri,
    state,
    uxMode,
    onSuccess,
    onError,
  });
  return createElement(
    "button",
    { ...rest, type: "button", onClick: open, disabled: disabled || !ready, "aria-busy": loading },
    children ?? "Connect with Apertur",
  );
}
