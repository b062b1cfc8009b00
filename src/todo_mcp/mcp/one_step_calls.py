"""`tools/call` over Streamable HTTP served in one step, for clients of either protocol era.

The request agents send over and over is one `tools/call` POST. The SDK serves it well but pays
for generality on every one: for handshake-era clients (2025-11-25 and earlier) stateless mode
builds a transport, its memory streams, a JSON-RPC dispatcher and a task, then tears them down;
for 2026-07-28 clients the entry walks the tool's input schema for `Mcp-Param` headers and
serialises the reply through Python's json module. In process, that was 45% of an add_task's
CPU for a 2025-11-25 client and 11% for a 2026-07-28 one.

This endpoint runs the same checks with the SDK's own functions, then hands the call to the SDK's
single-exchange driver (`serve_one`) with the connection and dispatch context the SDK would build,
and writes the reply as the SDK does. It answers only a call that passes every check; any other
request (other methods, notifications, batches, GET and DELETE, refused headers, bodies that do
not parse, ladder rejections) goes to the SDK untouched, body included, so every refusal is the
SDK's own. `tests/mcp/test_one_step_calls.py` holds both paths to the same answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.lowlevel.server import Server
from mcp.server.runner import modern_error_data, serve_one
from mcp.server.streamable_http import check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecurityMiddleware
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PROTOCOL_VERSION_HEADER,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
    x_mcp_header_map,
)
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

# The logger the SDK's dispatcher reports a handshake-era handler's unmapped exception under.
dispatcher_log = logging.getLogger("mcp.shared.jsonrpc_dispatcher")

CONTENT_TYPE_JSON = "application/json"
TOOLS_CALL = "tools/call"


@dataclass
class OneRequest:
    """The dispatch context of one request answered with one JSON reply, as the SDK gives it on
    both paths: nothing reaches the client before the reply, so notifications and progress are
    dropped and server-to-client requests refused."""

    transport: TransportContext
    request_id: RequestId
    message_metadata: MessageMetadata
    can_send_request: bool = field(default=False, init=False)
    _cancel_requested: anyio.Event | None = field(default=None, init=False)

    @property
    def cancel_requested(self) -> anyio.Event:
        # Made when first asked for: no cancellation can arrive on this path, and a tool that
        # never looks should not pay for an event on every call.
        if self._cancel_requested is None:
            self._cancel_requested = anyio.Event()
        return self._cancel_requested

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


class OneStepToolCalls:
    """The /mcp endpoint: tool calls that pass every check answered here, the rest by the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager) -> None:
        if not (manager.stateless and manager.json_response):
            raise ValueError("tool calls are served in one step in stateless JSON mode only")
        self._sdk = manager.asgi_app
        self._server: Server[Any] = manager.app
        self._security = TransportSecurityMiddleware(manager.security_settings)
        # Per tool: its input schema if it routes any argument through an Mcp-Param header,
        # else None. The tools are registered once, when the server is built.
        self._header_schemas: dict[str, Mapping[str, Any] | None] = {}
        self._lifespan_state: Any = None
        self._started = False
        # The SDK's own limit answers oversized bodies before anything here reads them.
        self._asgi: ASGIApp = RequestBodyLimitMiddleware(self._serve, manager.max_request_body_size)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Enter the server's lifespan, as the SDK's session manager does for its requests."""
        async with self._server.lifespan(self._server) as state:
            self._lifespan_state = state
            self._started = True
            try:
                yield
            finally:
                self._started = False
                self._lifespan_state = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self._started:
            await self._sdk(scope, receive, send)
            return
        request = Request(scope, receive)
        if (
            not check_accept_headers(request)[0]
            or await self._security.validate_request(request, is_post=True) is not None
        ):
            await self._sdk(scope, receive, send)
            return
        # The SDK's era routing: a handshake version or none is the 2025 path, anything else 2026.
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        body = await request.body()
        if version is None or version in HANDSHAKE_PROTOCOL_VERSIONS:
            answer = await self._handshake_era(request, body, version or DEFAULT_NEGOTIATED_VERSION)
        else:
            answer = await self._modern(request, body)
        if answer is None:
            await self._sdk(scope, replay(body, receive), send)
        else:
            await answer(scope, receive, send)

    async def _handshake_era(self, request: Request, body: bytes, version: str) -> Response | None:
        """A handshake-era tool call answered as the SDK's stateless transport and dispatcher
        answer it; None hands the request on."""
        if not is_json_content(request.headers.get("content-type", "")):
            return None
        call = handshake_era_call(body)
        if call is None:
            return None
        context = OneRequest(
            transport=TransportContext(kind="streamable-http", can_send_request=False),
            request_id=call.id,
            message_metadata=ServerMessageMetadata(request_context=request),
        )
        try:
            result = await self._run(call, context, Connection.from_envelope(version, None, None))
        except Exception as exc:
            error = handler_exception_to_error_data(exc)
            if error is None:
                dispatcher_log.exception("handler for %r raised", call.method)
                # The SDK's code for an unmapped handler exception on this path.
                error = ErrorData(code=0, message=str(exc))
            reply = JSONRPCError(jsonrpc="2.0", id=call.id, error=error)
            content = reply.model_dump_json(by_alias=True, exclude_unset=True).encode()
        else:
            content = result_reply(call.id, result, ensure_ascii=False)
        return Response(content, headers={"Content-Type": CONTENT_TYPE_JSON})

    async def _modern(self, request: Request, body: bytes) -> Response | None:
        """A 2026-07-28 tool call answered as the SDK's single-exchange entry answers it; None
        hands the request on."""
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(decoded, dict) or "id" not in decoded or decoded.get("method") != TOOLS_CALL:
            return None
        try:
            call = JSONRPCRequest.model_validate(decoded)
        except pydantic_core.ValidationError:
            return None
        header_items = request.headers.items()
        if find_duplicated_routing_header(header_items) is not None:
            return None
        # The SDK passes dict(request.headers), the first value of each name; built here in one
        # pass over the pairs, where dict() of the mapping scans them all once per name.
        headers = dict(reversed(header_items))
        route = classify_inbound_request(decoded, headers=headers)
        if not isinstance(route, InboundModernRoute) or not self._param_headers_agree(call, request):
            return None
        context = OneRequest(
            transport=TransportContext(
                kind="streamable-http", can_send_request=False, headers=request.headers
            ),
            request_id=call.id,
            message_metadata=ServerMessageMetadata(request_context=request),
        )
        connection = Connection.from_envelope(
            route.protocol_version, route.client_info, route.client_capabilities
        )
        # Byte for byte what the SDK writes (json.dumps of the dumped model, ASCII-escaped,
        # without spaces), serialised by pydantic-core in one pass instead of two.
        try:
            result = await self._run(call, context, connection)
        except Exception as exc:
            reply = JSONRPCError(jsonrpc="2.0", id=call.id, error=modern_error_data(exc))
            return Response(
                modern_reply_bytes(reply),
                status_code=ERROR_CODE_HTTP_STATUS.get(reply.error.code, 200),
                media_type=CONTENT_TYPE_JSON,
            )
        try:
            content = result_reply(call.id, result, ensure_ascii=True)
        except pydantic_core.PydanticSerializationError:
            # Text pydantic-core cannot write: a lone surrogate, which this era's json.loads
            # accepts in a request id. Python's json module escapes it, as the SDK writes it.
            content = modern_reply_bytes(JSONRPCResponse(jsonrpc="2.0", id=call.id, result=result))
        return Response(content, media_type=CONTENT_TYPE_JSON)

    def _param_headers_agree(self, call: JSONRPCRequest, request: Request) -> bool:
        """Whether the call's Mcp-Param headers certainly agree with its arguments, by the SDK's
        rule; False hands the request to the SDK, which answers a mismatch or a failed lookup.

        Only a tool whose schema routes arguments through headers has anything to check. The SDK
        walks the schema on every call to find that out; this looks once per tool.
        """
        params = call.params or {}
        name = params.get("name")
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(name, str) or not isinstance(arguments, Mapping):
            return True
        lookup = self._server.get_tool_input_schema
        if lookup is None:
            return False
        try:
            if name not in self._header_schemas:
                schema = lookup(name)
                self._header_schemas[name] = (
                    schema if schema is not None and x_mcp_header_map(schema) else None
                )
            schema = self._header_schemas[name]
            return schema is None or validate_mcp_param_headers(schema, arguments, request.headers) is None
        except Exception:
            return False

    async def _run(self, call: JSONRPCRequest, context: OneRequest, connection: Connection) -> dict[str, Any]:
        return await serve_one(
            self._server,
            context,
            call.method,
            call.params,
            connection=connection,
            lifespan_state=self._lifespan_state,
        )


def result_reply(request_id: RequestId, result: dict[str, Any], *, ensure_ascii: bool) -> bytes:
    """The bytes of `JSONRPCResponse(jsonrpc="2.0", id=..., result=...).model_dump_json()`
    (every field set, none None), without validating again the result the SDK has just
    serialised: 2.6 µs instead of 5.1 for an add_task reply."""
    reply = {"jsonrpc": "2.0", "id": request_id, "result": result}
    # inf_nan_mode: the model's JSON writes NaN and infinities as null.
    return pydantic_core.to_json(reply, ensure_ascii=ensure_ascii, inf_nan_mode="null")


def modern_reply_bytes(reply: JSONRPCResponse | JSONRPCError) -> bytes:
    """A 2026-07-28 reply as the SDK's single-exchange entry writes it: `json.dumps` of the dumped
    model, ASCII-escaped, without spaces. pydantic-core writes the same bytes in one pass for
    everything but text with lone surrogates, which it refuses to encode."""
    try:
        return reply.model_dump_json(by_alias=True, exclude_none=True, ensure_ascii=True).encode()
    except pydantic_core.PydanticSerializationError:
        body = reply.model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps(body, separators=(",", ":")).encode()


def is_json_content(content_type: str) -> bool:
    """The SDK transport's Content-Type rule: application/json among the comma-separated types
    before the first parameter."""
    return any(part.strip() == CONTENT_TYPE_JSON for part in content_type.split(";")[0].split(","))


def handshake_era_call(body: bytes) -> JSONRPCRequest | None:
    """The body as a `tools/call` request, parsed and validated as the SDK's handshake-era
    transport does; None for anything else."""
    try:
        message = jsonrpc_message_adapter.validate_python(pydantic_core.from_json(body), by_name=False)
    except Exception:
        # Whatever the reason, the SDK answers it, in its own words.
        return None
    if isinstance(message, JSONRPCRequest) and message.method == TOOLS_CALL:
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
