"""core.alerts: at most one alert (or owner notice) per subject within ALERT_EVERY, also when two workers alert
about one subject at the same moment (PostgreSQL: real parallel transactions)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core import mail as outbox
from django.db import transaction

from apertur.core import alerts, audit
from apertur.core.models import AuditEvent
from apertur.testing import make_user, record_outcome, wait_until_blocked


def _alert(about: Any, kind: str = "staff") -> bool:
    with transaction.atomic():
        if kind == "notice":
            return alerts.notice_once(
                action="test.alerted",
                about=about,
                data={"endpoint": 7},
                to="owner@example.com",
                subject="Deliveries given up",
                template="emails/payout_staff_alert",
                context={"lines": ["one line"]},
            )
        return alerts.alert_staff(
            action="test.alerted",
            about=about,
            key="endpoint-7",
            subject="Deliveries given up",
            lines=["one line"],
            template="emails/payout_staff_alert",
        )


@pytest.mark.parametrize("kind", ["staff", "notice"])
def test_a_second_alert_within_the_day_is_not_sent(
    db: None, django_capture_on_commit_callbacks: Any, kind: str
) -> None:
    user = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        assert _alert(user, kind) is True
        assert _alert(user, kind) is False
    assert len(outbox.outbox) == 1


@pytest.mark.parametrize("kind", ["staff", "notice"])
def test_two_workers_alerting_about_one_subject_at_once_send_one(
    postgres_only: None, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Each checked for an earlier alert before the other had recorded its own, and both mailed: the check and the
    record now take turns per subject."""
    user = make_user()
    checked, go = threading.Event(), threading.Event()
    real = audit.record

    def paused_before_recording(**kwargs: Any) -> Any:
        if threading.current_thread().name == "first":
            checked.set()  # the first has found no earlier alert
            assert go.wait(timeout=10)
        return real(**kwargs)

    monkeypatch.setattr(audit, "record", paused_before_recording)
    outcome: dict[str, Any] = {}
    first = threading.Thread(target=record_outcome, args=(outcome, "first", lambda: _alert(user, kind)), name="first")
    first.start()
    assert checked.wait(timeout=10)
    second = threading.Thread(target=record_outcome, args=(outcome, "second", lambda: _alert(user, kind)))
    second.start()
    wait_until_blocked(second, timeout=3)
    go.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert outcome == {"first": True, "second": False}, outcome
    assert AuditEvent.objects.filter(action="test.alerted").count() == 1
