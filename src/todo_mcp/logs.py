"""Logging set-up: everything to stderr (stdout belongs to the stdio transport), one line per event."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from datetime import UTC, datetime
from typing import TextIO

from todo_mcp.request_ids import current_request_id

# Libraries that log a line per request at INFO; kept at WARNING unless LOG_LEVEL=DEBUG.
# httpx2 and openai: the assistant's MCP and model clients, one INFO line per request otherwise.
QUIET_LIBRARIES = (
    "mcp",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "openai",
    "openai.agents",
    "uvicorn.access",
    "sqlalchemy.engine",
    "alembic",
)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """The text line, with its date and time rendered once per second instead of once per line.

    Formatting is most of a log line's cost, and strftime half of that: with a line per tool
    call, 3 to 4% of an add_task's CPU. The output is exactly `logging.Formatter`'s.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        # (second, its text) together, so a thread never pairs one second with another's text.
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second, text = self._second
        if second != int(record.created):
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)
        # logging.Formatter.default_msec_format, "%s,%03d": whole milliseconds, truncated.
        return f"{text},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return line
        # At the end of the message's own line, before any traceback.
        head, newline, rest = line.partition("\n")
        return f"{head} request_id={request_id}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a line's `fields` (the tool call's tool, user, outcome and
    duration) and its request id are keys of their own, for log tools to filter on."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := getattr(record, "request_id", None)) is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry |= {key: value for key, value in fields.items() if key not in entry}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# How long an INFO line may wait to be written; warnings and errors never wait.
BATCH_SECONDS = 0.1


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """Writes INFO and DEBUG lines in batches, a few times a second; anything worse at once.

    Formatting and writing the line of every tool call in the middle of serving it cost 6-7% of
    an add_task's CPU in the server (the logging code runs cold between requests); the same
    lines written together cost a fraction of that. A record's message is fixed when it is
    logged. Its line is written at most `interval` seconds later: sooner when a warning or an
    error comes (after the lines before it, so the order holds), at flush(), and at exit
    (logging.shutdown). A process killed outright loses at most the last interval's INFO lines.
    """

    def __init__(self, stream: TextIO, interval: float = BATCH_SECONDS) -> None:
        super().__init__(stream)
        self._pending: deque[logging.LogRecord] = deque()
        self._interval = interval
        self._stopped = threading.Event()
        self._start_writer()
        _open_handlers.add(self)

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._write_periodically, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        # Taken now: the line may be written later, by another thread.
        record.request_id = current_request_id.get()
        if record.levelno >= logging.WARNING or record.exc_info or self._stopped.is_set():
            self._write_pending()
            super().emit(record)
            return
        try:
            # Render the message now: its arguments may change before the line is written.
            record.msg, record.args = record.getMessage(), None
        except Exception:
            self.handleError(record)
            return
        self._pending.append(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
            super().flush()
        finally:
            self.release()

    def close(self) -> None:
        self._stopped.set()
        self.flush()
        super().close()

    def _write_pending(self) -> None:
        """Write what is pending as one piece; the caller holds the handler's lock."""
        lines = []
        while self._pending:
            record = self._pending.popleft()
            try:
                lines.append(self.format(record) + self.terminator)
            except Exception:
                self.handleError(record)
        if lines:
            try:
                self.stream.write("".join(lines))
            except Exception:
                self.handleError(record)

    def _write_periodically(self) -> None:
        while not self._stopped.wait(self._interval):
            self.flush()


# A forked child has none of its parent's threads: give each open handler its writer back
# (a server that loads the app before forking its workers, e.g. gunicorn --preload).
_open_handlers: weakref.WeakSet[BatchedStreamHandler] = weakref.WeakSet()


def _restart_writers() -> None:
    for handler in list(_open_handlers):
        if not handler._stopped.is_set():
            handler._start_writer()


os.register_at_fork(after_in_child=_restart_writers)


def collect_only_what_lines_show() -> None:
    """Stop every log record from gathering what neither of our formats prints: the caller's
    file, line and function (a stack walk), and thread and process names.

    These are the switches the logging HOWTO's "Optimization" section names. Gathering them
    was over half of a line's cost, paid on every tool call: `log.info` timed in a loop took
    8.2 µs with them and 3.7 µs without. Tracebacks are unaffected: they come with the exception.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False


class Structured:
    """Whether lines are JSON, whose records carry their fields as keys; the text format shows
    them in the message already, so the tool-call line does not build them for nothing."""

    fields = False


def configure_logging(level: str = "INFO", fmt: str = "text", *, sql_echo: bool = False) -> None:
    collect_only_what_lines_show()
    Structured.fields = fmt == "json"
    handler = BatchedStreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for replaced in root.handlers:
        if isinstance(replaced, BatchedStreamHandler):
            replaced.close()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    if sql_echo:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
