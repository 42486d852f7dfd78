"""apertur.core.logs: records are written by a listener thread, in order, all of them, also from a forked child."""

from __future__ import annotations

import io
import logging
import os
import threading

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
