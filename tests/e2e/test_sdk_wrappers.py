"""The aptr-connect React and Vue wrappers in built pages, in Chromium, against a live server.

Each page is a tiny partner app bundled with esbuild from ``sdk/js/src`` (the wrappers as a partner's
bundler would take them, React and Vue resolved from ``sdk/js/node_modules``) and served from
``http://partner.localhost:<port>/``, a different origin from the live server's ``http://localhost:<port>``.
Clicking the wrapper's ``ConnectButton`` opens the consent popup; Allow hands a code back to the page,
which renders it; the test exchanges that code for a token over HTTP, as the partner's backend would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.testing import make_app, make_partner, make_user
from tests.e2e.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SDK = Path(__file__).resolve().parents[2] / "sdk" / "js"
WAIT_MS = 10_000  # every explicit browser wait is bounded by this (the context default is 15 s)
WAIT_S = 15  # the build and the token request
SOLE_REDIRECT_URI = "https://snapflow.example/callback"

# The partner pages' code. Each reads its configuration from window.APTR (written into the HTML per test)
# and renders what the wrapper hands back, so the test reads it from the DOM like a user would.
REACT_ENTRY = """
import { useState } from "react";
import { createRoot } from "react-dom/client";
import { ConnectButton } from "SDK_SRC/react.ts";

const cfg = window.APTR;

function App() {
  const [code, setCode] = useState("");
  const [error, setError] = useState("");
  return (
    <main>
      <h1>React partner</h1>
      <ConnectButton {...cfg} onSuccess={(result) => setCode(result.code)} onError={(e) => setError(e.code)}>
        Connect with Apertur (React)
      </ConnectButton>
      <p data-testid="code">{code}</p>
      <p data-testid="error">{error}</p>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<App />);
"""

VUE_ENTRY = """
import { createApp, h, ref } from "vue";
import { ConnectButton } from "SDK_SRC/vue.ts";

const cfg = window.APTR;
const code = ref("");
const error = ref("");

createApp({
  render: () =>
    h("main", [
      h("h1", "Vue partner"),
      h(
        ConnectButton,
        { ...cfg, onSuccess: (result) => (code.value = result.code), onError: (e) => (error.value = e.code) },
        () => "Connect with Apertur (Vue)",
      ),
      h("p", { "data-testid": "code" }, code.value),
      h("p", { "data-testid": "error" }, error.value),
    ]),
}).mount("#root");
"""

# esbuild's JS API, run by node from sdk/js so that `esbuild` resolves from its node_modules; the entries
# live in a temporary folder, so react, react-dom and vue are found through nodePaths.
BUILD_SCRIPT = """
import { build } from "esbuild";
const [outdir, nodeModules, ...entries] = process.argv.slice(1);
await build({
  entryPoints: entries,
  outdir,
  bundle: true,
  format: "iife",
  jsx: "automatic",
  target: ["es2019"],
  minify: true,
  nodePaths: [nodeModules],
  define: {
    "process.env.NODE_ENV": '"production"',
    __VUE_OPTIONS_API__: "true",
    __VUE_PROD_DEVTOOLS__: "false",
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: "false",
  },
  logLevel: "error",
});
"""

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,"></head>
<body>
<div id="root"></div>
<script>window.APTR = {config};</script>
<script src="{bundle}"></script>
</body>
</html>
"""


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """react.js and vue.js, built once for the module."""
    node = shutil.which("node")
    if node is None or not (SDK / "node_modules" / "esbuild").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node and sdk/js/node_modules are required in CI (npm ci in sdk/js).")
        pytest.skip("node or sdk/js/node_modules is missing (npm ci in sdk/js)")
    src = tmp_path_factory.mktemp("partner-src")
    out = tmp_path_factory.mktemp("partner-bundles")
    sdk_src = (SDK / "src").as_posix()
    entries = [src / "react.jsx", src / "vue.js"]
    entries[0].write_text(REACT_ENTRY.replace("SDK_SRC", sdk_src), encoding="utf-8")
    entries[1].write_text(VUE_ENTRY.replace("SDK_SRC", sdk_src), encoding="utf-8")
    result = subprocess.run(
        [node, "--input-type=module", "-e", BUILD_SCRIPT, "--", *map(str, [out, SDK / "node_modules", *entries])],
        cwd=SDK,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    assert result.returncode == 0, f"esbuild failed:\n{result.stdout}\n{result.stderr}"
    # Each page carries the SDK core (its popup name and message marker) with its wrapper.
    for name in ("react.js", "vue.js"):
        assert '"aptr-connect"' in (out / name).read_text(encoding="utf-8"), name
    return out


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def partner_site(root: Path) -> Iterator[int]:
    """A static server on 127.0.0.1 (Chromium resolves partner.localhost there), on a free port or
    ``APERTUR_E2E_PARTNER_PORT``. Yields its port."""
    port = int(os.environ.get("APERTUR_E2E_PARTNER_PORT") or 0)
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(_QuietHandler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="partner-site", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def exchange(base: str, body: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """The partner's backend: POST the code with the client secret to /oauth/token."""
    request = urllib.request.Request(
        f"{base}/oauth/token",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.mark.parametrize(
    ("framework", "redirect_uri"),
    [
        # The app has exactly one redirect URI, so the React page may leave it out...
        ("react", None),
        # ...and the Vue page names it; the token request must then repeat it (RFC 6749 §4.1.3).
        ("vue", SOLE_REDIRECT_URI),
    ],
)
def test_connect_button_popup_allow_then_exchange(
    page: Page, live_server: Any, tmp_path: Path, bundles: Path, framework: str, redirect_uri: str | None
) -> None:
    base = live_server.url
    user = make_user(f"{framework}@guests.example")
    project = create_project(owner=user, name="Summer wedding", plan=plan_by_name("Pro"))
    created = make_app(
        make_partner(), name="Snapflow", redirect_uris=[SOLE_REDIRECT_URI], allowed_domains=["*.localhost"]
    )

    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(bundles / f"{framework}.js", site / f"{framework}.js")
    config: dict[str, Any] = {"publicKey": created.public_key, "baseUrl": base, "scopes": ["project:read"]}
    if redirect_uri:
        config["redirectUri"] = redirect_uri
    (site / "index.html").write_text(
        PAGE.format(title=f"{framework} partner", config=json.dumps(config), bundle=f"/{framework}.js"),
        encoding="utf-8",
    )

    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)

    with partner_site(site) as port:
        log_in(page, base, user.email, timeout=WAIT_MS)
        page.goto(f"http://partner.localhost:{port}/")
        button = page.get_by_role("button", name=f"Connect with Apertur ({framework.title()})")
        expect(button).to_be_enabled(timeout=WAIT_MS)
        expect(button).to_have_attribute("aria-busy", "false")

        with page.expect_popup(timeout=WAIT_MS) as popup_info:
            button.click()
        popup = popup_info.value
        expect(button).to_have_attribute("aria-busy", "true", timeout=WAIT_MS)
        expect(popup.get_by_role("heading", name="Snapflow wants to access your Apertur project")).to_be_visible(
            timeout=WAIT_MS
        )
        assert popup.url.startswith(f"{base}/oauth/authorize?")

        with popup.expect_event("close", timeout=WAIT_MS):
            popup.get_by_role("button", name="Allow").click()

        expect(page.get_by_test_id("code")).to_have_text(re.compile(r"^oac_\S+$"), timeout=WAIT_MS)
        expect(page.get_by_test_id("error")).to_have_text("")
        expect(button).to_have_attribute("aria-busy", "false", timeout=WAIT_MS)
        code = page.get_by_test_id("code").inner_text()

    assert problems == []
    body = {
        "grant_type": "authorization_code",
        "client_id": created.app.client_id,
        "client_secret": created.client_secret,
        "code": code,
    }
    if redirect_uri:
        body["redirect_uri"] = redirect_uri
    status, token = exchange(base, body)
    assert status == 200, token
    assert token["access_token"].startswith("oat_")
    assert token["project_id"] == project.public_id
    assert "project:read" in token["scopes"]
