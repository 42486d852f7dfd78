"""Fixtures of the payouts tests: the PayPal emulator on loopback, and a pass of the schedule against it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import time_machine

from apertur.integrations.paypal.emulator import Running, running
from apertur.payouts import schedule
from apertur.payouts.tests.helpers import client_for

Tick = Callable[[dt.datetime], schedule.TickResult]


@pytest.fixture
def emu() -> Iterator[Running]:
    """A fresh emulator of PayPal's REST API on loopback (modules that need it configured override this)."""
    with running() as emulator:
        yield emulator


@pytest.fixture
def tick(emu: Running, django_capture_on_commit_callbacks: Any) -> Tick:
    """A pass of the schedule at ``when``, against the emulator; mail goes out when its transactions commit (the
    test's own transaction never does, so the callbacks are run)."""

    def at_(when: dt.datetime) -> schedule.TickResult:
        commits = django_capture_on_commit_callbacks(execute=True)
        with time_machine.travel(when, tick=False), client_for(emu) as client, commits:
            return schedule.tick(client=client)

    return at_
