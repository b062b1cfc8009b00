"""The one-step tool call endpoint answers exactly as the SDK's own Streamable HTTP entry does.

Every request here goes twice to the same server: once through `OneStepToolCalls` and once
straight to the SDK's stateless entry, and the two answers must match: status, content type and
body, byte for byte where nothing differs by nature (only a new task's id and times do). Requests
the endpoint hands on to the SDK (other methods, notifications, refused headers, bodies that do
not parse, 2026-07-28 ladder rejections) are compared the same way, which also shows the body
survives the hand-over. Both eras: every handshake version, and 2026-07-28.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.tools import Tool
from mcp_types import JSONRPCResponse
from pydantic import Field
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.conftest import UserFactory, make_settings
from tests.mcp.conftest import page
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.mcp.one_step_calls import (
    OneStepToolCalls,
    handshake_era_call,
    is_json_content,
    result_reply,
)
from todo_mcp.mcp.runtime import ToolRuntime, request_caller
from todo_mcp.mcp.server import build_mcp_server
from todo_mcp.services.identity import UNRESTRICTED, Caller

pytestmark = pytest.mark.anyio

HANDSHAKE_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
MODERN = "2026-07-28"
VERSIONS = (*HANDSHAKE_VERSIONS, MODERN)
BASE_HEADERS = (("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream"))
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
MAX_BODY = 4096
TOOL_NAMES_IN_ORDER = ("add_task", "list_tasks", "complete_task", "delete_task", "update_task", "routed_echo")
FUZZ_USER = "fuzz-user"
# A tool name whose call a server middleware turns into an exception no handler maps.
EXPLODING = "explode_in_middleware"
# A tool that routes an argument through an Mcp-Param header (none of the five does).
ROUTED = "routed_echo"
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


def routed_echo(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})]) -> str:
    return region


@dataclass(frozen=True)
class Sent:
    """One HTTP request, headers as raw pairs so that a test can repeat one."""

    body: bytes
    headers: tuple[tuple[str, str], ...] = BASE_HEADERS
    method: str = "POST"

    def replacing(self, name: str, value: str | None) -> Sent:
        kept = tuple(pair for pair in self.headers if pair[0].lower() != name.lower())
        return Sent(self.body, kept if value is None else (*kept, (name, value)), self.method)

    def adding(self, name: str, value: str) -> Sent:
        return Sent(self.body, (*self.headers, (name, value)), self.method)


def rpc(version: str | None, message: Any, *, routing: tuple[str, str] | None = None) -> Sent:
    """`message` as sent by a client of `version` (None: no version header); `routing` is the
    (Mcp-Method, Mcp-Name) pair a 2026-07-28 client adds."""
    headers = BASE_HEADERS if version is None else (*BASE_HEADERS, ("MCP-Protocol-Version", version))
    if routing is not None:
        method, name = routing
        headers = (*headers, ("Mcp-Method", method), *((("Mcp-Name", name),) if name else ()))
    return Sent(json.dumps(message).encode(), headers)


def call(
    version: str | None, name: Any, arguments: Any = None, *, request_id: Any = 1, **params: Any
) -> Sent:
    """A tools/call request as a client of `version` sends it (the 2026-07-28 envelope included)."""
    body_params: dict[str, Any] = {"name": name, **params}
    if arguments is not None:
        body_params["arguments"] = arguments
    routing = None
    if version == MODERN:
        body_params["_meta"] = {**MODERN_META, **(params.get("_meta") or {})}
        routing = ("tools/call", name if isinstance(name, str) else "")
    return rpc(
        version,
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": body_params},
        routing=routing,
    )


@dataclass
class Doors:
    one_step: httpx.AsyncClient
    sdk: httpx.AsyncClient
    sent: list[Sent] = field(default_factory=list)

    async def both(self, request: Sent) -> tuple[httpx.Response, httpx.Response]:
        answers = []
        for door in (self.one_step, self.sdk):
            answers.append(
                await door.request(
                    request.method, "/mcp", content=request.body, headers=list(request.headers)
                )
            )
        return answers[0], answers[1]

    async def assert_same(self, request: Sent, *, exact: bool = True) -> httpx.Response:
        """Sends `request` through both doors and fails unless the answers match; returns ours."""
        ours, theirs = await self.both(request)
        assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
        assert ours.headers.get("content-type") == theirs.headers.get("content-type")
        if exact or not theirs.content:
            assert ours.content == theirs.content
        else:
            assert masked(ours.json()) == masked(theirs.json())
        return ours


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:5000")


@pytest.fixture
async def doors(db: Database) -> AsyncIterator[Doors]:
    server, tools = build_mcp_server(ToolRuntime(db, process_caller=UNRESTRICTED))
    # Outermost, so that the name it explodes on never reaches the unknown-tool check.
    server.middleware.insert(0, explode)
    server.add_tool(routed_echo, name=ROUTED)
    # The tool mapping the server's middleware knows tools by; the server is built with it.
    tools[ROUTED] = Tool.from_function(routed_echo, name=ROUTED)
    server.streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, max_request_body_size=MAX_BODY
    )
    manager = server.session_manager
    one_step = OneStepToolCalls(manager)
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


def envelope(response: httpx.Response) -> Any:
    return response.json()["result"]["structuredContent"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_tool_calls_answer_as_the_sdk_does(
    doors: Doors, user_factory: UserFactory, version: str
) -> None:
    user = await user_factory()
    for title in ("one", "two", "three é ✓"):
        added = await doors.assert_same(
            call(version, "add_task", {"user_id": user, "title": title}), exact=False
        )
        assert envelope(added)["status"] == "success"

    for request in [
        call(version, "list_tasks", {"user_id": user}),
        call(version, "list_tasks", {"user_id": user, "status": "pending"}, request_id="req-7"),
        call(version, "complete_task", {"user_id": user, "task_id": 999_999}),
        call(version, "delete_task", {"user_id": user, "task_id": 999_999}, request_id=0),
        call(version, "update_task", {"user_id": user, "task_id": 1}),
        call(version, "add_task", {"user_id": user}),
        call(version, "add_task", {"user_id": user, "title": ""}),
        call(version, "add_task", {"user_id": user, "title": "x", "colour": "red"}),
        call(version, "add_task", {"user_id": user, "title": 5}),
        call(version, "add_task", "not an object"),
        call(version, "add_task"),
        call(version, "no_such_tool", {}),
        call(version, EXPLODING, {}),
        call(version, ROUTED, {"region": "eu"}),
        call(version, "list_tasks", {"user_id": user}, _meta={"progressToken": 1}),
        call(version, 7, {}),
    ]:
        await doors.assert_same(request)
    listed = await doors.assert_same(call(version, "list_tasks", {"user_id": user}))
    # Each add went through both doors.
    titles = ["one", "one", "two", "two", "three é ✓", "three é ✓"]
    assert [task["title"] for task in envelope(listed)["data"]["tasks"]] == titles


@pytest.mark.parametrize("version", HANDSHAKE_VERSIONS)
async def test_handshake_era_bodies_of_odd_shape_answer_as_the_sdk_does(doors: Doors, version: str) -> None:
    for message in [
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call"},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": []},
        {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "list_tasks"}, "extra": 1},
    ]:
        await doors.assert_same(rpc(version, message))


async def test_a_call_without_a_version_header_is_served_at_the_sdk_default(
    doors: Doors, user_factory: UserFactory
) -> None:
    user = await user_factory()
    listed = await doors.assert_same(call(None, "list_tasks", {"user_id": user}))
    assert envelope(listed)["data"] == page([])


@pytest.mark.parametrize("version", ["2025-11-25", MODERN])
async def test_the_verified_caller_is_the_one_the_tool_sees(
    doors: Doors, user_factory: UserFactory, version: str
) -> None:
    owner, other = await user_factory(), await user_factory()
    reset = request_caller.set(Caller(user_id=other))
    try:
        refused = await doors.assert_same(call(version, "list_tasks", {"user_id": owner}))
    finally:
        request_caller.reset(reset)
    assert envelope(refused)["data"] == {"error_code": 403}


@pytest.mark.parametrize("version", ["2025-11-25", MODERN])
async def test_what_the_endpoint_hands_on_is_answered_by_the_sdk_unchanged(
    doors: Doors, user_factory: UserFactory, version: str
) -> None:
    user = await user_factory()
    listing = call(version, "list_tasks", {"user_id": user})
    routing = ("tools/list", "") if version == MODERN else None
    meta = {"_meta": MODERN_META} if version == MODERN else {}
    for request in [
        rpc(version, {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": meta}, routing=routing),
        rpc(version, {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": meta}, routing=routing),
        rpc(version, {"jsonrpc": "2.0", "method": "notifications/initialized"}),
        rpc(version, [json.loads(listing.body)]),
        rpc(version, {"jsonrpc": "2.0", "id": 1, "result": {}}),
        Sent(b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call",', listing.headers),
        Sent(b"\xff\xfe not utf-8", listing.headers),
        Sent(b"", listing.headers),
        listing.replacing("Content-Type", "text/plain"),
        listing.replacing("Accept", "text/event-stream"),
        listing.replacing("Accept", None),
        listing.replacing("Host", "evil.example.com"),
        listing.adding("Origin", "http://evil.example.com"),
        call(version, "list_tasks", {"user_id": user, "title": "x" * MAX_BODY}),
        Sent(b"", listing.headers, "DELETE"),
        Sent(b"", listing.headers, "PUT"),
    ]:
        await doors.assert_same(request)


async def test_a_handshake_era_initialize_is_the_sdks(doors: Doors) -> None:
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    }
    initialized = await doors.assert_same(
        rpc("2025-11-25", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
    )
    assert initialized.json()["result"]["protocolVersion"] == "2025-11-25"


async def test_2026_ladder_rejections_are_the_sdks(doors: Doors, user_factory: UserFactory) -> None:
    user = await user_factory()
    good = call(MODERN, "list_tasks", {"user_id": user})
    bare = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_tasks"}}
    with_client = call(
        MODERN,
        "list_tasks",
        {"user_id": user},
        _meta={"io.modelcontextprotocol/clientInfo": {"name": "agent", "version": "2"}},
    )
    rejected = [
        rpc(MODERN, bare, routing=("tools/call", "list_tasks")),
        good.replacing("Mcp-Method", "tools/list"),
        good.replacing("Mcp-Method", None),
        good.replacing("Mcp-Name", "add_task"),
        good.replacing("Mcp-Name", None),
        good.adding("Mcp-Method", "tools/call"),
        good.replacing("MCP-Protocol-Version", "2099-01-01"),
        call(
            MODERN,
            "list_tasks",
            {"user_id": user},
            _meta={"io.modelcontextprotocol/protocolVersion": "2099-01-01"},
        ),
        call(
            MODERN, "list_tasks", {"user_id": user}, _meta={"io.modelcontextprotocol/clientCapabilities": 5}
        ),
    ]
    for request in rejected:
        answer = await doors.assert_same(request)
        assert "error" in answer.json(), answer.text
    served = await doors.assert_same(with_client)
    assert envelope(served)["status"] == "success"


async def test_mcp_param_headers_are_checked_against_the_arguments(doors: Doors) -> None:
    routed = call(MODERN, ROUTED, {"region": "eu"})
    echoed = await doors.assert_same(routed.adding("Mcp-Param-Region", "eu"))
    assert echoed.json()["result"]["content"][0]["text"] == "eu"
    for request in [
        routed,
        routed.adding("Mcp-Param-Region", "us"),
        routed.adding("Mcp-Param-Region", "eu").adding("Mcp-Param-Region", "eu"),
        call(MODERN, ROUTED, {}).adding("Mcp-Param-Region", "eu"),
        call(MODERN, ROUTED).adding("Mcp-Param-Region", "eu"),
    ]:
        answer = await doors.assert_same(request)
        assert "error" in answer.json(), answer.text


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
        "params": st.fixed_dictionaries({"name": TOOL_NAME, "arguments": ARGUMENTS}),
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


def as_sent(body: dict[str, Any], version: str, routing_name: Any) -> Sent:
    """`body` as a client of `version` sends it: a 2026-07-28 client adds the envelope to a
    params object and names the tool in Mcp-Name."""
    if version == MODERN and isinstance(body.get("params"), dict):
        body = {**body, "params": {**body["params"], "_meta": MODERN_META}}
    routing = (
        ("tools/call", routing_name if isinstance(routing_name, str) else "") if version == MODERN else None
    )
    return rpc(version, body, routing=routing)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=WELL_FORMED | ODD,
    version=st.sampled_from(HANDSHAKE_VERSIONS) | st.just(MODERN),
    routing_name=st.sampled_from([None, None, None, "add_task", "nope"]),
)
async def test_any_tool_call_body_is_answered_as_the_sdk_answers_it(
    doors: Doors, fuzz_user: str, body: dict[str, Any], version: str, routing_name: str | None
) -> None:
    # Mostly the name the body carries, as a client sends it; sometimes another or none.
    params = body.get("params")
    named = params.get("name") if isinstance(params, dict) else None
    ours = await doors.assert_same(as_sent(body, version, routing_name or named), exact=False)
    answer = ours.json() if ours.content else {}
    # Seen with --hypothesis-show-statistics: how many examples reached a tool, and how they ended.
    ending = "result" if "result" in answer else "error" if "error" in answer else "no body"
    event(f"{'2026' if version == MODERN else '2025'}: HTTP {ours.status_code}, {ending}")
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


def test_only_a_handshake_era_tools_call_request_is_taken() -> None:
    assert handshake_era_call(call("2025-11-25", "list_tasks", {}).body) is not None
    assert (
        handshake_era_call(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()) is None
    )
    assert handshake_era_call(json.dumps({"jsonrpc": "2.0", "method": "tools/call"}).encode()) is None
    assert handshake_era_call(b"[]") is None
    assert handshake_era_call(b"{") is None


async def test_the_served_app_answers_mcp_through_the_one_step_endpoint(db: Database) -> None:
    """Without it every call would still be answered (by the SDK), only slower: guard the wiring."""
    app = build_http_app(make_settings("sqlite://"), db, host="127.0.0.1")
    endpoints = [route.endpoint for route in app.routes if isinstance(route, Route) and route.path == "/mcp"]
    assert len(endpoints) == 1
    assert isinstance(endpoints[0], OneStepToolCalls)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(
    request_id=st.integers() | st.text(),
    result=st.dictionaries(st.text(), JSON_VALUES, max_size=5),
)
def test_a_result_reply_is_the_bytes_of_the_sdks_model(request_id: int | str, result: dict[str, Any]) -> None:
    """NaN, infinities, None inside the result, non-ASCII text: as the model writes them."""
    model = JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result)
    assert (
        result_reply(request_id, result, ensure_ascii=False)
        == model.model_dump_json(by_alias=True, exclude_unset=True).encode()
    )
    assert (
        result_reply(request_id, result, ensure_ascii=True)
        == model.model_dump_json(by_alias=True, exclude_none=True, ensure_ascii=True).encode()
    )


def named_request(version: str, method: str, params: dict[str, Any], name: str) -> Sent:
    """A request for a named thing (tool, prompt, resource), as a client of `version` sends it."""
    if version != MODERN:
        return rpc(version, {"jsonrpc": "2.0", "id": 9, "method": method, "params": params})
    body = {"jsonrpc": "2.0", "id": 9, "method": method, "params": {**params, "_meta": MODERN_META}}
    return rpc(version, body, routing=(method, name))


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", MODERN])
@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("tools/call", {"name": "no_such_tool", "arguments": {}}, "no_such_tool"),
        ("tools/call", {"name": "x" * 1000, "arguments": {"user_id": "u"}}, "x" * 1000),
        ("prompts/get", {"name": "no_such_prompt"}, "no_such_prompt"),
        ("resources/read", {"uri": "todo://no/such/resource"}, "todo://no/such/resource"),
    ],
    ids=["tool", "long tool name", "prompt", "resource"],
)
async def test_unknown_names_are_invalid_params_on_both_paths_and_log_no_error(
    doors: Doors,
    caplog: pytest.LogCaptureFixture,
    version: str,
    method: str,
    params: dict[str, Any],
    name: str,
) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = await doors.assert_same(named_request(version, method, params, name))
    error = answer.json()["error"]
    assert error["code"] == -32602, error
    assert answer.status_code == (400 if version == MODERN else 200)
    if method == "tools/call":
        # Names the tool (shortened) and lists the ones there are, so a client can recover.
        assert error["data"]["tools"] == list(TOOL_NAMES_IN_ORDER)
        assert all(tool in error["message"] for tool in TOOL_NAMES_IN_ORDER)
        assert len(error["message"]) < 300
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("version", ["2025-11-25", MODERN])
async def test_other_protocol_errors_carry_the_specified_codes(doors: Doors, version: str) -> None:
    unknown_method = named_request(version, "tasks/frobnicate", {}, "")
    answer = await doors.assert_same(unknown_method)
    assert answer.json()["error"]["code"] == -32601

    listing = call(version, "list_tasks", {"user_id": "u"})
    for malformed in (b'{"jsonrpc": "2.0", "id": 1,', b"{'single': 'quotes'}", b"[" * 10 + b"]" * 9):
        answer = await doors.assert_same(Sent(malformed, listing.headers))
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == -32700


async def test_a_protocol_version_the_server_does_not_speak_is_refused_as_each_revision_says(
    doors: Doors,
) -> None:
    # 2026-07-28: the unsupported-version error, naming what the server speaks.
    body = call(
        MODERN,
        "list_tasks",
        {"user_id": "u"},
        _meta={"io.modelcontextprotocol/protocolVersion": "2099-01-01"},
    )
    answer = await doors.assert_same(body.replacing("MCP-Protocol-Version", "2099-01-01"))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == -32022
    assert MODERN in json.dumps(error["data"])
    # Handshake era: a version header the server does not support is HTTP 400.
    stale = call("2025-11-25", "list_tasks", {"user_id": "u"}).replacing("MCP-Protocol-Version", "2023-01-01")
    answer = await doors.assert_same(stale)
    assert answer.status_code == 400


@pytest.mark.parametrize("version", ["2025-11-25", MODERN])
@pytest.mark.parametrize(
    "request_id",
    ["\ud800", "a\x00b", "\x1b[2J", 2**63, -(2**70), "x" * 1000, ""],
    ids=["lone surrogate", "NUL", "control", "2^63", "-2^70", "long", "empty"],
)
async def test_unusual_request_ids_are_answered_as_the_sdk_answers_them(
    doors: Doors, user_factory: UserFactory, version: str, request_id: Any
) -> None:
    user = await user_factory()
    await doors.assert_same(call(version, "list_tasks", {"user_id": user}, request_id=request_id))
    await doors.assert_same(call(version, "no_such_tool", {}, request_id=request_id))
