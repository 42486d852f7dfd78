"""Log records written in batches by a thread of their own.

``logging.StreamHandler`` formats and writes each record on the thread that logs it, holding the handler's
lock across the ``write`` (a system call that releases the GIL). An app server runs several request threads
in one process, and the API writes one line per request: under load the request threads queue on that lock
and hand the GIL back and forth around every write (a sampling profile of ``GET /api/v1/plan`` on four
threads spent 13 % of its samples in ``Logger.info``, most of it waiting in ``Handler.acquire``).

:class:`BackgroundStreamHandler` only puts the record on an in-process queue (the standard library's
``QueueHandler``); a writer thread wakes every ``INTERVAL`` seconds, formats what is queued and writes it
with one ``write``. Not the standard library's ``QueueListener``: it blocks on the queue, so every record
wakes it and the GIL changes hands twice per logged request, which cost a third of a bearer-protected call's
time in process (bench/profile_oauth.py, W3: ~300 µs with a listener woken per record, ~200 µs with none);
waking on a timer costs one hand-off per batch. A line reaches the stream at most ``INTERVAL`` after it was
logged (its timestamp is the moment it was logged). Records keep their order, nothing is pickled, and the
queue is drained by :meth:`flush`, when the process exits (``atexit``) and when the handler is closed; a
forked worker process starts a writer of its own. A record logged just before a ``SIGKILL`` may be lost, as an
unflushed buffer would be.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import threading
from logging.handlers import QueueHandler
from typing import Any

#: Seconds between the writer's wake-ups: how late a line may reach the stream.
INTERVAL = 0.05
#: Records formatted per ``write`` (the write releases the GIL: request threads run between batches).
BATCH = 256


def lean_records() -> None:
    """Stop computing the ``LogRecord`` fields that none of Apertur's formats use (the logging HOWTO,
    "Optimization"): the caller's file, line and function (a walk up the stack on every record), and the
    thread, process and multiprocessing names. Called from the settings; a format that needs one of them
    (``%(lineno)d``, ``%(threadName)s``…) must not be combined with it."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is when the record is written (as ``logging.lastResort`` does), not the
    stream it was at start-up: a test runner that swaps standard error per test gets each test's lines."""

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class BackgroundStreamHandler(QueueHandler):
    """``logging.StreamHandler`` to standard error, with the formatting and the writes on a writer thread.
    Configured like a StreamHandler (``formatter``, ``level``)."""

    def __init__(self, stream: Any = None) -> None:
        self._target = logging.StreamHandler(stream) if stream is not None else _StandardError()
        self._pending: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        super().__init__(self._pending)
        self._writer: threading.Thread | None = None
        self._start()
        atexit.register(self._stop)
        os.register_at_fork(after_in_child=self._restart_in_child)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        # Formatting happens where the record is written: on the writer thread.
        self._target.setFormatter(fmt)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # QueueHandler formats the record here, for queues that cross processes; this one does not.
        return record

    def _start(self) -> None:
        self._draining = threading.Lock()  # one drain at a time (the writer, flush()), so lines keep their order
        self._stopping = threading.Event()
        self._writer = threading.Thread(target=self._run, name="apertur-log-writer", daemon=True)
        self._writer.start()

    def _run(self) -> None:
        while not self._stopping.wait(INTERVAL):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        with self._draining:
            while True:
                batch: list[logging.LogRecord] = []
                try:
                    while len(batch) < BATCH:
                        batch.append(self._pending.get_nowait())
                except queue.Empty:
                    pass
                if batch:
                    self._write(batch)
                if len(batch) < BATCH:
                    return

    def _write(self, batch: list[logging.LogRecord]) -> None:
        target = self._target
        lines = []
        for record in batch:
            try:
                lines.append(target.format(record) + target.terminator)
            except Exception:  # as Handler.emit does: report it on standard error, lose only that record
                target.handleError(record)
        if not lines:
            return
        try:
            stream = target.stream
            stream.write("".join(lines))
            stream.flush()
        except Exception:
            target.handleError(batch[-1])

    def _stop(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            self._stopping.set()
            writer.join()  # its last drain writes what is queued
        else:
            self._drain()

    def _restart_in_child(self) -> None:
        # The parent's writer thread does not exist in a forked child: a fresh queue, lock and thread (not for a
        # handler the parent had closed already: it gets no thread back).
        if self._writer is not None:
            self._pending = queue.SimpleQueue()
            self.queue = self._pending
            self._start()

    def close(self) -> None:
        """Reconfiguring logging closes the old handlers: their records are written, their thread ends."""
        self._stop()
        super().close()

    def flush(self) -> None:
        """Write everything queued so far (tests and ``atexit``), then carry on."""
        self._drain()


class RedactSecretPaths(logging.Filter):
    """Hides the part of a logged URL path that is a secret: links that work by being known (a guest upload
    link, an email confirmation, a password reset, the PayPal email confirmation) carry their token in the
    path, and an access log line would keep a working credential for as long as the logs are kept. Any string
    argument of a record (granian's access log passes a dict, Django's ``django.request`` a tuple) that starts
    with one of ``prefixes`` keeps the prefix only: ``/u/[redacted]``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def _redact(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(self.prefixes):
            prefix = next(p for p in self.prefixes if value.startswith(p))
            return f"{prefix}{REDACTED}"
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, dict):
            record.args = {key: self._redact(value) for key, value in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(self._redact(value) for value in args)
        if isinstance(record.msg, str):
            record.msg = self._redact(record.msg)
        return True


REDACTED = "[redacted]"
#: The loggers whose records carry request paths: granian's access log (``apertur serve --access-log``) and
#: Django's request and development-server logs ("Not Found: /u/…").
PATH_LOGGERS = ("granian.access", "django.request", "django.server")


def redact_secret_paths(prefixes: tuple[str, ...]) -> None:
    """Add :class:`RedactSecretPaths` to :data:`PATH_LOGGERS`, keeping their handlers and formats (called once,
    from the core app's ``ready``; settings.SECRET_PATH_PREFIXES lists the prefixes)."""
    for name in PATH_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecretPaths) for f in logger.filters):
            logger.addFilter(RedactSecretPaths(prefixes))
