"""One task, two doors: what the MCP tools write, REST reads and edits, and the other way round.

The MCP side is the real server driven in-process through the SDK client, bound to the user as a
stdio process would be; the REST side is the app over the same database. Both databases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from mcp import Client

from tests.conftest import UserFactory
from tests.mcp.conftest import page
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.mcp.runtime import ToolRuntime
from todo_mcp.mcp.server import build_mcp_server
from todo_mcp.services.identity import Caller

pytestmark = pytest.mark.anyio

AuthFor = Callable[[str], dict[str, str]]


class Tools:
    """The five tools of a server over `db`, called for one user; every call must succeed."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def ok(self, name: str, **arguments: Any) -> Any:
        result = await self._client.call_tool(name, arguments)
        envelope = result.structured_content
        assert envelope is not None
        assert envelope["status"] == "success", f"{name}({arguments}) failed: {envelope}"
        assert result.is_error is False
        return envelope["data"]


@asynccontextmanager
async def mcp_tools(db: Database, user_id: str) -> AsyncIterator[Tools]:
    server, _ = build_mcp_server(ToolRuntime(db, process_caller=Caller(user_id=user_id)))
    async with Client(server) as client:
        yield Tools(client)


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def as_rest(task: dict[str, Any], user_id: str) -> dict[str, Any]:
    """An MCP task (task_id, ISO times) in REST's shape (id, user_id), times as instants."""
    fields = {key: value for key, value in task.items() if key not in ("task_id", "deduplicated")}
    return instants({"id": task["task_id"], "user_id": user_id, **fields})


def instants(task: dict[str, Any]) -> dict[str, Any]:
    """A REST task with its times parsed, so both doors' time formats compare as instants."""
    rest = {key: value for key, value in task.items() if key != "deduplicated"}
    return {
        **rest,
        "created_at": _instant(task["created_at"]),
        "updated_at": _instant(task["updated_at"]),
        "completed_at": _instant(task["completed_at"]),
    }


async def test_a_task_added_over_mcp_is_edited_over_rest_and_read_back_over_mcp(
    db: Database, client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    async with mcp_tools(db, user) as tools:
        added = await tools.ok("add_task", user_id=user, title="Buy milk", description="2 litres")

        seen_over_rest = await client.get(f"/api/{user}/tasks/{added['task_id']}", headers=auth)
        edited = await client.put(
            f"/api/{user}/tasks/{added['task_id']}",
            json={"title": "Buy oat milk", "description": "", "completed": True},
            headers=auth,
        )
        listed = await tools.ok("list_tasks", user_id=user)
        completed = await tools.ok("list_tasks", user_id=user, status="completed")

    assert seen_over_rest.status_code == 200, seen_over_rest.text
    assert instants(seen_over_rest.json()) == as_rest(added, user)
    assert edited.status_code == 200, edited.text
    assert edited.json()["id"] == added["task_id"]
    assert listed["count"] == 1
    [task] = listed["tasks"]
    assert as_rest(task, user) == instants(edited.json())
    assert task["task_id"] == added["task_id"]
    assert task["title"] == "Buy oat milk"
    assert task["description"] is None
    assert task["completed"] is True
    assert task["created_at"] == added["created_at"]
    assert [t["task_id"] for t in completed["tasks"]] == [added["task_id"]]


async def test_a_task_created_over_rest_is_completed_and_updated_over_mcp_and_read_back_over_rest(
    db: Database, client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    created = await client.post(
        f"/api/{user}/tasks", json={"title": "Water the plants", "description": "Twice"}, headers=auth
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    async with mcp_tools(db, user) as tools:
        listed = await tools.ok("list_tasks", user_id=user)
        completed = await tools.ok("complete_task", user_id=user, task_id=task_id)
        updated = await tools.ok("update_task", user_id=user, task_id=task_id, title="Water the garden")
    fetched = await client.get(f"/api/{user}/tasks/{task_id}", headers=auth)

    assert [as_rest(task, user) for task in listed["tasks"]] == [instants(created.json())]
    assert completed["task_id"] == task_id
    assert completed["completed"] is True
    assert updated["task_id"] == task_id
    assert updated["updated_fields"] == ["title"]
    assert fetched.status_code == 200, fetched.text
    assert instants(fetched.json()) == as_rest(updated["task"], user)
    assert fetched.json()["title"] == "Water the garden"
    assert fetched.json()["description"] == "Twice"
    assert fetched.json()["completed"] is True
    assert fetched.json()["created_at"] == created.json()["created_at"]


async def test_a_task_deleted_over_rest_is_gone_for_mcp_and_one_deleted_over_mcp_is_gone_for_rest(
    db: Database, client: httpx.AsyncClient, user_factory: UserFactory, auth_for: AuthFor
) -> None:
    user = await user_factory()
    auth = auth_for(user)
    async with mcp_tools(db, user) as tools:
        via_mcp = await tools.ok("add_task", user_id=user, title="Deleted over REST")
        via_rest = (
            await client.post(f"/api/{user}/tasks", json={"title": "Deleted over MCP"}, headers=auth)
        ).json()

        rest_delete = await client.delete(f"/api/{user}/tasks/{via_mcp['task_id']}", headers=auth)
        await tools.ok("delete_task", user_id=user, task_id=via_rest["id"])
        left_for_mcp = await tools.ok("list_tasks", user_id=user)
    left_for_rest = await client.get(f"/api/{user}/tasks", headers=auth)

    assert rest_delete.status_code == 204
    assert left_for_mcp == page([])
    assert left_for_rest.json()["tasks"] == []


async def test_a_rest_login_token_is_accepted_by_the_mcp_http_server(
    settings: Settings, db: Database, client: httpx.AsyncClient
) -> None:
    """The token `POST /auth/login` issues is the bearer token the MCP server verifies."""
    signup = await client.post("/auth/signup", json={"email": "ada@example.com", "password": "correct horse"})
    assert signup.status_code == 201, signup.text
    login = await client.post("/auth/login", json={"email": "ada@example.com", "password": "correct horse"})
    assert login.status_code == 200, login.text
    user, token = signup.json()["id"], login.json()["access_token"]
    mcp_app = build_http_app(settings, db, host="127.0.0.1")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=mcp_app), base_url="http://127.0.0.1:5000"
    ) as mcp_http:
        added = await mcp_http.post(
            "/tools/add_task",
            json={"user_id": user, "title": "Added with a REST token"},
            headers={"Authorization": f"Bearer {token}"},
        )
        refused = await mcp_http.post("/tools/list_tasks", json={"user_id": user})

    assert added.status_code == 200, added.text
    assert added.json()["status"] == "success"
    assert refused.status_code == 401
    listed = await client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
    assert [task["id"] for task in listed.json()["tasks"]] == [added.json()["data"]["task_id"]]
