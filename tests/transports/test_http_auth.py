"""Bearer tokens over HTTP, against a real `todo-mcp serve` process, in both protocol eras.

The SDK client drives the tools with valid tokens; plain httpx checks what an unauthenticated
or mis-authenticated request gets (401 with a Bearer challenge) and what a token for another
user gets (the 403 envelope, nothing written).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import page
from tests.transports.clients import TOOL_NAMES, call, create_users, mcp_client
from tests.transports.processes import JWT_SECRET, ServerProcess, issue_token

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HTTP_TIMEOUT_SECONDS = 15.0
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


def unique(name: str) -> str:
    """A user id of this test's own, so no test sees another's tasks."""
    return f"{name}-{secrets.token_hex(4)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _signed(claims: dict[str, Any], key: str = JWT_SECRET) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def _now() -> datetime:
    return datetime.now(UTC)


# Each makes the Authorization header of one kind of bad credentials.
BAD_CREDENTIALS: dict[str, Callable[[], dict[str, str]]] = {
    "missing": dict,
    "bearer without a token": lambda: {"Authorization": "Bearer"},
    "basic scheme": lambda: {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
    # Expired well beyond the server's 30 s leeway.
    "expired": lambda: bearer(
        _signed({"sub": "alice", "iat": _now() - timedelta(hours=2), "exp": _now() - timedelta(hours=1)})
    ),
    "forged": lambda: bearer(issue_token("alice", secret="another-secret-that-is-40-characters-long")),
    "malformed": lambda: bearer("not-a-jwt"),
    "truncated": lambda: bearer(issue_token("alice")[:-10]),
    "unsigned (alg none)": lambda: bearer(
        jwt.encode({"sub": "alice", "exp": _now() + timedelta(hours=1)}, "", algorithm="none")
    ),
    "no expiry": lambda: bearer(_signed({"sub": "alice"})),
    "no subject": lambda: bearer(_signed({"exp": _now() + timedelta(hours=1)})),
}
# RFC 6750: a request that presented no token gets a challenge without an error code.
NO_TOKEN_PRESENTED = {"missing", "bearer without a token", "basic scheme"}


async def test_lists_exactly_the_five_tools_with_annotations_and_output_schemas(
    server: ServerProcess, mode: str
) -> None:
    async with mcp_client(server.mcp_url, issue_token("alice"), mode=mode) as client:
        listed = (await client.list_tools()).tools

    assert sorted(tool.name for tool in listed) == sorted(TOOL_NAMES)
    tools = {tool.name: tool for tool in listed}
    for tool in listed:
        assert tool.description, f"{tool.name} has no description"
        assert tool.annotations is not None, f"{tool.name} has no annotations"
        hints = tool.annotations
        assert None not in (
            hints.read_only_hint,
            hints.destructive_hint,
            hints.idempotent_hint,
            hints.open_world_hint,
        ), f"{tool.name} leaves a hint unset: {hints!r}"
        # Only the one tool that changes nothing may say it is read-only.
        assert hints.read_only_hint is (tool.name == "list_tasks")
        assert tool.output_schema is not None, f"{tool.name} has no output schema"
        assert tool.output_schema["type"] == "object"
        assert set(tool.output_schema["required"]) == {"status", "data", "message"}
        assert tool.output_schema["properties"]["status"]["enum"] == ["success", "error"]
        assert "user_id" in tool.input_schema["required"]
    # What the design names: list_tasks read-only, delete_task destructive, complete_task idempotent.
    declared = {name: tool.annotations.model_dump() for name, tool in tools.items() if tool.annotations}
    assert declared["delete_task"]["destructive_hint"] is True
    assert declared["complete_task"]["idempotent_hint"] is True
    assert declared["add_task"]["idempotent_hint"] is False


async def test_every_tool_works_for_two_users_each_with_their_own_token(
    server: ServerProcess, seeded_sqlite_url: str, mode: str
) -> None:
    alice, bob = unique("alice"), unique("bob")
    await create_users(seeded_sqlite_url, alice, bob)

    for user in (alice, bob):
        async with mcp_client(server.mcp_url, issue_token(user), mode=mode) as client:
            added = await call(client, "add_task", user_id=user, title=f"  {user}'s errand ", description="d")
            assert added["status"] == "success", added
            task = added["data"]
            assert task["title"] == f"{user}'s errand"
            assert task["description"] == "d"
            assert task["completed"] is False
            task_id = task["task_id"]
            assert isinstance(task_id, int)

            listed = await call(client, "list_tasks", user_id=user)
            assert listed["status"] == "success"
            assert listed["data"]["count"] == 1
            assert [t["task_id"] for t in listed["data"]["tasks"]] == [task_id]

            updated = await call(client, "update_task", user_id=user, task_id=task_id, title="Renamed")
            assert updated["status"] == "success", updated
            assert updated["data"]["updated_fields"] == ["title"]
            assert updated["data"]["task"]["title"] == "Renamed"
            assert updated["data"]["task"]["description"] == "d"

            completed = await call(client, "complete_task", user_id=user, task_id=task_id)
            assert completed["status"] == "success"
            assert completed["data"]["completed"] is True
            again = await call(client, "complete_task", user_id=user, task_id=task_id)
            assert again["status"] == "success"
            assert "already" in again["message"]

            done = await call(client, "list_tasks", user_id=user, status="completed")
            assert [t["title"] for t in done["data"]["tasks"]] == ["Renamed"]
            pending = await call(client, "list_tasks", user_id=user, status="pending")
            assert pending["data"] == page([])

            deleted = await call(client, "delete_task", user_id=user, task_id=task_id)
            assert deleted["status"] == "success"
            assert deleted["data"] == {"task_id": task_id, "title": "Renamed"}
            gone = await call(client, "complete_task", user_id=user, task_id=task_id)
            assert gone["status"] == "error"
            assert gone["data"] == {"error_code": 404}
            assert (await call(client, "list_tasks", user_id=user))["data"]["count"] == 0


async def test_a_users_task_is_reported_missing_to_another_user(
    server: ServerProcess, seeded_sqlite_url: str, mode: str
) -> None:
    alice, bob = unique("alice"), unique("bob")
    await create_users(seeded_sqlite_url, alice, bob)
    async with mcp_client(server.mcp_url, issue_token(alice), mode=mode) as as_alice:
        task_id = (await call(as_alice, "add_task", user_id=alice, title="Private"))["data"]["task_id"]
    async with mcp_client(server.mcp_url, issue_token(bob), mode=mode) as as_bob:
        for tool, extra in (("complete_task", {}), ("update_task", {"title": "Mine"}), ("delete_task", {})):
            result = await call(as_bob, tool, user_id=bob, task_id=task_id, **extra)
            assert result["data"] == {"error_code": 404}, (tool, result)
        assert (await call(as_bob, "list_tasks", user_id=bob))["data"]["count"] == 0
    async with mcp_client(server.mcp_url, issue_token(alice), mode=mode) as as_alice:
        tasks = (await call(as_alice, "list_tasks", user_id=alice))["data"]["tasks"]
    assert [(t["task_id"], t["title"], t["completed"]) for t in tasks] == [(task_id, "Private", False)]


async def test_a_token_for_one_user_cannot_act_for_another_and_writes_nothing(
    server: ServerProcess, seeded_sqlite_url: str, mode: str
) -> None:
    alice, bob = unique("alice"), unique("bob")
    await create_users(seeded_sqlite_url, alice, bob)
    async with mcp_client(server.mcp_url, issue_token(bob), mode=mode) as as_bob:
        before = (await call(as_bob, "add_task", user_id=bob, title="Bob's own", description="keep"))["data"]

    calls: list[tuple[str, dict[str, Any]]] = [
        ("add_task", {"user_id": bob, "title": "Planted by alice"}),
        ("list_tasks", {"user_id": bob}),
        ("complete_task", {"user_id": bob, "task_id": before["task_id"]}),
        ("update_task", {"user_id": bob, "task_id": before["task_id"], "title": "Hijacked"}),
        ("delete_task", {"user_id": bob, "task_id": before["task_id"]}),
    ]
    async with mcp_client(server.mcp_url, issue_token(alice), mode=mode) as as_alice:
        for tool, arguments in calls:
            result = await call(as_alice, tool, **arguments)
            assert result["status"] == "error", (tool, result)
            assert result["data"] == {"error_code": 403}, (tool, result)
            assert "different user" in result["message"]

    async with httpx.AsyncClient(base_url=server.base_url, timeout=HTTP_TIMEOUT_SECONDS) as http:
        for tool, arguments in calls:
            response = await http.post(f"/tools/{tool}", json=arguments, headers=bearer(issue_token(alice)))
            assert response.status_code == 403, (tool, response.text)
            assert response.json()["data"] == {"error_code": 403}

    async with mcp_client(server.mcp_url, issue_token(bob), mode=mode) as as_bob:
        after = (await call(as_bob, "list_tasks", user_id=bob))["data"]
    assert after == page([before])


@pytest.mark.parametrize("kind", BAD_CREDENTIALS)
@pytest.mark.parametrize("path", ["/mcp", "/tools/add_task", "/tools/list_tasks"])
async def test_bad_credentials_get_401_with_a_bearer_challenge(
    server: ServerProcess, kind: str, path: str
) -> None:
    headers = BAD_CREDENTIALS[kind]()
    planted = f"planted-{secrets.token_hex(4)}"
    body = LIST_TOOLS if path == "/mcp" else {"user_id": "alice", "title": planted}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=HTTP_TIMEOUT_SECONDS) as http:
        response = await http.post(path, json=body, headers={**MCP_HEADERS, **headers})
        assert response.status_code == 401, response.text
        challenge = response.headers.get("WWW-Authenticate", "")
        assert challenge.startswith("Bearer "), challenge
        if kind in NO_TOKEN_PRESENTED:
            assert "error=" not in challenge
        else:
            assert 'error="invalid_token"' in challenge
        refusal = response.json()
        assert refusal["status"] == "error"
        assert refusal["data"] == {"error_code": 401}
        assert refusal["message"]
        assert JWT_SECRET not in response.text

        listed = await http.post(
            "/tools/list_tasks", json={"user_id": "alice"}, headers=bearer(issue_token("alice"))
        )
    assert listed.status_code == 200
    assert planted not in [task["title"] for task in listed.json()["data"]["tasks"]]


async def test_an_expired_token_is_refused_with_a_message_saying_so(server: ServerProcess) -> None:
    expired = BAD_CREDENTIALS["expired"]()
    async with httpx.AsyncClient(base_url=server.base_url, timeout=HTTP_TIMEOUT_SECONDS) as http:
        response = await http.post("/tools/list_tasks", json={"user_id": "alice"}, headers=expired)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
    assert "expired" in response.headers["WWW-Authenticate"]


async def test_the_sdk_client_without_a_token_cannot_list_tools(server: ServerProcess, mode: str) -> None:
    # The SDK reports the 401 as an MCPError, wrapped in its task groups' exception groups.
    with pytest.RaisesGroup(MCPError, allow_unwrapped=True, flatten_subgroups=True):
        async with mcp_client(server.mcp_url, None, mode=mode) as client:
            await client.list_tools()


async def test_health_and_ready_answer_without_a_token(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=HTTP_TIMEOUT_SECONDS) as http:
        health = await http.get("/health")
        ready = await http.get("/ready")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "database": "ok"})
