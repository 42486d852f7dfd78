"""The real `apertur worker` process delivers an accepted event: a guest upload committed by one process
reaches a loopback webhook receiver through the django-tasks queue, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apertur.webhooks.tests.test_services import Receiver

pytestmark = pytest.mark.own_database

SETUP = """
import django, json, sys
django.setup()
from apertur.projects.services import create_project
from apertur.testing import image_file, make_user
from apertur.uploads import services as uploads
from apertur.webhooks import services as webhooks
project = create_project(owner=make_user("worker@example.com"), name="Worker")
endpoint = webhooks.create_endpoint(project=project, url=sys.argv[1], events=["upload.created"])
session = uploads.create_session(project=project, title="Party")
upload = uploads.accept_upload(session=session, file=image_file())
print(json.dumps({"secret": endpoint.secret, "upload": upload.public_id}))
"""


def test_worker_process_delivers_the_webhook(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        "APERTUR_VAR_DIR": str(tmp_path / "var"),
        "WEBHOOKS_ALLOW_LOOPBACK": "1",
        "DJANGO_SETTINGS_MODULE": "apertur.config.settings",
    }
    exe = str(Path(sys.executable).with_name("apertur"))
    subprocess.run([exe, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    receiver = Receiver()
    worker = None
    try:
        out = subprocess.run(
            [sys.executable, "-c", SETUP, receiver.url], env=env, check=True, capture_output=True, timeout=60, text=True
        )
        created = json.loads(out.stdout.strip().splitlines()[-1])
        receiver.secret = created["secret"]
        assert receiver.requests == []  # nothing is sent by the process that made the change
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen([exe, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not receiver.processed and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        time.sleep(1.0)  # a second delivery, if any, would arrive now
        assert len(receiver.processed) == 1, (tmp_path / "worker.log").read_text()
        assert len(receiver.requests) == 1
        event = next(iter(receiver.processed.values()))
        assert event["type"] == "upload.created"
        assert event["data"]["upload"]["id"] == created["upload"]
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
        receiver.close()
