"""The one-step door for handshake-era tool calls answers exactly as the SDK's transport does.

Every request here goes twice to the same server: once through `LegacyToolCalls` and once
straight to the SDK's stateless transport, and the two answers must match: status, content type
and body, byte for byte where nothing differs by nature (only a new task's id and times do).
Requests the door hands on to the SDK (other methods, notifications, refused headers, bodies
that do not parse) are compared the same way, which also shows the body survives the hand-over.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from starlette.types import ASGIApp

from tests.conftest import UserFactory
from todo_mcp.db.engine import Database
from todo_mcp.mcp.legacy_calls import LegacyToolCalls, is_json_content, tool_call
from todo_mcp.mcp.runtime import ToolRuntime, request_caller
from todo_mcp.mcp.server import build_mcp_server
from todo_mcp.services.identity import UNRESTRICTED, Caller

pytestmark = pytest.mark.anyio

HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
MAX_BODY = 4096
FUZZ_USER = "fuzz-user"
# A tool name whose call a server middleware turns into an unexpected exception.
EXPLODING = "explode_in_middleware"
# What differs between two calls that each add a task: its id (by key, and in the message) and times.
NEW_PER_CALL = frozenset({"task_id", "id"})
NEW_IN_TEXT = (
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"), "<time>"),
    (re.compile(r"\bTask \d+"), "Task <new>"),
)


async def explode(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    if ctx.method == "tools/call" and ctx.params is not None and ctx.params.get("name") == EXPLODING:
        raise RuntimeError("a failure no handler maps")
    return await call_next(ctx)


@dataclass
class Doors:
    one_step: httpx.AsyncClient
    sdk: httpx.AsyncClient

    async def both(
        self, body: bytes | str, *, headers: Mapping[str, str] = HEADERS, method: str = "POST"
    ) -> tuple[httpx.Response, httpx.Response]:
        content = body.encode() if isinstance(body, str) else body
        ours = await self.one_step.request(method, "/mcp", content=content, headers=dict(headers))
        theirs = await self.sdk.request(method, "/mcp", content=content, headers=dict(headers))
        return ours, theirs


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:5000")


@pytest.fixture
async def doors(db: Database) -> AsyncIterator[Doors]:
    server, _ = build_mcp_server(ToolRuntime(db, process_caller=UNRESTRICTED))
    server.middleware.append(explode)
    server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, max_request_body_size=MAX_BODY
    )
    manager = server.session_manager
    one_step = LegacyToolCalls(manager)
    async with manager.run(), one_step.running(), client(one_step) as ours, client(manager.asgi_app) as sdk:
        yield Doors(one_step=ours, sdk=sdk)


def masked(value: Any) -> Any:
    """`value` with what differs between two calls by nature (a new task's id and times) masked,
    inside JSON text blocks too."""
    if isinstance(value, dict):
        return {key: "<new>" if key in NEW_PER_CALL else masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            inner = None
        if isinstance(inner, dict | list):
            return masked(inner)
        for pattern, mask in NEW_IN_TEXT:
            value = pattern.sub(mask, value)
    return value


def assert_same(ours: httpx.Response, theirs: httpx.Response, *, exact: bool = True) -> None:
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
    assert ours.headers.get("content-type") == theirs.headers.get("content-type")
    if exact or not theirs.content:
        assert ours.content == theirs.content
    else:
        assert masked(ours.json()) == masked(theirs.json())


def call(name: str, arguments: Any = None, *, request_id: Any = 1, **extra: Any) -> str:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params, **extra})


def with_version(version: str) -> dict[str, str]:
    return {**HEADERS, "MCP-Protocol-Version": version}


@pytest.mark.parametrize("version", VERSIONS)
async def test_tool_calls_answer_as_the_sdk_does(
    doors: Doors, user_factory: UserFactory, version: str
) -> None:
    user = await user_factory()
    headers = with_version(version)
    for title in ("one", "two", "three"):
        ours, theirs = await doors.both(call("add_task", {"user_id": user, "title": title}), headers=headers)
        assert_same(ours, theirs, exact=False)
        assert ours.json()["result"]["structuredContent"]["status"] == "success"

    same_bytes = [
        call("list_tasks", {"user_id": user}),
        call("list_tasks", {"user_id": user, "status": "pending"}, request_id="req-7"),
        call("complete_task", {"user_id": user, "task_id": 999_999}),
        call("delete_task", {"user_id": user, "task_id": 999_999}, request_id=0),
        call("update_task", {"user_id": user, "task_id": 1}),
        call("add_task", {"user_id": user}),
        call("add_task", {"user_id": user, "title": ""}),
        call("add_task", {"user_id": user, "title": "x", "colour": "red"}),
        call("add_task", {"user_id": user, "title": 5}),
        call("add_task", "not an object"),
        call("add_task"),
        call("no_such_tool", {}),
        call(EXPLODING, {}),
        call("list_tasks", {"user_id": user}, _meta=None),
        json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call"}),
        json.dumps({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": []}),
        json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": 7}}),
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 6,
                "method": "tools/call",
                "params": {
                    "name": "list_tasks",
                    "arguments": {"user_id": user},
                    "_meta": {"progressToken": 1},
                },
            }
        ),
    ]
    for body in same_bytes:
        ours, theirs = await doors.both(body, headers=headers)
        assert_same(ours, theirs)


async def test_a_call_without_a_version_header_is_served_at_the_sdk_default(
    doors: Doors, user_factory: UserFactory
) -> None:
    user = await user_factory()
    ours, theirs = await doors.both(call("list_tasks", {"user_id": user}))
    assert_same(ours, theirs)
    assert ours.json()["result"]["structuredContent"]["data"] == {"tasks": [], "count": 0}


async def test_the_verified_caller_is_the_one_the_tool_sees(doors: Doors, user_factory: UserFactory) -> None:
    owner, other = await user_factory(), await user_factory()
    reset = request_caller.set(Caller(user_id=other))
    try:
        ours, theirs = await doors.both(
            call("list_tasks", {"user_id": owner}), headers=with_version("2025-11-25")
        )
    finally:
        request_caller.reset(reset)
    assert_same(ours, theirs)
    assert ours.json()["result"]["structuredContent"]["data"] == {"error_code": 403}


async def test_what_the_door_hands_on_is_answered_by_the_sdk_unchanged(
    doors: Doors, user_factory: UserFactory
) -> None:
    user = await user_factory()
    legacy = with_version("2025-11-25")
    handed_on: list[tuple[bytes | str, Mapping[str, str], str]] = [
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), legacy, "POST"),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}), legacy, "POST"),
        (json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), legacy, "POST"),
        (json.dumps([json.loads(call("list_tasks", {"user_id": user}))]), legacy, "POST"),
        (json.dumps({"jsonrpc": "2.0", "id": 1, "result": {}}), legacy, "POST"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "tools/call",', legacy, "POST"),
        (b"\xff\xfe not utf-8", legacy, "POST"),
        ("", legacy, "POST"),
        (call("list_tasks", {"user_id": user}), {**legacy, "Content-Type": "text/plain"}, "POST"),
        (call("list_tasks", {"user_id": user}), {**legacy, "Accept": "text/event-stream"}, "POST"),
        (call("list_tasks", {"user_id": user}), {**legacy, "Host": "evil.example.com"}, "POST"),
        (call("list_tasks", {"user_id": user}), {**legacy, "Origin": "http://evil.example.com"}, "POST"),
        (call("list_tasks", {"user_id": user}), {**legacy, "MCP-Protocol-Version": "1999-01-01"}, "POST"),
        (call("list_tasks", {"user_id": user, "title": "x" * MAX_BODY}), legacy, "POST"),
        ("", legacy, "DELETE"),
        ("", legacy, "PUT"),
    ]
    for body, headers, method in handed_on:
        ours, theirs = await doors.both(body, headers=headers, method=method)
        assert_same(ours, theirs)

    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    ours, theirs = await doors.both(json.dumps(initialize), headers=legacy)
    assert_same(ours, theirs)
    assert ours.json()["result"]["protocolVersion"] == "2025-11-25"


async def test_a_2026_request_still_takes_the_sdk_path(doors: Doors, user_factory: UserFactory) -> None:
    user = await user_factory()
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "list_tasks", "arguments": {"user_id": user}, "_meta": meta},
        }
    )
    headers = {**with_version("2026-07-28"), "Mcp-Method": "tools/call", "Mcp-Name": "list_tasks"}
    ours, theirs = await doors.both(body, headers=headers)
    assert_same(ours, theirs)
    assert ours.json()["result"]["structuredContent"]["status"] == "success", ours.text


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
TOOL_NAME = st.sampled_from(["add_task", "list_tasks", "complete_task", "update_task", "delete_task", "nope"])
# Arguments a tool may accept (for the caller's own user), and arguments of any shape.
PLAUSIBLE_ARGUMENTS = st.fixed_dictionaries(
    {"user_id": st.just(FUZZ_USER)},
    optional={
        # Ids no task has: a mutating call answers the same both times.
        "task_id": st.integers(min_value=10**9, max_value=2**62),
        "title": st.text(min_size=1, max_size=30),
        "status": st.sampled_from(["all", "pending", "completed"]),
    },
)
ODD_ARGUMENTS = st.fixed_dictionaries(
    {},
    optional={
        "user_id": st.sampled_from([FUZZ_USER, "someone-else"]) | JSON_VALUES,
        "task_id": st.integers() | JSON_VALUES,
        "title": st.text(max_size=30) | JSON_VALUES,
        "description": st.text(max_size=30) | JSON_VALUES,
        "status": JSON_VALUES,
        "extra": JSON_VALUES,
    },
)
ARGUMENTS = PLAUSIBLE_ARGUMENTS | ODD_ARGUMENTS
VALID_ID = st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=10)
WELL_FORMED = st.fixed_dictionaries(
    {
        "jsonrpc": st.just("2.0"),
        "method": st.just("tools/call"),
        "id": VALID_ID,
        "params": st.fixed_dictionaries(
            {"name": TOOL_NAME, "arguments": ARGUMENTS}, optional={"_meta": JSON_VALUES}
        ),
    }
)
ODD = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "method": st.just("tools/call")},
    optional={
        "id": VALID_ID | st.none() | st.booleans() | st.floats(allow_nan=False),
        "params": JSON_VALUES
        | st.fixed_dictionaries(
            {},
            optional={
                "name": TOOL_NAME | JSON_VALUES,
                "arguments": ARGUMENTS | JSON_VALUES,
                "_meta": JSON_VALUES,
            },
        ),
        "extra": JSON_VALUES,
    },
)


@pytest.fixture
async def fuzz_user(user_factory: UserFactory) -> str:
    return await user_factory(FUZZ_USER)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=WELL_FORMED | ODD, version=st.sampled_from(VERSIONS))
async def test_any_tool_call_body_is_answered_as_the_sdk_answers_it(
    doors: Doors, fuzz_user: str, body: dict[str, Any], version: str
) -> None:
    ours, theirs = await doors.both(json.dumps(body), headers=with_version(version))
    assert_same(ours, theirs, exact=False)
    answer = ours.json() if ours.content else {}
    # Seen with --hypothesis-show-statistics: how many examples reached a tool, and how they ended.
    ending = "result" if "result" in answer else "error" if "error" in answer else "no body"
    event(f"HTTP {ours.status_code}, {ending}")
    if "result" in answer:
        event(f"envelope {answer['result'].get('structuredContent', {}).get('status')}")


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain, application/json", True),
        ("application/json-patch+json", False),
        ("text/plain; application/json", False),
        ("", False),
    ],
)
def test_content_type_rule(content_type: str, expected: bool) -> None:
    assert is_json_content(content_type) is expected


def test_only_a_tools_call_request_is_taken() -> None:
    assert tool_call(call("list_tasks", {}).encode()) is not None
    assert tool_call(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()) is None
    assert tool_call(json.dumps({"jsonrpc": "2.0", "method": "tools/call"}).encode()) is None
    assert tool_call(b"[]") is None
    assert tool_call(b"{") is None
