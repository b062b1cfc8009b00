"""The MCP server over HTTP: Streamable HTTP at /mcp, POST /tools/{name}, /health and /ready.

Stateless: nothing about a client outlives its request, so any number of processes on any
number of machines can serve the same database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import urlsplit

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from todo_mcp import metrics
from todo_mcp.config import Settings, is_loopback
from todo_mcp.db.engine import Database
from todo_mcp.heap import settle_heap
from todo_mcp.logs import configure_logging
from todo_mcp.mcp.envelope import failure
from todo_mcp.mcp.one_step_calls import OneStepToolCalls
from todo_mcp.mcp.runtime import ToolRuntime, request_caller
from todo_mcp.mcp.server import build_mcp_server, rejected_call
from todo_mcp.oauth.provider import ActiveGrants, Provider, oauth_upkeep
from todo_mcp.oauth.routes import oauth_routes, protected_resource_metadata_url
from todo_mcp.readiness import readiness
from todo_mcp.request_ids import RequestIds
from todo_mcp.services.dates import SYSTEM_CLOCK, Clock
from todo_mcp.services.errors import DomainError, Unauthenticated
from todo_mcp.services.identity import UNRESTRICTED, Caller
from todo_mcp.services.oauth.client_documents import ClientDocuments
from todo_mcp.services.oauth.clients import TASKS_SCOPE
from todo_mcp.services.tokens import TokenService

log = logging.getLogger(__name__)

PROTECTED_PREFIXES = ("/mcp", "/tools")
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def transport_security(settings: Settings, host: str) -> TransportSecuritySettings:
    """Host/Origin checks against DNS rebinding: loopback names always, plus configured ones."""
    # The public origin is where clients reach us by definition (through any proxy).
    public = [urlsplit(settings.public_url).netloc] if settings.public_url else []
    public_origin = [settings.public_url] if settings.public_url else []
    if settings.mcp_allowed_hosts or settings.mcp_allowed_origins or is_loopback(host):
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[*LOOPBACK_HOSTS, *settings.mcp_allowed_hosts, *public],
            allowed_origins=[*LOOPBACK_ORIGINS, *settings.mcp_allowed_origins, *public_origin],
        )
    # Listening on a public address with nothing configured: tokens are the protection.
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


# What the SDK's request checks refuse, said as envelope messages.
REJECTIONS = {
    400: "Send the arguments as JSON with the header Content-Type: application/json.",
    403: "This Origin is not allowed; add it to MCP_ALLOWED_ORIGINS if it should be.",
    421: "This Host is not allowed; add it to MCP_ALLOWED_HOSTS if the server sits behind a proxy.",
}


def refuse_non_json_constant(name: str) -> Any:
    """Python's json module reads NaN and Infinity, which JSON (RFC 8259) does not have."""
    raise ValueError(f"{name} is not JSON")


def _envelope_response(code: int, message: str, challenge: str | None = None) -> JSONResponse:
    body = failure(code, message).structured_content
    headers = {"WWW-Authenticate": challenge} if challenge else None
    return JSONResponse(body, status_code=code, headers=headers)


def _authorization(scope: Scope) -> str:
    """The request's first Authorization header, as Starlette's `Headers` would give it, without
    building one for every call (a microsecond)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""


class BearerAuth:
    """Verifies the bearer token of every request to /mcp and /tools and binds its subject
    as the caller; without a token service (development mode) every caller is unrestricted.

    With OAuth on, a refusal points clients at the protected resource metadata (RFC 9728), so
    they can discover where to log in, and an OAuth access token counts only while its grant
    is in force and carries the tasks scope.
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenService | None,
        resource_metadata: str | None = None,
        active_grants: ActiveGrants | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.active_grants = active_grants
        self.discovery = f', resource_metadata="{resource_metadata}"' if resource_metadata else ""

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, code: int, message: str, error: str | None
    ) -> None:
        challenge = 'Bearer realm="todo-mcp"'
        if error is not None:
            challenge += f', error="{error}", error_description="{message}"'
        if error == "insufficient_scope":
            challenge += f', scope="{TASKS_SCOPE}"'
        await _envelope_response(code, message, challenge + self.discovery)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        caller = UNRESTRICTED
        if self.tokens is not None:
            scheme, _, token = _authorization(scope).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                # RFC 6750: no error code when no credentials were sent at all.
                await self._refuse(scope, receive, send, 401, Unauthenticated.default_message, None)
                return
            try:
                verified = self.tokens.verify(token.strip())
                if verified.grant_id is not None and not (
                    self.active_grants is not None and await self.active_grants.is_active(verified.grant_id)
                ):
                    raise Unauthenticated("This connection was revoked; connect the app again.")
            except Unauthenticated as err:
                await self._refuse(scope, receive, send, 401, err.message, "invalid_token")
                return
            except DomainError as err:
                await _envelope_response(err.code, err.message)(scope, receive, send)
                return
            if verified.grant_id is not None and TASKS_SCOPE not in verified.scopes:
                await self._refuse(
                    scope,
                    receive,
                    send,
                    403,
                    f"The token lacks the '{TASKS_SCOPE}' scope.",
                    "insufficient_scope",
                )
                return
            caller = Caller(user_id=verified.subject)
        reset = request_caller.set(caller)
        try:
            await self.app(scope, receive, send)
        finally:
            request_caller.reset(reset)


def build_http_app(
    settings: Settings,
    db: Database,
    *,
    host: str,
    tokens: TokenService | Literal["settings"] | None = "settings",
    dispose_on_shutdown: bool = True,
    clock: Clock = SYSTEM_CLOCK,
) -> Starlette:
    """The MCP app. Tokens are checked by the deployment's token service ("settings": none
    without JWT_SECRET, development mode) or by the one given: the assistant's own MCP server
    in the REST process checks the tokens it mints for each reply, even in development."""
    runtime = ToolRuntime.for_settings(db, settings, clock=clock)
    server, tools = build_mcp_server(runtime, tracing=settings.mcp_tracing)
    security = transport_security(settings, host)
    request_checks = TransportSecurityMiddleware(security)
    mcp_app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=security,
        max_request_body_size=settings.max_request_bytes,
        host=host,
    )
    # The SDK's /mcp route, with tool calls answered in one step (one_step_calls.py).
    tool_calls = OneStepToolCalls(server.session_manager)

    async def call_tool(request: Request) -> Response:
        """Direct HTTP testing without an agent: the tool's envelope, through the same tool code."""
        if (rejection := await request_checks.validate_request(request, is_post=True)) is not None:
            code = rejection.status_code
            return _envelope_response(code, REJECTIONS.get(code, "The request was refused."))
        name = request.path_params["name"]
        tool = tools.get(name)
        if tool is None:
            return _envelope_response(
                404, f"There is no tool named {name!r}; the tools are {', '.join(tools)}."
            )
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_request_bytes:
                return _envelope_response(
                    413, f"The request body is over {settings.max_request_bytes} bytes."
                )
        try:
            arguments: Any = json.loads(body or b"{}", parse_constant=refuse_non_json_constant)
        except RecursionError:
            return _envelope_response(
                400, "The request body nests too deeply; send the arguments as an object."
            )
        except ValueError:
            # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, and integers of more digits
            # than Python converts (int_max_str_digits) are all ValueErrors.
            return _envelope_response(
                400, "The request body is not valid JSON; send the arguments as an object."
            )
        if not isinstance(arguments, dict):
            return _envelope_response(400, "The request body must be a JSON object of the tool's arguments.")
        try:
            result = await server.call_tool(name, arguments)
        except ToolError:
            result = rejected_call(tool, arguments)
        envelope = getattr(result, "structured_content", None) or {}
        data = envelope.get("data", {})
        code = data.get("error_code", 200) if envelope.get("status") == "error" else 200
        retry_after = data.get("retry_after_seconds") if code == 429 else None
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse(envelope, status_code=code, headers=headers)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> Response:
        return await readiness(db)

    active_grants: ActiveGrants | None = None
    provider: Provider | None = None
    resource_metadata: str | None = None
    if tokens == "settings":
        if settings.oauth_enabled:
            tokens = TokenService(
                settings,
                audience=settings.mcp_resource_url,
                audienceless=settings.mcp_accept_tokens_without_audience,
            )
            active_grants = ActiveGrants(db)
            provider = Provider(
                settings,
                db,
                tokens,
                active_grants,
                ClientDocuments(settings.oauth_client_metadata_allowed_hosts),
            )
            resource_metadata = protected_resource_metadata_url(settings)
        else:
            tokens = TokenService(settings) if settings.auth_enabled else None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        settle_heap()
        async with (
            server.session_manager.run(),
            tool_calls.running(),
            metrics.sampling_pool(db.pool_usage),
            oauth_upkeep(provider),
        ):
            yield
        await runtime.close()
        if dispose_on_shutdown:
            await db.dispose()

    routes: list[BaseRoute] = [
        *(
            Route("/mcp", tool_calls) if isinstance(route, Route) and route.path == "/mcp" else route
            for route in mcp_app.routes
        ),
        Route("/tools/{name}", call_tool, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics.endpoint(settings), methods=["GET"]),
        *(oauth_routes(settings, provider) if provider is not None else []),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestIds),
            Middleware(
                BearerAuth, tokens=tokens, resource_metadata=resource_metadata, active_grants=active_grants
            ),
        ],
        lifespan=lifespan,
    )


def create_app() -> Starlette:
    """The app of one worker process when `serve --workers N` runs several: built from the
    environment, with the worker's own engine and logging."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, sql_echo=settings.database_echo)
    host = settings.mcp_server_host
    settings.check_http_exposure(host)
    return build_http_app(settings, Database.from_settings(settings), host=host)
