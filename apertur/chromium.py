"""How the browser tests and bench/sdk_popup.py launch Debian's Chromium (``make browser`` installs it): one
place for the path and the flags. Plain constants: importing this loads neither Django nor pytest."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Headless in a container: no sandbox (no user namespaces), no GPU, no QUIC, and none of the background
# traffic to Google's services a first run starts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
