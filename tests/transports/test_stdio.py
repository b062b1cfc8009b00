"""`todo-mcp stdio --user alice` as a real subprocess, driven by the SDK's stdio client.

The process serves one user: alice's calls work, any other user_id is a 403 and writes
nothing. Its stdout carries JSON-RPC and nothing else (a desktop client would break on a
stray line), so logs and warnings must go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import make_settings
from tests.transports.clients import CALL_TIMEOUT_SECONDS, TOOL_NAMES, call, create_users, migrate_database
from tests.transports.processes import clean_env, todo_mcp_executable
from todo_mcp.db.engine import Database
from todo_mcp.services import tasks

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RAW_SESSION_DEADLINE_SECONDS = 30.0
# The server's SQLite busy timeout is 5 s; a process that cancels its work exits well within this.
EXIT_DEADLINE_SECONDS = 15.0


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A migrated SQLite file with the users alice and bob."""
    url = f"sqlite:///{tmp_path / 'todo.db'}"

    async def seed() -> None:
        await migrate_database(url)
        await create_users(url, "alice", "bob")

    asyncio.run(seed())
    return url


@asynccontextmanager
async def stdio_session(database_url: str, workdir: Path, *, user: str, mode: str) -> AsyncIterator[Client]:
    """The SDK client on a `todo-mcp stdio` subprocess; the SDK stops the process on exit."""
    params = StdioServerParameters(
        command=str(todo_mcp_executable()),
        args=["stdio", "--user", user],
        # Merged over the SDK's minimal default environment, which carries no JWT_SECRET.
        env={"DATABASE_URL": database_url},
        cwd=workdir,
    )
    with (workdir / "stdio-stderr.log").open("w") as errlog:
        async with Client(
            stdio_client(params, errlog=errlog), mode=mode, read_timeout_seconds=CALL_TIMEOUT_SECONDS
        ) as client:
            yield client


async def titles_of(database_url: str, user_id: str) -> list[str]:
    db = Database.from_settings(make_settings(database_url))
    try:
        async with db.connect() as conn:
            return [task.title for task in (await tasks.list_tasks(conn, user_id=user_id)).tasks]
    finally:
        await db.dispose()


async def test_stdio_lists_the_five_tools(database_url: str, tmp_path: Path, mode: str) -> None:
    async with stdio_session(database_url, tmp_path, user="alice", mode=mode) as client:
        listed = (await client.list_tools()).tools
    assert sorted(tool.name for tool in listed) == sorted(TOOL_NAMES)
    assert all(tool.output_schema is not None and tool.annotations is not None for tool in listed)


async def test_stdio_serves_every_tool_for_its_user(database_url: str, tmp_path: Path, mode: str) -> None:
    async with stdio_session(database_url, tmp_path, user="alice", mode=mode) as client:
        added = await call(
            client, "add_task", user_id="alice", title="Water the plants", description="balcony"
        )
        assert added["status"] == "success", added
        task_id = added["data"]["task_id"]
        second = await call(client, "add_task", user_id="alice", title="Call the plumber")
        assert second["status"] == "success", second

        listed = await call(client, "list_tasks", user_id="alice")
        assert [task["title"] for task in listed["data"]["tasks"]] == ["Water the plants", "Call the plumber"]

        done = await call(client, "complete_task", user_id="alice", task_id=task_id)
        assert done["data"]["completed"] is True
        pending = await call(client, "list_tasks", user_id="alice", status="pending")
        assert [task["title"] for task in pending["data"]["tasks"]] == ["Call the plumber"]

        updated = await call(client, "update_task", user_id="alice", task_id=task_id, description="")
        assert updated["data"]["updated_fields"] == ["description"]
        assert updated["data"]["task"]["description"] is None

        deleted = await call(client, "delete_task", user_id="alice", task_id=task_id)
        assert deleted["data"] == {"task_id": task_id, "title": "Water the plants"}

    assert await titles_of(database_url, "alice") == ["Call the plumber"]


async def test_stdio_refuses_every_call_for_another_user_and_writes_nothing(
    database_url: str, tmp_path: Path, mode: str
) -> None:
    db = Database.from_settings(make_settings(database_url))
    try:
        async with db.connect() as conn:
            bobs = (await tasks.add_task(conn, user_id="bob", title="Bob's task")).task
    finally:
        await db.dispose()
    assert bobs.id is not None

    calls: list[tuple[str, dict[str, Any]]] = [
        ("add_task", {"title": "Planted"}),
        ("list_tasks", {}),
        ("complete_task", {"task_id": bobs.id}),
        ("update_task", {"task_id": bobs.id, "title": "Hijacked"}),
        ("delete_task", {"task_id": bobs.id}),
    ]
    async with stdio_session(database_url, tmp_path, user="alice", mode=mode) as client:
        for tool, arguments in calls:
            result = await call(client, tool, user_id="bob", **arguments)
            assert result["status"] == "error", (tool, result)
            assert result["data"] == {"error_code": 403}, (tool, result)

    assert await titles_of(database_url, "bob") == ["Bob's task"]
    assert await titles_of(database_url, "alice") == []


def _request(request_id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Copy the lines of `stream` into `lines`, then None at end of file."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def _parse_stdout_line(line: str) -> dict[str, Any]:
    try:
        message: dict[str, Any] = json.loads(line)
    except json.JSONDecodeError:
        pytest.fail(f"stdout carried a line that is not JSON-RPC: {line!r}")
    assert message.get("jsonrpc") == "2.0", line
    return message


@pytest.mark.parametrize("user", ["alice", "nobody-yet"], ids=["existing user", "unknown user (warns)"])
def test_stdio_writes_nothing_but_json_rpc_to_stdout(database_url: str, tmp_path: Path, user: str) -> None:
    initialize = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "0"},
    }
    messages: list[dict[str, Any]] = [
        _request(1, "initialize", initialize),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        _request(2, "tools/list"),
        _request(3, "tools/call", {"name": "add_task", "arguments": {"user_id": user, "title": "Raw"}}),
        _request(4, "tools/call", {"name": "list_tasks", "arguments": {"user_id": "bob"}}),
        _request(5, "tools/call", {"name": "add_task", "arguments": {"user_id": user}}),
        _request(6, "no/such/method"),
    ]
    expected_ids = {1, 2, 3, 4, 5, 6}
    # DEBUG logging makes every logger talk, so a stray print or handler on stdout would show.
    env = clean_env({"DATABASE_URL": database_url, "LOG_LEVEL": "DEBUG"})
    stderr_path = tmp_path / "stderr.log"
    lines: queue.Queue[str | None] = queue.Queue()
    answers: dict[int, dict[str, Any]] = {}
    with stderr_path.open("w") as stderr_file:
        process = subprocess.Popen(
            [str(todo_mcp_executable()), "stdio", "--user", user],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
    assert process.stdin is not None
    assert process.stdout is not None
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    try:
        process.stdin.write("".join(json.dumps(message) + "\n" for message in messages))
        process.stdin.flush()
        deadline = time.monotonic() + RAW_SESSION_DEADLINE_SECONDS
        while set(answers) != expected_ids:
            remaining = deadline - time.monotonic()
            line = lines.get(timeout=max(remaining, 0.01)) if remaining > 0 else None
            if line is None:
                pytest.fail(
                    f"answers {sorted(answers)} of {sorted(expected_ids)}:\n{stderr_path.read_text()}"
                )
            message = _parse_stdout_line(line)
            if "id" in message:
                answers[message["id"]] = message
        # End of input is how a client says it is done: the server must exit, and cleanly.
        process.stdin.close()
        returncode = process.wait(timeout=RAW_SESSION_DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    while (line := lines.get(timeout=RAW_SESSION_DEADLINE_SECONDS)) is not None:
        _parse_stdout_line(line)
    stderr = stderr_path.read_text()

    assert "result" in answers[1]
    assert {tool["name"] for tool in answers[2]["result"]["tools"]} == TOOL_NAMES
    added = answers[3]["result"]["structuredContent"]
    if user == "alice":
        assert added["status"] == "success", added
    else:
        assert added["data"] == {"error_code": 404}, added
    assert answers[4]["result"]["structuredContent"]["data"] == {"error_code": 403}
    assert answers[5]["result"]["structuredContent"]["data"] == {"error_code": 400}
    assert answers[6]["error"]["code"] == -32601
    # The logs went somewhere: stderr.
    assert "serving MCP over stdio" in stderr
    if user != "alice":
        assert "does not exist" in stderr
    assert returncode == 0, stderr


def _reached_the_database(log: str) -> bool:
    """Whether DEBUG logging shows add_task's first statement handed to SQLite: a BEGIN IMMEDIATE
    if the call runs in a transaction, else the INSERT; either waits for the write lock."""
    return "BEGIN IMMEDIATE" in log or "INSERT INTO tasks" in log


def test_stdio_exits_when_its_client_disconnects_during_a_call(database_url: str, tmp_path: Path) -> None:
    """A desktop client that quits mid-call must not leave an orphaned server process behind."""
    # DEBUG logging shows each SQL statement, which is how the test sees the call reach the database.
    env = clean_env({"DATABASE_URL": database_url, "LOG_LEVEL": "DEBUG"})
    stderr_path = tmp_path / "stderr.log"
    initialize = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    }
    with stderr_path.open("w") as stderr_file:
        process = subprocess.Popen(
            [str(todo_mcp_executable()), "stdio", "--user", "alice"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
    assert process.stdin is not None
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    # Another writer holds SQLite's write lock, so the call waits inside the database when the
    # client goes away (the server's busy timeout is 5 s).
    blocker = sqlite3.connect(tmp_path / "todo.db", isolation_level=None)
    try:
        process.stdin.write(json.dumps(_request(1, "initialize", initialize)) + "\n")
        process.stdin.flush()
        answer = lines.get(timeout=RAW_SESSION_DEADLINE_SECONDS)
        assert answer is not None, stderr_path.read_text()
        assert _parse_stdout_line(answer)["id"] == 1
        blocker.execute("BEGIN IMMEDIATE")
        started_at = len(stderr_path.read_text())
        add = _request(
            2, "tools/call", {"name": "add_task", "arguments": {"user_id": "alice", "title": "Cut"}}
        )
        process.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
        process.stdin.write(json.dumps(add) + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + RAW_SESSION_DEADLINE_SECONDS
        while not _reached_the_database(stderr_path.read_text()[started_at:]):
            assert time.monotonic() < deadline, "the call never reached the database"
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.02)  # the pause between polls; notices an early exit
            assert process.poll() is None, stderr_path.read_text()

        process.stdin.close()  # the client quits
        try:
            process.wait(timeout=EXIT_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"todo-mcp stdio was still running {EXIT_DEADLINE_SECONDS} s after its client "
                "closed stdin during a call"
            )
    finally:
        blocker.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
