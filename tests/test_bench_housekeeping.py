"""bench/housekeeping.py runs and deletes what it generated as dead, and only that (on PostgreSQL, in a database of
its own, dropped at the end). No timings: the benchmark prints those."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.own_database  # the script makes (and drops) its own PostgreSQL database


def test_the_small_housekeeping_bench_deletes_the_dead_rows_then_finds_nothing() -> None:
    env = {**os.environ, "BENCH_MONEY_DB": f"apertur_bench_hk_{os.getpid()}"}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "bench/housekeeping.py", "--small"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "not reachable" not in out, out  # PostgreSQL is part of the suite's machine (CI fails without it)
    first = next(line for line in out.splitlines() if line.startswith("housekeeping: first pass"))
    assert "dead_oauth_tokens 10,000" in first and "old_webhook_events 3,000" in first, out
    assert "routine_audit_events 7,500" in first, out
    second = next(line for line in out.splitlines() if line.startswith("housekeeping: second pass"))
    assert second.rstrip().endswith("nothing deleted"), out
