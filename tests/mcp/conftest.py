"""Driving the five tools in-process through the SDK client, with the envelope checked on every call.

`ToolClient.call` is the one way these tests call a tool: whatever the test is about, every
result it sees has first been checked against the contract every tool shares (the envelope,
isError, the JSON text block, the advertised output schema).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Final

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from mcp import Client
from mcp.types import CallToolResult, TextContent

from todo_mcp.db.engine import Database
from todo_mcp.mcp.runtime import ToolRuntime
from todo_mcp.mcp.server import build_mcp_server
from todo_mcp.services.dates import SYSTEM_CLOCK, Clock
from todo_mcp.services.identity import UNRESTRICTED, Caller

# The two protocol eras one server answers: the 2025 initialize handshake, and the 2026 revision.
MODES: Final = ("legacy", "2026-07-28")
TOOL_NAMES: Final = ("add_task", "list_tasks", "complete_task", "delete_task", "update_task")

Envelope = dict[str, Any]

# ISO-8601 with an explicit UTC designator: "2026-11-24T00:16:59.757706Z" or "...+00:00".
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|\+00:00)")


def parse_utc(value: object) -> datetime:
    """The instant an ISO-8601 UTC string names; fails the test for anything else."""
    assert isinstance(value, str), f"time {value!r} is not a string"
    assert ISO_UTC.fullmatch(value), f"time {value!r} is not ISO-8601 with a UTC designator"
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() == timedelta(0)
    return moment


def envelope_problems(result: CallToolResult, output_schema: dict[str, Any] | None) -> list[str]:
    """Every way `result` breaks the envelope contract; empty when it keeps it."""
    problems: list[str] = []
    envelope = result.structured_content
    if not isinstance(envelope, dict):
        return [f"no structured content: {result!r}"]
    if set(envelope) != {"status", "data", "message"}:
        problems.append(f"envelope keys are {sorted(envelope)}")
    status = envelope.get("status")
    if status not in ("success", "error"):
        problems.append(f"status is {status!r}")
    if result.is_error is not (status == "error"):
        problems.append(f"isError is {result.is_error!r} with status {status!r}")
    message = envelope.get("message")
    if not isinstance(message, str) or not message.strip():
        problems.append(f"message is {message!r}")
    data = envelope.get("data")
    if status == "error" and (
        not isinstance(data, dict) or set(data) != {"error_code"} or type(data["error_code"]) is not int
    ):
        problems.append(f"error data is {data!r}")
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if len(result.content) != 1 or len(texts) != 1:
        problems.append(f"content is not one text block: {result.content!r}")
    elif json.loads(texts[0]) != envelope:
        problems.append(f"the text block {texts[0]!r} differs from the structured content")
    if output_schema is None:
        problems.append("the tool advertises no output schema")
    else:
        problems.extend(
            f"output schema: {error.message} at {list(error.absolute_path)}"
            for error in Draft202012Validator(output_schema).iter_errors(envelope)
        )
    return problems


class ToolClient:
    """An SDK client connected in-process to a server over one database, for one caller."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.output_schemas: dict[str, dict[str, Any] | None] = {}

    async def load_schemas(self) -> None:
        listed = await self.client.list_tools()
        self.output_schemas = {tool.name: tool.output_schema for tool in listed.tools}

    async def raw(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        return await self.client.call_tool(name, arguments)

    async def call(self, name: str, arguments: dict[str, Any]) -> Envelope:
        """Call the tool and return its envelope, failing the test if the envelope breaks the contract."""
        result = await self.raw(name, arguments)
        problems = envelope_problems(result, self.output_schemas.get(name))
        assert problems == [], f"{name}({arguments!r:.300}) broke the envelope contract: {problems}"
        envelope: Envelope = result.structured_content
        return envelope

    async def ok(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call the tool, require success, and return its data."""
        envelope = await self.call(name, arguments)
        assert envelope["status"] == "success", f"{name}({arguments!r:.300}) failed: {envelope}"
        return envelope["data"]

    async def tasks_of(self, user_id: str) -> list[dict[str, Any]]:
        data = await self.ok("list_tasks", {"user_id": user_id})
        tasks: list[dict[str, Any]] = data["tasks"]
        assert data["count"] == len(tasks)
        return tasks


@asynccontextmanager
async def connect(
    db: Database,
    *,
    caller: Caller | None = UNRESTRICTED,
    mode: str = "legacy",
    tracing: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[ToolClient]:
    """A client of a fresh server over `db` whose process acts for `caller`.

    `Caller(user_id=None)` (the default) is development mode, where any user_id is accepted;
    `Caller(user_id="alice")` is a process bound to alice, as over stdio; None is a process
    with no caller at all, which must fail closed.
    """
    server, _ = build_mcp_server(ToolRuntime(db, process_caller=caller, clock=clock), tracing=tracing)
    async with Client(server, mode=mode) as client:
        tool_client = ToolClient(client)
        await tool_client.load_schemas()
        yield tool_client


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once per protocol era."""
    return str(request.param)


@pytest.fixture
async def tools(db: Database) -> AsyncIterator[ToolClient]:
    """An unrestricted (development mode) client, in the legacy protocol mode."""
    async with connect(db) as client:
        yield client


class IsoDate:
    """Equal to any YYYY-MM-DD text: the local date a list answer reports, which a test that does
    not freeze the clock cannot know at the instant of the call."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", other) is not None

    def __repr__(self) -> str:
        return "<any YYYY-MM-DD>"


def page(tasks: list[dict[str, Any]], *, timezone: str = "UTC") -> dict[str, Any]:
    """The data of a list_tasks answer that shows `tasks` on its one page."""
    return {
        "tasks": tasks,
        "count": len(tasks),
        "total": len(tasks),
        "next_cursor": None,
        "today": IsoDate(),
        "timezone": timezone,
    }
