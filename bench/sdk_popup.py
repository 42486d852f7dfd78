# ruff: noqa: S603 - a local tool: it runs our own server (sys.executable) and Chromium, on loopback
"""The aptr-connect SDK in Chromium: how long from the click on a partner page's Connect button to the
authorization code in that page, through the real popup, consent page and ``postMessage``. Figures, never
pass/fail.

    make bench                                     # runs this after bench/run.py
    .venv/bin/python bench/sdk_popup.py [--runs 20]

Set-up (not measured): a fresh SQLite database in a temporary directory, migrated; Apertur served by granian
(one worker, one thread, ``DJANGO_SETTINGS_MODULE=bench.settings``, ``DEBUG=0``) on ``127.0.0.1`` and opened
by Chromium as ``http://localhost:<port>``; an approved partner with an app whose allowed domain is
``partner.localhost``, and a customer with one project (so consent needs no choice), made by this script's
``--setup`` step with the project's own services against the same database. A static partner page on
``http://partner.localhost:<other port>`` (Chromium resolves ``*.localhost`` to loopback) loads the SDK from
Apertur's ``/sdk/aptr-connect.js``. Debian's headless Chromium (``/usr/bin/chromium``, ``make browser``)
through Playwright; the customer logs in to Apertur once, so each popup shows the consent page directly.

Measured, each of ``--runs`` times: the script clicks Connect; the page takes ``performance.now()`` and calls
``AptrConnect.authorize()``, which opens the popup at ``/oauth/authorize``; the script waits for the consent
page and clicks Allow as soon as it is visible (no human delay); Apertur issues the code and answers with the
page that posts it to the opener; the SDK's Promise resolves in the partner page, which takes
``performance.now()`` again. Printed from the page's own clock:

- click → code: the whole flow as the partner page sees it (what a user waits, minus reading the consent page);
- Allow → code: from the moment the script is about to click Allow (stamped in the opener's clock) to the code:
  the consent POST, the result page and the ``postMessage``;

and from the script's clock (``time.perf_counter``, so including Playwright's round trips to the browser):

- click → consent loaded: until the popup's consent page fired ``load``.

Each run must yield a fresh ``oac_…`` code; the script checks that it got ``--runs`` distinct codes and exits
non-zero with a message if the flow fails anywhere. Every wait is bounded, servers listen on loopback only and
everything is stopped in ``finally`` blocks.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apertur.chromium import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 - after the path to the repo is set
from bench.servers import app_server, stop_group  # noqa: E402

BUNDLE = ROOT / "apertur" / "static" / "sdk" / "aptr-connect.js"
WAIT_MS = 15_000  # every wait in the browser is bounded by this
SERVER_START_S = 60
PARTNER_HOST = "partner.localhost"
CUSTOMER_EMAIL = "bench-customer@guests.example"
APP_NAME = "Bench Partner"

# The partner page: loads the SDK from Apertur, and on click stamps performance.now() right before
# authorize() (which opens the popup synchronously), then again when the Promise resolves with the code.
PARTNER_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>SDK popup bench</title></head>
<body>
<button id="connect" type="button">Connect</button>
<script src="BASE/sdk/aptr-connect.js"></script>
<script>
  window.__runs = [];
  window.__allowAt = null;
  AptrConnect.init({ publicKey: PUBLIC_KEY });
  document.getElementById("connect").addEventListener("click", function () {
    var run = { start: performance.now(), end: null, allow: null, code: null, error: null };
    window.__runs.push(run);
    window.__allowAt = null;
    AptrConnect.authorize({ scopes: ["project:read"], redirectUri: REDIRECT_URI }).then(
      function (r) { run.end = performance.now(); run.allow = window.__allowAt; run.code = r.code; },
      function (e) { run.end = performance.now(); run.error = (e && e.code) + ": " + (e && e.message); }
    );
  });
</script>
</body>
</html>
"""


class BenchFailed(Exception):
    """The flow did not complete: reported as a message and a non-zero exit, not a traceback."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the data (run as ``--setup`` in a subprocess with the server's environment) ------------------------------


def setup_data(redirect_uri: str) -> dict[str, str]:
    """A partner with an app allowed on partner.localhost, and a customer with one Pro project."""
    import django

    django.setup()
    from apertur.projects.selectors import plan_by_name
    from apertur.projects.services import create_project
    from apertur.testing import PASSWORD, make_app, make_partner, make_user

    customer = make_user(CUSTOMER_EMAIL)
    create_project(owner=customer, name="Wedding photos", plan=plan_by_name("Pro"))
    created = make_app(make_partner(), name=APP_NAME, redirect_uris=[redirect_uri], allowed_domains=[PARTNER_HOST])
    return {"public_key": created.public_key, "email": customer.email, "password": PASSWORD}


# --- servers ------------------------------------------------------------------------------------------------


@dataclass
class Apertur:
    """Our server (granian, one worker) on a fresh SQLite database in ``tmp``."""

    tmp: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.tmp / "server.log"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",  # Apertur's settings with the rate limits lifted
            "DATABASE_URL": f"sqlite:///{self.tmp / 'bench.sqlite3'}",
            "APERTUR_VAR_DIR": str(self.tmp / "var"),
            "APERTUR_BASE_URL": self.base,
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        }
        env.pop("REDIS_URL", None)
        return env

    def run(self, args: list[str], timeout: float) -> str:
        done = subprocess.run(
            [sys.executable, *args], env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise BenchFailed(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> None:
        cmd = app_server("granian", sys.executable, "apertur.config.wsgi:application", self.port, threads=1)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/sdk/aptr-connect.js", timeout=2):
                    return
            except urllib.error.HTTPError as exc:
                raise BenchFailed(f"Apertur answered {exc.code} for the SDK; see {self.log_path}") from None
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                    raise BenchFailed(f"Apertur did not start:\n{tail}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        stop_group(self.proc)


@contextmanager
def partner_site(pages: dict[str, str]) -> Iterator[int]:
    """The static partner page(s) on 127.0.0.1:<port>, read from ``pages`` at request time."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(self.path.split("?", 1)[0])
            body = (page or "not found").encode()
            self.send_response(200 if page is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8" if page is not None else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="bench-partner-site", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the browser --------------------------------------------------------------------------------------------


@dataclass
class Run:
    click_to_code_ms: float
    allow_to_code_ms: float
    click_to_consent_ms: float
    code: str


def log_in(page: Any, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log out").wait_for(state="visible", timeout=WAIT_MS)


def one_run(page: Any, index: int) -> Run:
    from playwright.sync_api import Error as PlaywrightError

    start = time.perf_counter()
    with page.expect_popup(timeout=WAIT_MS) as info:
        page.get_by_role("button", name="Connect").click()
    popup = info.value
    try:
        popup.wait_for_load_state("load", timeout=WAIT_MS)
    except PlaywrightError:
        if not popup.is_closed():
            raise
        # Apertur's error page posts the error to the opener and closes itself at once: report the SDK's error.
        page.wait_for_function(f"window.__runs[{index}] && window.__runs[{index}].end !== null", timeout=WAIT_MS)
        error = page.evaluate(f"window.__runs[{index}].error")
        raise BenchFailed(f"run {index + 1}: the popup closed at once; the SDK reported {error}") from None
    to_consent = (time.perf_counter() - start) * 1000
    if "/oauth/authorize" not in popup.url:
        raise BenchFailed(f"run {index + 1}: the popup is at {popup.url}, not the consent page (not logged in?)")
    allow = popup.get_by_role("button", name="Allow")
    allow.wait_for(state="visible", timeout=WAIT_MS)
    with popup.expect_event("close", timeout=WAIT_MS):
        page.evaluate("() => { window.__allowAt = performance.now(); }")
        allow.click()
    page.wait_for_function(f"window.__runs[{index}] && window.__runs[{index}].end !== null", timeout=WAIT_MS)
    result: dict[str, Any] = page.evaluate(f"window.__runs[{index}]")
    if result["error"] or not result["code"]:
        raise BenchFailed(f"run {index + 1}: the SDK reported {result['error'] or 'no code'}")
    if result["allow"] is None:
        raise BenchFailed(f"run {index + 1}: the code arrived before Allow was clicked")
    return Run(
        click_to_code_ms=result["end"] - result["start"],
        allow_to_code_ms=result["end"] - result["allow"],
        click_to_consent_ms=to_consent,
        code=result["code"],
    )


def drive(base: str, partner_url: str, creds: dict[str, str], runs: int) -> tuple[str, list[Run]]:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            try:
                log_in(page, base, creds["email"], creds["password"])
                page.goto(partner_url)
                if page.evaluate("typeof AptrConnect === 'object' && typeof AptrConnect.authorize") != "function":
                    raise BenchFailed(f"the SDK did not load on the partner page from {base}/sdk/aptr-connect.js")
                results = [one_run(page, i) for i in range(runs)]
            except PlaywrightError as exc:
                raise BenchFailed(f"the browser flow failed: {exc}; page errors: {errors}") from None
            return browser.version, results
        finally:
            browser.close()


# --- report -------------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def print_row(label: str, values: list[float]) -> None:
    cells = [statistics.median(values), percentile(values, 95), min(values), max(values)]
    print(f"  {label:<33}" + "".join(f"{v:>9.1f}" for v in cells))


def report(version: str, runs: list[Run]) -> None:
    raw = BUNDLE.read_bytes()
    print(f"  Chromium {version} (headless), {len(runs)} runs")
    print(f"  {'aptr-connect.js':<33}{len(raw):>9} bytes, gzipped (level 9) {len(gzip.compress(raw, 9))} bytes")
    print(f"  {'ms':<33}{'p50':>9}{'p95':>9}{'min':>9}{'max':>9}")
    print_row("click → code (page clock)", [r.click_to_code_ms for r in runs])
    print_row("Allow → code (page clock)", [r.allow_to_code_ms for r in runs])
    print_row("click → consent loaded (script)", [r.click_to_consent_ms for r in runs])
    print(f"  first run (cold): click → code {runs[0].click_to_code_ms:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="connect flows to time (default 20)")
    parser.add_argument("--setup", metavar="REDIRECT_URI", help=argparse.SUPPRESS)  # internal: the data step
    args = parser.parse_args()
    if args.setup:
        print(json.dumps(setup_data(args.setup)))
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print("SDK in Chromium (bench/sdk_popup.py)")
    if not Path(CHROMIUM).exists():
        print(f"Chromium not found at {CHROMIUM}: run `make browser` (Debian's chromium) first.", file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory(prefix="apertur-sdk-bench-") as tmp:
            server = Apertur(Path(tmp))
            pages: dict[str, str] = {}
            with partner_site(pages) as port:
                partner = f"http://{PARTNER_HOST}:{port}"
                server.run(["-m", "django", "migrate", "-v0"], timeout=180)
                creds = json.loads(server.run([__file__, "--setup", f"{partner}/callback"], timeout=120))
                pages["/"] = (
                    PARTNER_PAGE.replace("BASE", server.base)
                    .replace("PUBLIC_KEY", json.dumps(creds["public_key"]))
                    .replace("REDIRECT_URI", json.dumps(f"{partner}/callback"))
                )
                try:
                    server.start()
                    version, runs = drive(server.base, f"{partner}/", creds, args.runs)
                finally:
                    server.stop()
    except (BenchFailed, subprocess.TimeoutExpired) as exc:
        print(f"SDK popup bench failed: {exc}", file=sys.stderr)
        return 1

    report(version, runs)
    codes = {r.code for r in runs}
    if len(codes) != len(runs) or not all(c.startswith("oac_") for c in codes):
        print(f"SDK popup bench failed: {len(codes)} distinct codes for {len(runs)} runs: {sorted(codes)}")
        return 1
    print(f"  {len(codes)} distinct codes (oac_…), one per run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
