"""The MCP server object: the five tools, and arguments that fail validation turned into envelopes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter
from typing import Any

from mcp.server import MCPServer

# Private module, but the middleware list is the SDK's documented opt-out of its spans.
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult
from mcp_types import INVALID_PARAMS
from pydantic import ValidationError

import todo_mcp
from todo_mcp.mcp.envelope import failure
from todo_mcp.mcp.runtime import ToolRuntime, log_call, new_error_id
from todo_mcp.mcp.tools import build_tools
from todo_mcp.services.validation import printable_name

log = logging.getLogger("todo_mcp.tools")

INSTRUCTIONS = (
    "A to-do list service. Every tool acts on one user's tasks, named by user_id. "
    "Use list_tasks to find task ids; add_task, complete_task, update_task and delete_task change tasks. "
    "Every result is an envelope {status, data, message}; on error, data.error_code says why "
    "(400 bad input, 403 wrong user, 404 not found, 503 try again later)."
)


def rejected_call(tool: Tool, arguments: Mapping[str, Any] | None) -> CallToolResult:
    """The envelope for a call the SDK refused before or after running the tool function.

    Arguments that do not match the input schema are a 400 naming each bad argument and what is
    wrong with it, never echoing the values back. Valid arguments mean the SDK failed on its own
    side (it has logged why): a 500 with an error id.
    """
    started = perf_counter()
    user_id = (arguments or {}).get("user_id")
    user = user_id if isinstance(user_id, str) else None
    try:
        tool.fn_metadata.validate_arguments(dict(arguments or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(printable_name(str(part)) for part in error['loc']) or 'arguments'}: {error['msg']}"
            for error in exc.errors()
        )
        log_call(tool.name, user, 400, started)
        return failure(
            400, f"Invalid arguments for {tool.name}: {problems}. Fix them and call {tool.name} again."
        )
    error_id = new_error_id()
    log.error("tool=%s error_id=%s the MCP SDK rejected a call with valid arguments", tool.name, error_id)
    log_call(tool.name, user, 500, started)
    return failure(500, f"The server failed to complete {tool.name} (error id {error_id}); try again.")


class ArgumentErrorsAsEnvelopes:
    """Server middleware: the SDK reports schema-invalid arguments as bare error text; agents get
    the same envelope (error_code 400) as for every other error instead."""

    def __init__(self, tools: Mapping[str, Tool]) -> None:
        self._tools = tools

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        # Results arrive here already in wire form (camelCase dicts).
        if (
            ctx.method == "tools/call"
            and isinstance(result, dict)
            and result.get("isError") is True
            and "structuredContent" not in result
            and ctx.params is not None
        ):
            tool = self._tools.get(str(ctx.params.get("name")))
            arguments = ctx.params.get("arguments")
            if tool is not None and (arguments is None or isinstance(arguments, Mapping)):
                envelope = rejected_call(tool, arguments)
                return envelope.model_dump(mode="json", by_alias=True, exclude_none=True)
        return result


class UnknownNamesAreInvalidParams:
    """Server middleware: a `tools/call` or `prompts/get` for a name the server does not have is
    the JSON-RPC error -32602 (Invalid params), as both protocol revisions specify, with the
    names that exist; the SDK answers an unknown tool with a tool error result and an unknown
    prompt with an internal error (logged at ERROR). Arguments that fail a known tool's schema
    stay tool errors (the 400 envelope), so that a model can correct itself (SEP-1303)."""

    def __init__(self, tools: Mapping[str, Tool], prompt_names: Callable[[], Awaitable[list[str]]]) -> None:
        self._tools = tools
        self._prompt_names = prompt_names

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/call" and ctx.params is not None:
            name = ctx.params.get("name")
            if isinstance(name, str) and name not in self._tools:
                known = ", ".join(self._tools)
                raise MCPError(
                    INVALID_PARAMS,
                    f"Unknown tool {_quoted(name)}; the tools are {known}.",
                    {"name": _quoted(name, quotes=False), "tools": list(self._tools)},
                )
        elif ctx.method == "prompts/get" and ctx.params is not None:
            name = ctx.params.get("name")
            if isinstance(name, str) and name not in (prompts := await self._prompt_names()):
                listed = ", ".join(prompts) if prompts else "none: this server has no prompts"
                raise MCPError(INVALID_PARAMS, f"Unknown prompt {_quoted(name)}; the prompts are {listed}.")
        return await call_next(ctx)


def _quoted(name: str, *, quotes: bool = True) -> str:
    """A name from the request as a message may show it: a client may send a megabyte in it."""
    short = printable_name(name)
    return f"'{short}'" if quotes else short


def build_mcp_server(
    runtime: ToolRuntime, *, tracing: bool = False
) -> tuple[MCPServer[Any], dict[str, Tool]]:
    """The server with its five tools; `tracing` keeps the SDK's OpenTelemetry span per message."""
    tools = build_tools(runtime)
    server: MCPServer[Any] = MCPServer(
        "todo-mcp",
        title="todo-mcp",
        version=todo_mcp.__version__,
        instructions=INSTRUCTIONS,
        tools=list(tools.values()),
        log_level="WARNING",
    )

    async def prompt_names() -> list[str]:
        return [prompt.name for prompt in await server.list_prompts()]

    server.middleware.extend(
        [UnknownNamesAreInvalidParams(tools, prompt_names), ArgumentErrorsAsEnvelopes(tools)]
    )
    if not tracing:
        # The SDK documents dropping its middleware from this list as the way to opt out of spans.
        server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]
    return server, tools
