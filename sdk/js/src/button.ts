import { authorize, init, isInitialized, type AuthorizeOptions, type AuthorizeResult } from "./core";
import type { AptrConnectError } from "./errors";

export interface ButtonOptions extends AuthorizeOptions {
  /** Button text. Default: "Connect with Apertur". */
  label?: string;
  /** "light", "dark" or "auto" (follows prefers-color-scheme). Default "auto". */
  theme?: "light" | "dark" | "auto";
}

const CSS = `
:host { display: inline-block; }
button {
  font: 600 15px/1 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  display: inline-flex; align-items: center; gap: 10px;
  padding: 11px 18px; border-radius: 8px; cursor: pointer;
  border: 1px solid #3b5bdb; background: #3b5bdb; color: #fff;
  transition: background .15s, box-shadow .15s;
}
button:hover { background: #364fc7; }
button:focus-visible { outline: none; box-shadow: 0 0 0 3px #fff, 0 0 0 5px #3b5bdb; }
button[aria-busy="true"] { cursor: progress; opacity: .8; }
button[disabled] { cursor: not-allowed; opacity: .6; }
.mark { width: 18px; height: 18px; border-radius: 50%; background: #fff; display: inline-grid; place-items: center; }
.mark::after { content: ""; width: 8px; height: 8px; border-radius: 50%; background: #3b5bdb; }
:host([data-theme="dark"]) button { background: #1a1f25; border-color: #748ffc; color: #e8eaed; }
:host([data-theme="dark"]) button:hover { background: #232a33; }
:host([data-theme="dark"]) .mark::after { background: #1a1f25; }
@media (prefers-color-scheme: dark) {
  :host([data-theme="auto"]) button { background: #1a1f25; border-color: #748ffc; color: #e8eaed; }
  :host([data-theme="auto"]) button:hover { background: #232a33; }
  :host([data-theme="auto"]) .mark::after { background: #1a1f25; }
}
`;

let sheet: CSSStyleSheet | null = null;

/** Styles go through a constructed stylesheet: no <style> element, so a strict CSP needs no
 * 'unsafe-inline' for them. */
function styles(root: ShadowRoot): void {
  if (typeof CSSStyleSheet !== "undefined" && "adoptedStyleSheets" in root) {
    try {
      sheet = sheet || new CSSStyleSheet();
      if (!sheet.cssRules.length) sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
      return;
    } catch {
      // fall through: environments without constructable stylesheets
    }
  }
  const style = document.createElement("style");
  style.textContent = CSS;
  root.appendChild(style);
}

function render(host: HTMLElement, label: string, theme: string): HTMLButtonElement {
  host.setAttribute("data-theme", theme);
  const root = host.shadowRoot || host.attachShadow({ mode: "open" });
  root.innerHTML = "";
  styles(root);
  const btn = document.createElement("button");
  btn.type = "button";
  btn.setAttribute("part", "button");
  const mark = document.createElement("span");
  mark.className = "mark";
  mark.setAttribute("aria-hidden", "true");
  const text = document.createElement("span");
  text.textContent = label;
  btn.append(mark, text);
  root.appendChild(btn);
  return btn;
}

function wire(btn: HTMLButtonElement, getOptions: () => AuthorizeOptions): void {
  btn.addEventListener("click", () => {
    if (btn.getAttribute("aria-busy") === "true") return;
    btn.setAttribute("aria-busy", "true");
    const done = (): void => btn.setAttribute("aria-busy", "false");
    // authorize() opens the popup synchronously, inside this click.
    authorize(getOptions()).then(done, done);
  });
}

/** Render a "Connect with Apertur" button into `element`. Returns the button. */
export function button(element: HTMLElement, options: ButtonOptions = {}): HTMLButtonElement {
  const btn = render(element, options.label || "Connect with Apertur", options.theme || "auto");
  btn.setAttribute("aria-busy", "false");
  wire(btn, () => options);
  return btn;
}

/**
 * `<aptr-connect-button public-key="aptr_live_pk_…" scopes="upload:create project:read"
 * redirect-uri="…" base-url="…" theme="auto" label="…">` — dispatches `aptr-success` (detail: the
 * result) and `aptr-error` (detail: the error) events.
 */
export function defineConnectButton(tag = "aptr-connect-button"): void {
  if (typeof customElements === "undefined" || customElements.get(tag)) return;

  class ConnectButton extends HTMLElement {
    connectedCallback(): void {
      const btn = render(this, this.getAttribute("label") || "Connect with Apertur", this.getAttribute("theme") || "auto");
      btn.setAttribute("aria-busy", "false");
      wire(btn, () => {
        const key = this.getAttribute("public-key");
        if (key && !isInitialized()) init({ publicKey: key, baseUrl: this.getAttribute("base-url") || undefined });
        return {
          scopes: (this.getAttribute("scopes") || "").split(/\s+/).filter(Boolean),
          redirectUri: this.getAttribute("redirect-uri") || undefined,
          onSuccess: (result: AuthorizeResult) =>
            this.dispatchEvent(new CustomEvent("aptr-success", { detail: result, bubbles: true, composed: true })),
          onError: (error: AptrConnectError) =>
            this.dispatchEvent(new CustomEvent("aptr-error", { detail: error, bubbles: true, composed: true })),
        };
      });
    }
  }

  customElements.define(tag, ConnectButton);
}
