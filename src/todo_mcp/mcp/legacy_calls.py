"""`tools/call` from handshake-era clients (protocol 2025-11-25 and earlier), served in one step.

In stateless mode the SDK answers each request of a handshake-era client by building a
transport, its memory streams, a JSON-RPC dispatcher and a task to run them, then tearing it all
down again: a quarter of the CPU of an add_task call. For the request agents send over and over,
one `tools/call` POST, this door skips that scaffolding: it hands the request to the SDK's own
single-exchange driver (`serve_one`, the one the 2026-07-28 path uses) with the same born-ready
connection and request context the SDK builds, and writes the reply the way the SDK's transport
does. Everything else (other methods, notifications, batches, GET and DELETE, refused headers,
bodies that do not parse) goes to the SDK untouched, body included.
`tests/mcp/test_legacy_calls.py` holds the two paths to byte-identical answers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import serve_one
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecurityMiddleware
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import MessageMetadata, ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    DEFAULT_NEGOTIATED_VERSION,
    ErrorData,
    JSONRPCError,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)
from mcp_types.jsonrpc import jsonrpc_message_adapter
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The logger the SDK's dispatcher reports a handler's unmapped exception under.
sdk_log = logging.getLogger("mcp.shared.jsonrpc_dispatcher")

PROTOCOL_VERSION_HEADER = "mcp-protocol-version"
CONTENT_TYPE_JSON = "application/json"


@dataclass
class OneRequest:
    """The dispatch context of one request with no back-channel, as the SDK's stateless JSON
    path gives it: nothing can reach the client before the reply, so notifications and
    progress are dropped and server-to-client requests refused."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: MessageMetadata
    cancel_requested: anyio.Event = field(default_factory=anyio.Event)
    can_send_request: bool = field(default=False, init=False)

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> None:
        return None

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None


def is_json_content(content_type: str) -> bool:
    """The SDK transport's Content-Type rule: application/json among the comma-separated types
    before the first parameter."""
    return any(part.strip() == CONTENT_TYPE_JSON for part in content_type.split(";")[0].split(","))


class LegacyToolCalls:
    """The /mcp endpoint: handshake-era `tools/call` requests served here, the rest by the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        if not (manager.stateless and manager.json_response):
            raise ValueError("the one-step path serves stateless JSON mode only")
        self._sdk = manager.asgi_app
        self._server: Server[Any] = manager.app
        self._security = TransportSecurityMiddleware(manager.security_settings)
        self._lifespan_state: Any = None
        self._started = False
        # The SDK's own limit answers oversized bodies before anything here reads them.
        self.asgi: ASGIApp = RequestBodyLimitMiddleware(self._serve, manager.max_request_body_size)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Enter the server's lifespan, as the SDK's session manager does for its own requests."""
        async with self._server.lifespan(self._server) as state:
            self._lifespan_state = state
            self._started = True
            try:
                yield
            finally:
                self._started = False
                self._lifespan_state = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self._started:
            await self._sdk(scope, receive, send)
            return
        request = Request(scope, receive)
        version = request.headers.get(PROTOCOL_VERSION_HEADER)
        if (
            (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS)
            or not check_accept_headers(request)[0]
            or not is_json_content(request.headers.get("content-type", ""))
            or await self._security.validate_request(request, is_post=True) is not None
        ):
            await self._sdk(scope, receive, send)
            return
        body = await request.body()
        call = tool_call(body)
        if call is None:
            await self._sdk(scope, replay(body, receive), send)
            return
        reply = await self._answer(request, call, version or DEFAULT_NEGOTIATED_VERSION)
        await Response(
            reply.model_dump_json(by_alias=True, exclude_unset=True),
            headers={"Content-Type": CONTENT_TYPE_JSON},
        )(scope, receive, send)

    async def _answer(
        self, request: Request, call: JSONRPCRequest, version: str
    ) -> JSONRPCResponse | JSONRPCError:
        """Run the call through the SDK's request kernel; map a failure as its dispatcher does."""
        context = OneRequest(
            transport=TransportContext(kind="streamable-http", can_send_request=False),
            request_id=call.id,
            message_metadata=ServerMessageMetadata(request_context=request),
        )
        try:
            result = await serve_one(
                self._server,
                context,
                call.method,
                call.params,
                connection=Connection.from_envelope(version, None, None),
                lifespan_state=self._lifespan_state,
            )
        except Exception as exc:
            error = handler_exception_to_error_data(exc)
            if error is None:
                sdk_log.exception("handler for %r raised", call.method)
                # The SDK's own code for an unmapped handler exception on this path.
                error = ErrorData(code=0, message=str(exc))
            return JSONRPCError(jsonrpc="2.0", id=call.id, error=error)
        return JSONRPCResponse(jsonrpc="2.0", id=call.id, result=result)


def tool_call(body: bytes) -> JSONRPCRequest | None:
    """The body as a `tools/call` request, parsed and validated as the SDK's transport does;
    None for anything else."""
    try:
        message = jsonrpc_message_adapter.validate_python(pydantic_core.from_json(body), by_name=False)
    except Exception:
        # Whatever the reason, the SDK answers it, in its own words.
        return None
    if isinstance(message, JSONRPCRequest) and message.method == "tools/call":
        return message
    return None


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives the already-read body once, then the client's own."""
    pending = True

    async def receive_again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
