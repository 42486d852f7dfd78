/** Error codes the SDK reports to `onError` and rejects its promise with (the seed's table, plus the
 * OAuth errors the server may return). */
export type AptrErrorCode =
  | "invalid_public_key"
  | "origin_not_allowed"
  | "user_denied"
  | "popup_blocked"
  | "not_initialized"
  | "invalid_request"
  | "invalid_scope"
  | "unauthorized_client"
  | "server_error";

export class AptrConnectError extends Error {
  readonly code: AptrErrorCode;

  constructor(code: AptrErrorCode, message: string) {
    super(message);
    this.name = "AptrConnectError";
    this.code = code;
  }
}

const MESSAGES: Record<string, string> = {
  invalid_public_key: "The public key was not found or is deactivated. Check it in your partner dashboard.",
  origin_not_allowed: "This page's origin is not in the app's allowed domains.",
  user_denied: "The user cancelled the authorization.",
  popup_blocked: "The browser blocked the popup. Call authorize() from a click handler.",
  not_initialized: "Call AptrConnect.init({ publicKey }) before authorize().",
};

const KNOWN = new Set<string>([
  "invalid_public_key",
  "origin_not_allowed",
  "user_denied",
  "popup_blocked",
  "not_initialized",
  "invalid_request",
  "invalid_scope",
  "unauthorized_client",
  "server_error",
]);

/** Map an OAuth or SDK error from the server to the SDK's vocabulary (`access_denied` → `user_denied`). */
export function toAptrError(error: string, description?: string): AptrConnectError {
  const code = (error === "access_denied" ? "user_denied" : KNOWN.has(error) ? error : "server_error") as AptrErrorCode;
  return new AptrConnectError(code, description || MESSAGES[code] || error);
}

export function sdkError(code: AptrErrorCode): AptrConnectError {
  return new AptrConnectError(code, MESSAGES[code] || code);
}
