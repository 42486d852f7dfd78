"""Log records written by a thread of their own.

``logging.StreamHandler`` formats and writes each record on the thread that logs it, holding the handler's
lock across the ``write`` (a system call that releases the GIL). An app server runs several request threads
in one process, and the API writes one line per request: under load the request threads queue on that lock
and hand the GIL back and forth around every write (a sampling profile of ``GET /api/v1/plan`` on four
threads spent 13 % of its samples in ``Logger.info``, most of it waiting in ``Handler.acquire``).

:class:`BackgroundStreamHandler` (the standard library's ``QueueHandler`` and ``QueueListener``) only puts
the record on an in-process queue; one listener thread formats and writes it. Records keep their order,
nothing is pickled, and the queue is drained when the process exits (``atexit``) or a worker process forks
(the child starts a listener of its own). A record logged just before a ``SIGKILL`` may be lost, as an
unflushed buffer would be.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import sys
from logging.handlers import QueueHandler, QueueListener
from typing import Any


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
    """``logging.StreamHandler`` to standard error, with the formatting and the writes on a listener thread.
    Configured like a StreamHandler (``formatter``, ``level``)."""

    def __init__(self, stream: Any = None) -> None:
        self._target = logging.StreamHandler(stream) if stream is not None else _StandardError()
        super().__init__(queue.SimpleQueue())
        self._listener: QueueListener | None = None
        self._start()
        atexit.register(self._stop)
        os.register_at_fork(after_in_child=self._restart_in_child)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        # Formatting happens where the record is written: on the listener thread.
        self._target.setFormatter(fmt)

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # QueueHandler formats the record here, for queues that cross processes; this one does not.
        return record

    def _start(self) -> None:
        self._listener = QueueListener(self.queue, self._target, respect_handler_level=False)
        self._listener.start()

    def _stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()  # writes what is queued, then joins the thread
            self._listener = None
        with contextlib.suppress(OSError, ValueError):  # a stream already closed (as logging.shutdown tolerates)
            self._target.flush()

    def _restart_in_child(self) -> None:
        # The parent's listener thread does not exist in a forked child: a fresh queue and thread (not for a
        # handler the parent had closed already: it gets no thread back).
        if self._listener is not None:
            self.queue = queue.SimpleQueue()
            self._start()

    def close(self) -> None:
        """Reconfiguring logging closes the old handlers: their records are written, their thread ends."""
        self._stop()
        super().close()

    def flush(self) -> None:
        """Write everything queued so far (tests and ``atexit``), then carry on."""
        if self._listener is not None and not getattr(self, "_closed", False):
            self._stop()
            self._start()
