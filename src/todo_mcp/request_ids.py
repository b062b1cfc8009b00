"""Every HTTP request gets an id: the one a proxy put in `X-Request-Id` when it is usable, else a
new one. It is echoed in the response's `X-Request-Id`, written on every log line logged while
the request is served, and it is the error id of any failure in it, so that an operator goes
from a client's report (or the proxy's access log) straight to the lines that explain it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
# What a proxy's id may look like to be taken over (nginx's $request_id is 32 hex digits, others
# use UUIDs): anything else, or longer, is replaced, so an id never carries a log injection.
_USABLE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

SCOPE_KEY = "todo_mcp.request_id"

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def new_request_id() -> str:
    # An id to find log lines by, not a secret (a client may choose its own): the process's
    # random generator, reseeded in every forked worker, costs no system call per request.
    return random.randbytes(8).hex()  # noqa: S311


def error_id() -> str:
    """The id to quote for a failure: the request's, or a new one outside any request."""
    return current_request_id.get() or random.randbytes(6).hex()  # noqa: S311


class RequestIds:
    """ASGI middleware: binds the request's id for its duration and echoes it in the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == HEADER:
                if _USABLE.fullmatch(value):
                    request_id = value.decode()
                break
        if request_id is None:
            request_id = new_request_id()
        header = (HEADER, request_id.encode())
        # For the handler of unexpected errors, which Starlette runs outside every middleware.
        scope[SCOPE_KEY] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)


@contextmanager
def bound_to(scope: Scope) -> Iterator[str | None]:
    """The request's id bound again, where code runs outside `RequestIds` (Starlette's handler of
    unexpected errors): its log lines and error id are the request's too."""
    request_id = scope.get(SCOPE_KEY)
    token = current_request_id.set(request_id)
    try:
        yield request_id
    finally:
        current_request_id.reset(token)
