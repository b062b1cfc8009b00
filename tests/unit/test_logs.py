"""Log lines: the text line is exactly what `logging.Formatter` would write, whatever the moment;
INFO lines are written in batches without losing or reordering any."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from todo_mcp.logs import (
    TEXT_FORMAT,
    BatchedStreamHandler,
    JsonFormatter,
    TextFormatter,
    collect_only_what_lines_show,
    configure_logging,
)


def record(created: float, message: str = "tool=%s outcome=%s", *, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    entry = logging.LogRecord(
        "todo_mcp.tools", logging.INFO, __file__, 1, message, ("add_task", "ok"), exc_info
    )
    entry.created = created
    entry.msecs = (created - int(created)) * 1000
    return entry


# Moments from 2001 to 2100, each with a few neighbours in the same second and across its end.
MOMENTS = st.lists(st.floats(min_value=1e9, max_value=4.1e9), min_size=1, max_size=5).map(
    lambda starts: [start + step for start in starts for step in (0.0, 0.0004, 0.5, 0.9996, 1.0, 61.25)]
)


@given(moments=MOMENTS)
def test_lines_match_the_standard_formatter(moments: list[float]) -> None:
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for moment in moments:
        assert ours.format(record(moment)) == standard.format(record(moment))


def test_a_line_with_an_exception_matches_the_standard_formatter() -> None:
    ours, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    assert ours.format(record(1.8e9, exc=True)) == standard.format(record(1.8e9, exc=True))
    assert "ValueError: boom" in ours.format(record(1.8e9, exc=True))


def test_an_explicit_date_format_is_honoured() -> None:
    assert TextFormatter().formatTime(record(1.8e9), "%Y") == logging.Formatter().formatTime(
        record(1.8e9), "%Y"
    )


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logging_switches() -> Iterator[None]:
    """The logging module's collection switches as they were, whatever the test sets."""
    names = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")
    saved = {name: getattr(logging, name) for name in names if hasattr(logging, name)}
    yield
    for name, value in saved.items():
        setattr(logging, name, value)


@pytest.mark.usefixtures("logging_switches")
def test_lines_are_the_same_without_caller_thread_and_process_details() -> None:
    collected = Collected()
    logger = logging.getLogger("test.switches")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(collected)
    try:
        logger.info("tool=%s outcome=%s", "add_task", "ok")
        collect_only_what_lines_show()
        logger.info("tool=%s outcome=%s", "add_task", "ok")
    finally:
        logger.removeHandler(collected)
    full, lean = collected.records
    assert (full.funcName, lean.funcName) == (
        "test_lines_are_the_same_without_caller_thread_and_process_details",
        "(unknown function)",
    )
    assert lean.threadName is None
    assert lean.process is None
    lean.created, lean.msecs = full.created, full.msecs
    for formatter in (TextFormatter(), JsonFormatter()):
        assert formatter.format(lean) == formatter.format(full)


@pytest.fixture
def batched() -> Iterator[tuple[logging.Logger, BatchedStreamHandler, io.StringIO]]:
    """A logger writing through a batched handler (a long interval: only what the test does
    writes) into a string."""
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval=3600)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test.batched.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, handler, stream
    logger.removeHandler(handler)
    handler.close()


def test_info_lines_wait_for_a_flush_and_keep_their_order(
    batched: tuple[logging.Logger, BatchedStreamHandler, io.StringIO],
) -> None:
    logger, handler, stream = batched
    for number in range(3):
        logger.info("call %d", number)
    logger.debug("details")
    assert stream.getvalue() == ""
    handler.flush()
    assert stream.getvalue() == "INFO call 0\nINFO call 1\nINFO call 2\nDEBUG details\n"


def test_a_warning_is_written_at_once_after_the_lines_before_it(
    batched: tuple[logging.Logger, BatchedStreamHandler, io.StringIO],
) -> None:
    logger, _, stream = batched
    logger.info("first")
    logger.warning("then this")
    assert stream.getvalue() == "INFO first\nWARNING then this\n"
    try:
        raise RuntimeError("broken")
    except RuntimeError:
        logger.info("with a traceback", exc_info=True)
    assert "RuntimeError: broken" in stream.getvalue()


def test_a_message_is_rendered_when_it_is_logged(
    batched: tuple[logging.Logger, BatchedStreamHandler, io.StringIO],
) -> None:
    logger, handler, stream = batched
    changing = ["before"]
    logger.info("value %s", changing)
    changing[0] = "after"
    handler.flush()
    assert stream.getvalue() == "INFO value ['before']\n"


def test_a_bad_record_does_not_lose_the_others(
    batched: tuple[logging.Logger, BatchedStreamHandler, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, handler, stream = batched
    monkeypatch.setattr(logging, "raiseExceptions", False)
    logger.info("two placeholders %s %s", "one argument")
    logger.info("fine")
    handler.flush()
    assert stream.getvalue() == "INFO fine\n"


def test_pending_lines_are_written_without_a_flush() -> None:
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream, interval=0.01)
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        handler.handle(logging.makeLogRecord({"msg": "eventually", "levelno": logging.INFO}))
        deadline = time.monotonic() + 5
        while stream.getvalue() == "" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue() == "eventually\n"
    finally:
        handler.close()


def test_close_writes_what_is_pending_and_stops_the_writer(
    batched: tuple[logging.Logger, BatchedStreamHandler, io.StringIO],
) -> None:
    logger, handler, stream = batched
    logger.info("last words")
    handler.close()
    assert stream.getvalue() == "INFO last words\n"
    handler._writer.join(5)
    assert not handler._writer.is_alive()
    logger.info("after close")
    assert stream.getvalue().endswith("INFO after close\n")


class ClosingSpy(logging.Handler):
    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def test_configure_logging_closes_the_handler_it_replaces(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    foreign = ClosingSpy()
    configure_logging("INFO")
    first = root.handlers[0]
    assert isinstance(first, BatchedStreamHandler)
    root.handlers.append(foreign)
    configure_logging("INFO")
    second = root.handlers[0]
    try:
        assert isinstance(second, BatchedStreamHandler)
        assert second is not first
        first._writer.join(5)
        assert not first._writer.is_alive()
        assert second._writer.is_alive()
        assert not foreign.closed
    finally:
        second.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_has_a_writer_of_its_own() -> None:
    """A child forked after logging was set up (a server preloading the app) still gets its INFO
    lines written without a flush: the writer thread does not survive fork, so it is restarted."""
    handler = BatchedStreamHandler(io.StringIO(), interval=3600)
    try:
        parent_writer = handler._writer
        child = os.fork()
        if child == 0:
            alive = handler._writer is not parent_writer and handler._writer.is_alive()
            os._exit(0 if alive else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        handler.close()
