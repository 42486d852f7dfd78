import { authorize, currentConfig, init, type AuthorizeOptions, type AuthorizeResult } from "./core";
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
button:focus-visible { outline: 3px solid #3b5bdb; outline-offset: 2px; }
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
  :host([data-theme="auto"]) button:focus-visible { outline-color: #748ffc; }
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
  let root = host.shadowRoot;
  if (!root) {
    try {
      root = host.attachShadow({ mode: "open" });
    } catch {
      // Elements such as <a> or <td> cannot hold a shadow root: render into a <span> inside them.
      host = host.appendChild(document.createElement("span"));
      root = host.attachShadow({ mode: "open" });
    }
  }
  host.setAttribute("data-theme", theme);
  // Emptied node by node: a page that enforces Trusted Types (require-trusted-types-for 'script') refuses any
  // string written to innerHTML, even an empty one, and the button would never render.
  while (root.firstChild) root.removeChild(root.firstChild);
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

/** `getOptions` runs inside the click (the popup must open synchronously there); it returns null when it
 * has already reported a problem. */
function wire(btn: HTMLButtonElement, getOptions: () => AuthorizeOptions | null): void {
  btn.setAttribute("aria-busy", "false");
  btn.addEventListener("click", () => {
    if (btn.getAttribute("aria-busy") === "true") return;
    const options = getOptions();
    if (!options) return;
    const done = (): void => btn.setAttribute("aria-busy", "false");
    const pending = authorize(options);
    // Redirect mode: the page leaves and the promise never settles. Not busy, or Back, which can restore this
    // very page from the back/forward cache, would bring back a button that ignores every click.
    if (options.uxMode === "redirect") return;
    btn.setAttribute("aria-busy", "true");
    pending.then(done, done);
  });
}

/** Render a "Connect with Apertur" button into `element`. Returns the button. */
export function button(element: HTMLElement, options: ButtonOptions = {}): HTMLButtonElement {
  // A <button> of the page's own is wired as it is (a button cannot hold a shadow root, nor another button).
  const btn =
    element instanceof HTMLButtonElement
      ? element
      : render(element, options.label || "Connect with Apertur", options.theme || "auto");
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
    static observedAttributes = ["label", "theme"];

    connectedCallback(): void {
      const btn = render(this, this.getAttribute("label") || "Connect with Apertur", this.getAttribute("theme") || "auto");
      wire(btn, () => {
        const attr = (name: string): string | undefined => this.getAttribute(name) || undefined;
        const emit = (type: string, detail: AuthorizeResult | AptrConnectError): void => {
          this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
        };
        const options: AuthorizeOptions = {
          scopes: (attr("scopes") || "").split(/\s+/).filter(Boolean),
          redirectUri: attr("redirect-uri"),
          state: attr("state"),
          uxMode: attr("ux-mode") === "redirect" ? "redirect" : undefined,
          onSuccess: (result) => emit("aptr-success", result),
          onError: (error) => emit("aptr-error", error),
        };
        // The element's own key wins over an earlier init() with another key (two apps on one page).
        const key = attr("public-key");
        if (key) {
          const cfg = currentConfig();
          try {
            init({ publicKey: key, baseUrl: attr("base-url") || (cfg ? cfg.baseUrl : undefined) });
          } catch (error) {
            emit("aptr-error", error as AptrConnectError); // resolveConfig throws only AptrConnectError
            return null;
          }
        }
        return options;
      });
    }

    attributeChangedCallback(): void {
      if (this.shadowRoot) this.connectedCallback();
    }
  }

  customElements.define(tag, ConnectButton);
}
