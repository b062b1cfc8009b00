"""What every tool call shares: who is calling, the unit of work, error mapping, the log line.

Domain errors become the error envelope here, in one place. Anything unexpected becomes a 500
whose message carries an error id; the full error goes to the log under that id, never to the
caller.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from mcp.types import CallToolResult

from todo_mcp import metrics
from todo_mcp.config import Settings
from todo_mcp.db.connection import Connection
from todo_mcp.db.engine import Database
from todo_mcp.logs import Structured
from todo_mcp.mcp.envelope import failure, success
from todo_mcp.request_ids import error_id
from todo_mcp.services.dates import SYSTEM_CLOCK, Clock
from todo_mcp.services.errors import DomainError, Unauthenticated
from todo_mcp.services.identity import Caller, authorize
from todo_mcp.services.rate_limits import Limiter, RedisLimiter, limiter_for
from todo_mcp.services.task_listing import CursorCodec, cursor_key
from todo_mcp.services.tasks import DEVELOPMENT_CURSORS

log = logging.getLogger("todo_mcp.tools")

# Set by the HTTP auth middleware for the duration of one request.
request_caller: ContextVar[Caller | None] = ContextVar("request_caller", default=None)

# An operation returns the envelope's data (the tool's output shape) and its message.
Operation = Callable[[Connection], Awaitable[tuple[dict[str, Any], str]]]


def cursor_codec(settings: Settings) -> CursorCodec:
    """Cursors signed with a key of the deployment's shared token secret, so that any process
    accepts the cursors of any other."""
    return CursorCodec(cursor_key(settings.jwt_secret.get_secret_value() if settings.jwt_secret else None))


def new_error_id() -> str:
    """The request's id (see request_ids.py), or a new one outside a request."""
    return error_id()


def log_call(tool: str, user_id: object, outcome: str | int, started: float) -> None:
    """The call's log line and its metrics."""
    seconds = perf_counter() - started
    metrics.tool_call(tool, outcome, seconds)
    duration_ms = seconds * 1000
    log.info(
        "tool=%s user=%r outcome=%s duration_ms=%.1f",
        tool,
        user_id,
        outcome,
        duration_ms,
        extra={
            "fields": {
                "tool": tool,
                "user": user_id,
                "outcome": outcome,
                "duration_ms": round(duration_ms, 1),
            }
        }
        if Structured.fields
        else None,
    )


class ToolRuntime:
    """Runs one tool operation for the current caller on one pooled connection."""

    def __init__(
        self,
        db: Database,
        *,
        process_caller: Caller | None = None,
        clock: Clock = SYSTEM_CLOCK,
        cursors: CursorCodec | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.db = db
        # Per-user calls a second (services/rate_limits.py); None when calls are not limited.
        self.limiter = limiter
        # Every "today" of the tools comes from this clock; tests freeze it here.
        self.clock = clock
        self.cursors = cursors or DEVELOPMENT_CURSORS
        # The caller when no HTTP request set one: the stdio user, or an in-process test's.
        # None makes a request without a verified caller fail closed.
        self._process_caller = process_caller

    @classmethod
    def for_settings(
        cls,
        db: Database,
        settings: Settings,
        *,
        process_caller: Caller | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> ToolRuntime:
        limiter = limiter_for(settings.tool_calls_per_second, settings.tool_calls_burst, settings.redis_url)
        return cls(
            db, process_caller=process_caller, cursors=cursor_codec(settings), clock=clock, limiter=limiter
        )

    async def close(self) -> None:
        if isinstance(self.limiter, RedisLimiter):
            await self.limiter.close()

    def current_caller(self) -> Caller:
        caller = request_caller.get() or self._process_caller
        if caller is None:
            raise Unauthenticated()
        return caller

    async def run(self, tool: str, user_id: str, operation: Operation) -> CallToolResult:
        started = perf_counter()
        try:
            authorize(self.current_caller(), user_id)
            if self.limiter is not None:
                await self.limiter.admit(user_id)
            # No transaction around the whole call: a single statement is atomic on its own, and
            # the operations that read and then write open one themselves (services/tasks.py).
            # BEGIN and COMMIT around every call cost a quarter of an add_task's CPU.
            async with self.db.connect() as connection:
                data, message = await operation(connection)
        except DomainError as err:
            if err.code >= 500:
                error_id = new_error_id()
                if err.code == 503:
                    # An outage fails every call at once: one line each with the cause, not a
                    # traceback each (hundreds of them a second say nothing more).
                    cause = err.__cause__
                    log.error(
                        "tool=%s error_id=%s %s cause=%s",
                        tool,
                        error_id,
                        err.message,
                        f"{type(cause).__name__}: {cause}" if cause is not None else "none",
                    )
                else:
                    log.error("tool=%s error_id=%s %s", tool, error_id, err.message, exc_info=err.__cause__)
                log_call(tool, user_id, err.code, started)
                return failure(err.code, f"{err.message} (error id {error_id})")
            log_call(tool, user_id, err.code, started)
            return failure(
                err.code, err.message, retry_after_seconds=getattr(err, "retry_after_seconds", None)
            )
        except Exception:
            error_id = new_error_id()
            log.exception("tool=%s error_id=%s unexpected error", tool, error_id)
            log_call(tool, user_id, 500, started)
            return failure(
                500,
                f"The server failed to complete {tool} (error id {error_id}); "
                "try again, and report the error id if it persists.",
            )
        log_call(tool, user_id, "ok", started)
        return success(data, message)
