"""The SDK popup benchmark (bench/sdk_popup.py) completes its flow: two connects in Chromium, two distinct
codes. No timings: the benchmark prints those."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHROMIUM

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.browser, pytest.mark.own_database]


def test_sdk_popup_bench_gets_a_code_per_run() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium not found at {CHROMIUM}; CI requires the browser tests to run.")
        pytest.skip("Chromium is not installed (make browser installs it)")
    done = subprocess.run(
        [sys.executable, "bench/sdk_popup.py", "--runs", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SDK in Chromium (bench/sdk_popup.py)" in done.stdout
    assert "2 distinct codes" in done.stdout, done.stdout
    assert "click → code" in done.stdout
