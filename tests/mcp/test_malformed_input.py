"""Malformed input on the MCP doors, on SQLite and PostgreSQL: `POST /mcp` for both protocol
revisions and `POST /tools/{name}`, through the whole served app. Never a 5xx, always the door's
own shape (a JSON-RPC error or an error envelope), and nothing written by a refused call.

The families are in `tests/malformed.py`, put in every argument of the tools, in argument keys,
in the JSON-RPC fields around them, and as the whole body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import UserFactory, make_settings
from tests.malformed import BODIES, HOLE, KEYS, VALUES, Fragment, fill, snapshot
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.services import tasks

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MODERN = "2026-07-28"
REVISIONS = ("2025-11-25", MODERN)


@dataclass
class World:
    user: str
    task: int

    def arguments(self) -> list[tuple[str, bytes]]:
        """(tool, arguments object with a hole) for every argument of every tool."""
        user = json.dumps(self.user).encode()
        task = str(self.task).encode()
        return [
            ("add_task", b'{"user_id": ' + user + b', "title": ' + HOLE + b"}"),
            ("add_task", b'{"user_id": ' + user + b', "title": "ok", "description": ' + HOLE + b"}"),
            ("add_task", b'{"user_id": ' + HOLE + b', "title": "ok"}'),
            ("list_tasks", b'{"user_id": ' + user + b', "status": ' + HOLE + b"}"),
            ("complete_task", b'{"user_id": ' + user + b', "task_id": ' + HOLE + b"}"),
            ("delete_task", b'{"user_id": ' + user + b', "task_id": ' + HOLE + b"}"),
            ("update_task", b'{"user_id": ' + user + b', "task_id": ' + task + b', "title": ' + HOLE + b"}"),
            (
                "update_task",
                b'{"user_id": ' + user + b', "task_id": ' + task + b', "description": ' + HOLE + b"}",
            ),
            ("update_task", b'{"user_id": ' + user + b', "task_id": ' + HOLE + b', "title": "renamed"}'),
        ]

    def keyed(self) -> list[tuple[str, bytes]]:
        user = json.dumps(self.user).encode()
        return [("add_task", b'{"user_id": ' + user + b', "title": "ok", ' + HOLE + b": 1}")]


@pytest.fixture
async def world(db: Database, user_factory: UserFactory) -> World:
    user = await user_factory()
    async with db.connect() as connection:
        task = (await tasks.add_task(connection, user_id=user, title="Buy milk", description=None)).task
    return World(user=user, task=task.id)


@pytest.fixture
async def http(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The served MCP app (development mode: no tokens), its lifespan running."""
    app: Starlette = build_http_app(make_settings("sqlite://"), db, host="127.0.0.1")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://127.0.0.1:5000",
        ) as client,
    ):
        yield client


def is_valid_request_id(text: bytes) -> bool:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def rpc_body(revision: str, tool: str, arguments: bytes) -> tuple[bytes, dict[str, str]]:
    """A tools/call request whose params.arguments is the given JSON text, as a client of
    `revision` sends it."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": revision,
    }
    meta = b""
    if revision == MODERN:
        headers |= {"Mcp-Method": "tools/call", "Mcp-Name": tool}
        meta = (
            b', "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", '
            b'"io.modelcontextprotocol/clientCapabilities": {}}'
        )
    body = (
        b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": '
        + json.dumps(tool).encode()
        + b', "arguments": '
        + arguments
        + meta
        + b"}}"
    )
    return body, headers


def answer_of(response: httpx.Response, door: str) -> tuple[bool, list[str]]:
    """(succeeded, problems): a success, or an error in the door's shape."""
    where = f"{door}: HTTP {response.status_code}"
    if response.status_code >= 500:
        return False, [f"{where} {response.text[:300]}"]
    if response.status_code == 202 and not response.content:
        return False, []  # taken as a notification: nothing to answer, nothing run
    if door != "tools" and response.status_code == 413:
        return False, []  # the SDK's body limit, which answers before any JSON-RPC is read
    try:
        body: Any = response.json()
    except ValueError:
        return False, [f"{where} not JSON: {response.text[:200]!r}"]
    if door == "tools":
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            return False, [f"{where} not an envelope: {response.text[:300]}"]
        return body["status"] == "success", []
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return False, [] if isinstance(body["error"].get("code"), int) else [f"{where} {response.text[:300]}"]
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, dict) or not isinstance(result.get("structuredContent"), dict):
        return False, [f"{where} neither an error nor a tool result: {response.text[:300]}"]
    return result["structuredContent"]["status"] == "success", []


async def send(
    http: httpx.AsyncClient,
    db: Database,
    door: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    must_fail: bool,
) -> list[str]:
    before = await snapshot(db)
    response = await http.post(url, content=body, headers=headers)
    succeeded, problems = answer_of(response, door)
    label = f"{door} {url} {body[:100]!r}"
    problems = [f"{label}: {problem}" for problem in problems]
    if succeeded and must_fail:
        problems.append(f"{label}: succeeded")
    if not succeeded and await snapshot(db) != before:
        problems.append(f"{label}: wrote although it was refused")
    return problems


async def every_door(
    http: httpx.AsyncClient, db: Database, tool: str, arguments: bytes, must_fail: bool
) -> list[str]:
    problems = await send(
        http, db, "tools", f"/tools/{tool}", arguments, {"Content-Type": "application/json"}, must_fail
    )
    for revision in REVISIONS:
        body, headers = rpc_body(revision, tool, arguments)
        problems += await send(http, db, f"mcp {revision}", "/mcp", body, headers, must_fail)
    return problems


@pytest.mark.parametrize("fragment", VALUES, ids=lambda fragment: fragment.id)
async def test_malformed_argument_values_never_fail_the_server_and_write_nothing(
    http: httpx.AsyncClient, db: Database, world: World, fragment: Fragment
) -> None:
    problems: list[str] = []
    for tool, template in world.arguments():
        problems += await every_door(http, db, tool, fill(template, fragment), fragment.must_fail)
    assert problems == []


@pytest.mark.parametrize("fragment", KEYS, ids=lambda fragment: fragment.id)
async def test_malformed_argument_keys_never_fail_the_server_and_write_nothing(
    http: httpx.AsyncClient, db: Database, world: World, fragment: Fragment
) -> None:
    problems: list[str] = []
    for tool, template in world.keyed():
        problems += await every_door(http, db, tool, fill(template, fragment), must_fail=True)
    assert problems == []


@pytest.mark.parametrize("fragment", BODIES, ids=lambda fragment: fragment.id)
async def test_malformed_bodies_never_fail_the_server_and_write_nothing(
    http: httpx.AsyncClient, db: Database, world: World, fragment: Fragment
) -> None:
    problems = await send(
        http,
        db,
        "tools",
        "/tools/add_task",
        fragment.json,
        {"Content-Type": "application/json"},
        must_fail=True,
    )
    for revision in REVISIONS:
        _, headers = rpc_body(revision, "add_task", b"{}")
        problems += await send(http, db, f"mcp {revision}", "/mcp", fragment.json, headers, must_fail=True)
    assert problems == []


@pytest.mark.parametrize("fragment", VALUES, ids=lambda fragment: fragment.id)
async def test_malformed_json_rpc_fields_never_fail_the_server_and_write_nothing(
    http: httpx.AsyncClient, db: Database, world: World, fragment: Fragment
) -> None:
    arguments = b'{"user_id": ' + json.dumps(world.user).encode() + b', "title": "ok"}'
    problems: list[str] = []
    for revision in REVISIONS:
        for field in ("id", "method", "params", "jsonrpc"):
            body, headers = rpc_body(revision, "add_task", arguments)
            message = json.loads(body)
            message.pop(field)
            rest = json.dumps(message).encode()
            holed = rest[:-1] + b', "' + field.encode() + b'": ' + fragment.json + b"}"
            # Any JSON text or integer is a valid id, echoed back as it came: the call may run.
            may_pass = field == "id" and is_valid_request_id(fragment.json)
            problems += await send(http, db, f"mcp {revision}", "/mcp", holed, headers, not may_pass)
    assert problems == []
