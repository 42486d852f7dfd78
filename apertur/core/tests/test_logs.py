"""apertur.core.logs: records are written by a listener thread, in order, all of them, also from a forked child."""

from __future__ import annotations

import io
import logging
import os
import threading
from typing import Any

from apertur.core.logs import BackgroundStreamHandler


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_records_from_several_threads_are_all_written_formatted_and_in_order_per_thread() -> None:
    stream = io.StringIO()
    handler = BackgroundStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = _logger(handler, "apertur.test.logs")

    def work(n: int) -> None:
        for i in range(200):
            logger.info("t%s line %s", n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 800
    for n in range(4):
        mine = [line for line in lines if line.startswith(f"apertur.test.logs t{n} ")]
        assert mine == [f"apertur.test.logs t{n} line {i}" for i in range(200)]
    logger.info("after a flush")  # the handler keeps working after flush()
    handler.close()
    assert stream.getvalue().splitlines()[-1] == "apertur.test.logs after a flush"


def test_a_forked_child_writes_its_records() -> None:
    read, write = os.pipe()
    stream = os.fdopen(write, "w")
    handler = BackgroundStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = _logger(handler, "apertur.test.logs.fork")
    logger.info("parent")
    handler.flush()
    pid = os.fork()
    if pid == 0:  # the child: its own listener thread, started at fork
        logger.info("child")
        handler.close()
        os._exit(0)
    os.waitpid(pid, 0)
    handler.close()
    stream.close()
    with os.fdopen(read) as out:
        assert out.read().splitlines() == ["parent", "child"]


def _walk(patterns: list, prefix: str = "/") -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """(route up to its first converter, the converter's name) for every route with one in its path."""
    from django.urls import URLPattern, URLResolver

    found: list[tuple[str, str]] = []
    for p in patterns:
        route = str(p.pattern)
        if isinstance(p, URLResolver):
            if "<" in route:
                found.append((prefix + route.split("<", 1)[0], route.split("<", 1)[1].split(">", 1)[0]))
            else:
                found.extend(_walk(p.url_patterns, prefix + route))
        elif isinstance(p, URLPattern) and "<" in route:
            found.append((prefix + route.split("<", 1)[0], route.split("<", 1)[1].split(">", 1)[0]))
    return found


def test_every_route_with_a_secret_in_its_path_is_redacted_in_the_logs() -> None:
    from django.conf import settings
    from django.urls import get_resolver

    secret_names = {"token", "uidb64"}
    routes = [(at, name.split(":")[-1]) for at, name in _walk(get_resolver().url_patterns)]
    secret = [at for at, name in routes if name in secret_names]
    assert {"/u/", "/confirm-email/", "/partners/payouts/confirm/"} <= set(secret)  # the walk sees them
    uncovered = [at for at in secret if not at.startswith(tuple(settings.SECRET_PATH_PREFIXES))]
    assert uncovered == []


def test_secret_paths_keep_their_prefix_only_in_granian_and_django_records() -> None:
    from apertur.core.logs import PATH_LOGGERS, RedactSecretPaths

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    for name in PATH_LOGGERS:  # installed by the core app at start-up, with the settings' prefixes
        assert any(isinstance(f, RedactSecretPaths) for f in logging.getLogger(name).filters)
    access = logging.getLogger("granian.access")
    access.addHandler(handler)
    request = logging.getLogger("django.request")
    request.addHandler(handler)
    try:
        fmt = '"%(method)s %(path)s" %(status)d'
        access.info(fmt, {"method": "GET", "path": "/u/SeCrEtUpLoAdToKeN/files", "status": 200})
        access.info(fmt, {"method": "GET", "path": "/partners/payouts/confirm/PaYpAlToKeN", "status": 302})
        access.info(fmt, {"method": "GET", "path": "/partners/payouts", "status": 200})
        request.warning("%s: %s", "Not Found", "/confirm-email/MQ/aBc-ToKeN")
    finally:
        access.removeHandler(handler)
        request.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == [
        '"GET /u/[redacted]" 200',
        '"GET /partners/payouts/confirm/[redacted]" 302',
        '"GET /partners/payouts" 200',
        "Not Found: /confirm-email/[redacted]",
    ]


def test_with_debug_on_a_django_record_is_written_once_in_the_log_format(tmp_path: Any) -> None:
    """`make run` turns DEBUG on: Django's own console handler (DEBUG only, on the ``django`` logger) must not
    print every ``django.*`` record a second time, raw, before the settings' formatted line."""
    import subprocess
    import sys

    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('django.request').warning('Service Unavailable: %s', '/login'); "
        "logging.getLogger('django.utils.autoreload').info('Watching for file changes'); "
        "logging.shutdown()"
    )
    env = {
        **os.environ,
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "apertur.config.settings",
        "APERTUR_VAR_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    login = [line for line in lines if "/login" in line]
    assert len(login) == 1 and login[0].endswith(" WARNING django.request Service Unavailable: /login"), lines
    assert len([line for line in lines if "Watching for file changes" in line]) == 1, lines
