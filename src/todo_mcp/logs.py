"""Logging set-up: everything to stderr (stdout belongs to the stdio transport), one line per event."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# Libraries that log a line per request at INFO; kept at WARNING unless LOG_LEVEL=DEBUG.
QUIET_LIBRARIES = ("mcp", "httpx", "httpcore", "uvicorn.access", "sqlalchemy.engine", "alembic")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text", *, sql_echo: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    if sql_echo:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
