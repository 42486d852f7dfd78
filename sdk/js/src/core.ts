import { AptrConnectError, sdkError, toAptrError } from "./errors";

export const VERSION = "1.1.2";
const DEFAULT_BASE_URL = "https://apertur.ca";
const POPUP_NAME = "aptr-connect";
const POPUP_WIDTH = 480;
const POPUP_HEIGHT = 720;
const CLOSED_POLL_MS = 300;

export interface InitOptions {
  /** `aptr_live_pk_…` or `aptr_test_pk_…`, from your OAuth app's settings. Safe in front-end code. */
  publicKey: string;
  /** Apertur's address. Defaults to the origin the SDK script was loaded from. */
  baseUrl?: string;
}

export interface AuthorizeResult {
  /** The authorization code: send it to your server, which exchanges it with your client secret. */
  code: string;
  state: string;
}

export interface AuthorizeOptions {
  scopes?: string[];
  /** Must be one of the app's redirect URIs; may be omitted when the app has exactly one. */
  redirectUri?: string;
  /** Your own CSRF value; generated when omitted. Returned with the result. */
  state?: string;
  /** "popup" (default) or "redirect" for browsers and webviews where popups are unusable. */
  uxMode?: "popup" | "redirect";
  onSuccess?: (result: AuthorizeResult) => void;
  onError?: (error: AptrConnectError) => void;
}

export interface Config {
  publicKey: string;
  baseUrl: string;
  origin: string;
}

interface Flow {
  popup: Window;
  promise: Promise<AuthorizeResult>;
  /** Stop listening and polling, without calling back (used by reset()). */
  stop: () => void;
}

let config: Config | null = null;
let current: Flow | null = null;

/**
 * Apertur's address, from the address this script was loaded from: Apertur serves the SDK, so that is Apertur,
 * except on a CDN host (`cdn.<domain>`, as the Help Center's `https://cdn.apertur.ca/sdk/aptr-connect.js`),
 * which only serves files: the popup and the API are on `<domain>`.
 */
export function apertureOrigin(scriptSrc: string): string | null {
  try {
    const url = new URL(scriptSrc);
    if (!/^https?:$/.test(url.protocol)) return null;
    const host = url.hostname.startsWith("cdn.") ? url.host.slice("cdn.".length) : url.host;
    return `${url.protocol}//${host}`;
  } catch {
    return null;
  }
}

let scriptOrigin: string | null = null;

/**
 * For the `<script>` build only (global.ts), while it runs: Apertur is where that script came from. The npm
 * package must not look: in a partner's bundle, `document.currentScript` is the partner's own script, and the
 * popup would open on the partner's site; there `baseUrl` defaults to https://apertur.ca.
 */
export function adoptScriptOrigin(): void {
  const script = typeof document !== "undefined" ? (document.currentScript as HTMLScriptElement | null) : null;
  scriptOrigin = script && script.src ? apertureOrigin(script.src) : null;
}

/** Validate init() options without side effects (the React and Vue wrappers use it for `ready`). */
export function resolveConfig(options: InitOptions): Config {
  const key = options && options.publicKey;
  if (typeof key === "string" && /^aptr_cs_/.test(key)) {
    throw new AptrConnectError(
      "invalid_public_key",
      "This is your client secret: never put it in front-end code. init() takes the public key (aptr_live_pk_…).",
    );
  }
  if (typeof key === "string" && /^aptr_ci_/.test(key)) {
    throw new AptrConnectError(
      "invalid_public_key",
      "This is your client ID. init() takes the app's public key (aptr_live_pk_… or aptr_test_pk_…).",
    );
  }
  if (typeof key === "string" && /^(aptr_(live|test)_sk_|oat_|ort_)/.test(key)) {
    throw new AptrConnectError(
      "invalid_public_key",
      "This is a secret API key or an access token: never put it in front-end code. init() takes the app's public key (aptr_live_pk_… or aptr_test_pk_…).",
    );
  }
  // Anything else that could be a key goes to Apertur, which answers invalid_public_key through onError
  // when it is unknown or deactivated: the same path whether the key is mistyped or regenerated.
  if (typeof key !== "string" || !/^[A-Za-z0-9_-]+$/.test(key)) {
    throw new AptrConnectError("invalid_public_key", "init() needs a public key like aptr_live_pk_… or aptr_test_pk_….");
  }
  const baseUrl = (options.baseUrl || scriptOrigin || DEFAULT_BASE_URL).replace(/\/+$/, "");
  let url: URL | null = null;
  try {
    url = new URL(baseUrl);
  } catch {
    // reported below
  }
  if (!url || !/^https?:$/.test(url.protocol)) {
    throw new AptrConnectError("invalid_request", `baseUrl must be an http(s) URL like https://apertur.ca, not ${baseUrl}.`);
  }
  return { publicKey: key, baseUrl, origin: url.origin };
}

export function init(options: InitOptions): void {
  config = resolveConfig(options);
}

/** The current configuration, or null before init(). */
export function currentConfig(): Config | null {
  return config;
}

/** For tests and single-page apps that switch keys: forgets the key and abandons an open flow. */
export function reset(): void {
  if (current) current.stop();
  config = null;
  current = null;
}

/** The promise of the flow whose popup is open, or null: authorize() hands it back (and focuses the popup)
 * instead of starting another flow, so the wrappers can tell a flow of their own from someone else's. */
export function openFlow(): Promise<AuthorizeResult> | null {
  return current && !current.popup.closed ? current.promise : null;
}

export function isInitialized(): boolean {
  return config !== null;
}

function randomState(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function authorizeUrl(cfg: Config, options: AuthorizeOptions, state: string): string {
  const params = new URLSearchParams();
  params.set("public_key", cfg.publicKey);
  params.set("origin", window.location.origin);
  params.set("response_type", "code");
  params.set("state", state);
  if (options.scopes && options.scopes.length) params.set("scope", options.scopes.join(" "));
  if (options.redirectUri) params.set("redirect_uri", options.redirectUri);
  if (options.uxMode === "redirect") params.set("ux_mode", "redirect");
  return `${cfg.baseUrl}/oauth/authorize?${params.toString()}`;
}

/** Centred on the page's window. A screen left of or above the primary one has negative coordinates: the popup
 * is kept on the window's own screen (its `availLeft`/`availTop` where the browser gives them), never moved to 0,
 * which is another screen's edge. */
function popupFeatures(): string {
  const outerX = window.screenX ?? 0;
  const outerY = window.screenY ?? 0;
  const display = window.screen as Screen & { availLeft?: number; availTop?: number };
  const minLeft = typeof display.availLeft === "number" ? display.availLeft : Math.min(0, outerX);
  const minTop = typeof display.availTop === "number" ? display.availTop : Math.min(0, outerY);
  const left = Math.max(minLeft, Math.round(outerX + (window.outerWidth - POPUP_WIDTH) / 2));
  const top = Math.max(minTop, Math.round(outerY + (window.outerHeight - POPUP_HEIGHT) / 2));
  return `popup=yes,width=${POPUP_WIDTH},height=${POPUP_HEIGHT},left=${left},top=${top}`;
}

/**
 * Start the consent flow. Call it synchronously inside a click handler: the popup is opened at once,
 * and a browser blocks popups opened later. Resolves with `{code, state}`; rejects (and calls `onError`)
 * with an `AptrConnectError`.
 */
export function authorize(options: AuthorizeOptions = {}): Promise<AuthorizeResult> {
  const fail = (error: AptrConnectError): Promise<AuthorizeResult> => {
    const rejected = Promise.reject(error);
    // The callback reports it; do not also surface an "unhandled rejection".
    if (options.onError) {
      rejected.catch(() => undefined);
      options.onError(error);
    }
    return rejected;
  };
  if (!config) return fail(sdkError("not_initialized"));
  if (current && !current.popup.closed) {
    current.popup.focus();
    return current.promise;
  }
  const cfg = config;
  // As text: that is what the URL carries and Apertur sends back (a number from the page's session would never
  // equal the answer's state, and the real answer would be ignored).
  const state = options.state ? String(options.state) : randomState();
  const url = authorizeUrl(cfg, options, state);

  if (options.uxMode === "redirect") {
    window.location.assign(url);
    return new Promise<AuthorizeResult>(() => undefined); // the page is leaving
  }

  const popup = window.open(url, POPUP_NAME, popupFeatures());
  // Some blockers hand back a window that is already closed instead of null.
  if (!popup || popup.closed) return fail(sdkError("popup_blocked"));

  let stop: () => void = () => undefined;
  const promise = new Promise<AuthorizeResult>((resolve, reject) => {
    let settled = false;
    let timer: ReturnType<typeof setInterval> | undefined;
    let grace: ReturnType<typeof setTimeout> | undefined;

    stop = (): void => {
      settled = true;
      window.removeEventListener("message", onMessage);
      clearInterval(timer);
      clearTimeout(grace);
    };

    // Settle first, then call back: a callback that throws must not leave the promise pending.
    const finish = (error: AptrConnectError | null, result?: AuthorizeResult): void => {
      if (settled) return;
      stop();
      if (current && current.popup === popup) current = null;
      if (error) {
        reject(error);
        options.onError?.(error);
      } else if (result) {
        resolve(result);
        options.onSuccess?.(result);
      }
    };

    // Accept only Apertur's answer, from our own popup, for this call: anything else is ignored.
    const onMessage = (event: MessageEvent): void => {
      if (event.origin !== cfg.origin || event.source !== popup) return;
      const data = event.data as Record<string, unknown> | null;
      if (!data || typeof data !== "object" || data.source !== "aptr-connect" || data.state !== state) return;
      if (typeof data.code === "string" && data.code) {
        finish(null, { code: data.code, state });
      } else if (typeof data.error === "string") {
        finish(toAptrError(data.error, typeof data.error_description === "string" ? data.error_description : undefined));
      }
    };
    window.addEventListener("message", onMessage);

    // Closed without an answer: the user walked away. A final grace period lets a message posted just
    // before the popup closed itself arrive first.
    timer = setInterval(() => {
      if (!popup.closed) return;
      clearInterval(timer);
      grace = setTimeout(() => finish(sdkError("user_denied")), CLOSED_POLL_MS);
    }, CLOSED_POLL_MS);
  });
  // Callers using only callbacks must not see an unhandled rejection.
  if (options.onError) promise.catch(() => undefined);
  current = { popup, promise, stop };
  return promise;
}
