"""The REST app: routers, one exception handler for domain errors, health and readiness."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from time import perf_counter
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import todo_mcp
from todo_mcp import metrics
from todo_mcp.api import auth_routes, chat_routes, connection_routes, conversation_routes, task_routes
from todo_mcp.api.schemas import Problem, ValidationErrorBody
from todo_mcp.assistant.setup import AssistantSetup, build_assistant
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database
from todo_mcp.heap import settle_heap
from todo_mcp.logs import Structured
from todo_mcp.mcp.runtime import cursor_codec, new_error_id
from todo_mcp.readiness import readiness
from todo_mcp.request_ids import RequestIds, bound_to
from todo_mcp.services.dates import SYSTEM_CLOCK, Clock
from todo_mcp.services.errors import DomainError, TooManyAttempts
from todo_mcp.services.tokens import TokenService
from todo_mcp.services.validation import printable_name

log = logging.getLogger("todo_mcp.api")

DESCRIPTION = """\
Accounts, tasks and conversations over HTTP, on the same database and rules as the MCP tools:
a task added by an agent is the same row (same id) a person sees here.

Send `Authorization: Bearer <token>` (from `POST /auth/login`, or from your auth provider signed
with the shared `JWT_SECRET`). The `user_id` in every `/api/{user_id}/...` path must be the
token's subject.
"""


class RequestLog:
    """One INFO line per request: method, path, status and duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = perf_counter() - started
            # By route template (not the path with its ids), so the series stay few.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            log.info(
                "%s %s status=%d duration_ms=%.1f",
                scope["method"],
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 1),
                    }
                }
                if Structured.fields
                else None,
            )
            if route != "/metrics":
                metrics.http_request(scope["method"], route, status, seconds)


async def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    body: dict[str, str | None] = {"detail": exc.message, "error_id": None}
    headers: dict[str, str] = {}
    if exc.code >= 500:
        body["error_id"] = new_error_id()
        log.error(
            "%s %s error_id=%s %s",
            request.method,
            request.url.path,
            body["error_id"],
            exc.message,
            exc_info=exc.__cause__,
        )
    if exc.code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="todo-mcp"'
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after_seconds)
    return JSONResponse(body, status_code=exc.code, headers=headers)


def problem_of(error: dict[str, Any]) -> Problem:
    """One validation error as the field it concerns and what is wrong with it. Only the
    location and pydantic's message are kept: its `input` (and `ctx`, which may quote the
    input) would echo what was sent, passwords included, and NaN or infinities there made
    FastAPI's own reply fail to serialise."""
    location = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        # FastAPI's JSON syntax error: the location is ("body", character offset), and the
        # context holds only the parser's complaint ("Expecting value"), never the text.
        reason = str((error.get("ctx") or {}).get("error", "JSON decode error"))
        at = f" at character {location[1]}" if len(location) > 1 else ""
        return Problem(field="body", message=f"not valid JSON: {reason}{at}")
    field = ".".join(printable_name(str(part)) for part in location) or "body"
    return Problem(field=field, message=str(error.get("msg", "is invalid")))


async def handle_invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [problem_of(error) for error in exc.errors()]
    listed = "; ".join(f"{problem.field}: {problem.message}" for problem in problems)
    error_id = new_error_id()
    log.info("%s %s error_id=%s invalid request: %s", request.method, request.url.path, error_id, listed)
    body = ValidationErrorBody(
        detail=f"The request is invalid: {listed}.", error_id=error_id, problems=problems
    )
    return JSONResponse(body.model_dump(), status_code=422)


# What FastAPI raises, as a 400 with the cause attached, for a body its JSON parser gave up on
# other than by a syntax error: nesting deeper than the recursion limit, an integer of more
# digits than Python converts.
BODY_UNREADABLE = (
    "The request body could not be read as JSON: it nests too deeply or holds a number too long "
    "to convert. Send a JSON object of the documented fields."
)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Routing and parsing refusals (404 unknown path, 405, unreadable body) in the API's error shape."""
    assert isinstance(exc, HTTPException)
    detail = BODY_UNREADABLE if exc.status_code == 400 and exc.__cause__ is not None else str(exc.detail)
    return JSONResponse(
        {"detail": detail, "error_id": None}, status_code=exc.status_code, headers=exc.headers
    )


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    with bound_to(request.scope) as request_id:
        error_id = new_error_id()
        log.error(
            "%s %s error_id=%s unexpected error", request.method, request.url.path, error_id, exc_info=exc
        )
    return JSONResponse(
        {"detail": "The server failed to handle this request; report the error id.", "error_id": error_id},
        status_code=500,
        headers={"X-Request-Id": request_id} if request_id else None,
    )


# Documented in place of FastAPI's default 422 schema, which echoes the input.
INVALID_REQUEST: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationErrorBody, "description": "The request does not match the schema."}
}


def build_api_app(
    settings: Settings,
    db: Database,
    *,
    dispose_on_shutdown: bool = True,
    clock: Clock = SYSTEM_CLOCK,
    assistant: AssistantSetup | None = None,
) -> FastAPI:
    """The REST app. `assistant` replaces the one the settings describe (tests give theirs)."""
    assistant = assistant or build_assistant(settings, db, clock=clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if assistant.tools_app is not None:
                # The assistant's own MCP server runs as long as this app.
                await stack.enter_async_context(
                    assistant.tools_app.router.lifespan_context(assistant.tools_app)
                )
            stack.push_async_callback(assistant.close)
            await stack.enter_async_context(metrics.sampling_pool(db.pool_usage))
            settle_heap()
            yield
        if dispose_on_shutdown:
            await db.dispose()

    app = FastAPI(
        title="todo-mcp REST API",
        version=todo_mcp.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.database = db
    app.state.tokens = (
        TokenService(settings, audience=settings.rest_audience) if settings.auth_enabled else None
    )
    app.state.token_ttl = timedelta(seconds=settings.access_token_ttl_seconds)
    app.state.rest_audience = settings.rest_audience
    # Every "today" of the routes comes from this clock; tests freeze it here.
    app.state.clock = clock
    app.state.cursors = cursor_codec(settings)
    app.state.assistant = assistant
    app.add_exception_handler(DomainError, handle_domain_error)
    app.add_exception_handler(RequestValidationError, handle_invalid_request)
    app.add_exception_handler(HTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(RequestLog)
    # Outside the request log, so that its line carries the id too.
    app.add_middleware(RequestIds)
    for router in (
        auth_routes.router,
        connection_routes.router,
        task_routes.router,
        conversation_routes.router,
        chat_routes.router,
    ):
        app.include_router(router, responses=INVALID_REQUEST)

    @app.get("/health", tags=["operations"], summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_route("/metrics", metrics.endpoint(settings), methods=["GET"], include_in_schema=False)

    @app.get("/ready", tags=["operations"], summary="The database answers")
    async def ready() -> JSONResponse:
        return await readiness(db)

    return app
