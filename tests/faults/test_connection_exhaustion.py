"""More clients than the database has connections for, across real server processes.

A PostgreSQL of the test's own allows 10 connections; `serve --with-api` (one pool of 20, MCP
and REST) and `serve --workers 2` (two pools of 20) share it, and concurrent clients call all
three doors. While the slots run out every answer is a success or a 503 (an envelope on MCP,
`error_id` on REST), each within a bounded wait; no acknowledged write is lost, nothing refused
is written; once the load stops, every process is ready again and serves every call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.private_postgres import private_postgres
from tests.transports.processes import (
    ServerProcess,
    free_port,
    issue_token,
    run_cli,
    server_env,
    spawn_command,
    stop,
    wait_healthy,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MAX_CONNECTIONS = 10
USER = "load-user"
CONCURRENCY = 48
MAX_ROUNDS = 10
POOL_TIMEOUT_SECONDS = 3.0
# Any answer within the pool timeout plus a connection attempt, with room for a slow machine.
ANSWER_BOUND_SECONDS = 15.0
RECOVERY_BOUND_SECONDS = 20.0
ENV = {
    "DATABASE_POOL_TIMEOUT": str(POOL_TIMEOUT_SECONDS),
    "DATABASE_POOL_IDLE_SECONDS": "1",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class Deployment:
    with_api: ServerProcess
    api_url: str
    workers: ServerProcess
    database_url: str


@pytest.fixture(scope="module")
def deployment(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    # The servers connect as an ordinary role and get MAX_CONNECTIONS slots; the one slot kept
    # for superusers lets the test look into the database while they hold all of theirs.
    settings = {"max_connections": str(MAX_CONNECTIONS + 1), "superuser_reserved_connections": "1"}
    with private_postgres(settings) as pg, ExitStack() as cleanup:
        asyncio.run(create_app_database(pg.url()))
        workdir = tmp_path_factory.mktemp("exhaustion")
        url = pg.url("todo", user="todo")
        env = server_env(url, ENV)
        for command in (["db", "upgrade"], ["users", "add", USER, "--email", "load@example.com"]):
            done = run_cli(command, cwd=workdir, env=env)
            assert done.returncode == 0, done.stderr
        api_port = free_port()
        with_api = spawn_command(
            workdir, {**env, "API_PORT": str(api_port)}, "with-api", ["serve", "--with-api"]
        )
        cleanup.callback(stop, with_api)
        workers = spawn_command(workdir, env, "workers", ["serve", "--workers", "2"])
        cleanup.callback(stop, workers)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_healthy(with_api.base_url, api_url, workers.base_url, processes=[with_api, workers])
        yield Deployment(with_api=with_api, api_url=api_url, workers=workers, database_url=pg.url("todo"))


async def create_app_database(admin_url: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=5)
    try:
        await connection.execute("CREATE ROLE todo LOGIN")
        await connection.execute("CREATE DATABASE todo OWNER todo")
    finally:
        await connection.close()


@dataclass
class Answer:
    door: str
    status: int
    body: Any
    seconds: float

    @property
    def task_id(self) -> int | None:
        if self.door == "rest":
            return self.body.get("id") if self.status == 201 else None
        if self.door == "mcp":
            envelope = self.body.get("result", {}).get("structuredContent", {})
        else:
            envelope = self.body
        return envelope.get("data", {}).get("task_id") if envelope.get("status") == "success" else None

    def problem(self) -> str | None:
        """Why this answer breaks the rule (a success or a 503 in the door's shape), or None."""
        if self.seconds > ANSWER_BOUND_SECONDS:
            return f"took {self.seconds:.1f} s"
        if self.task_id is not None:
            return None
        if self.door == "rest":
            ok = self.status == 503 and isinstance(self.body.get("error_id"), str)
        elif self.door == "mcp":
            envelope = self.body.get("result", {}).get("structuredContent", {})
            ok = self.status == 200 and envelope.get("data") == {"error_code": 503}
        else:
            ok = self.status == 503 and self.body.get("data") == {"error_code": 503}
        return None if ok else "neither a success nor a 503"


async def add(http: httpx.AsyncClient, deployment: Deployment, door: str, index: int) -> Answer:
    headers = {"Authorization": f"Bearer {issue_token(USER)}"}
    title = f"task {door} {index}"
    started = time.monotonic()
    if door == "rest":
        response = await http.post(
            f"{deployment.api_url}/api/{USER}/tasks", json={"title": title}, headers=headers
        )
    elif door == "mcp":
        message = {
            "jsonrpc": "2.0",
            "id": index,
            "method": "tools/call",
            "params": {"name": "add_task", "arguments": {"user_id": USER, "title": title}},
        }
        response = await http.post(
            deployment.with_api.mcp_url,
            json=message,
            headers={
                **headers,
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-11-25",
            },
        )
    else:
        response = await http.post(
            f"{deployment.workers.base_url}/tools/add_task",
            json={"user_id": USER, "title": title},
            headers=headers,
        )
    try:
        body = response.json()
    except ValueError:
        body = {"text": response.text}
    return Answer(door=door, status=response.status_code, body=body, seconds=time.monotonic() - started)


async def burst(http: httpx.AsyncClient, deployment: Deployment, start: int) -> list[Answer]:
    doors = ("rest", "mcp", "workers")
    return list(
        await asyncio.gather(*(add(http, deployment, doors[i % 3], start + i) for i in range(CONCURRENCY)))
    )


async def stored_task_ids(database_url: str) -> set[int]:
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        return {row["id"] for row in await connection.fetch("SELECT id FROM tasks")}
    finally:
        await connection.close()


async def test_past_the_servers_connection_limit_answers_are_successes_or_503s_then_full_service(
    deployment: Deployment,
) -> None:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    answers: list[Answer] = []
    async with httpx.AsyncClient(timeout=ANSWER_BOUND_SECONDS * 2, limits=limits) as http:
        for round_ in range(MAX_ROUNDS):
            answers += await burst(http, deployment, round_ * CONCURRENCY)
            if any(answer.task_id is None for answer in answers) and round_ >= 2:
                break

        problems = [(a.door, a.status, a.problem(), a.body) for a in answers if a.problem() is not None]
        assert problems == [], problems[:5]
        refused = [answer for answer in answers if answer.task_id is None]
        assert refused, "the load never ran out of connections, so the test showed nothing"

        # Every acknowledged task is stored; nothing that was refused is.
        acknowledged = {answer.task_id for answer in answers if answer.task_id is not None}
        assert await stored_task_ids(deployment.database_url) == acknowledged

        # Once the load stops, every process gets its slots back: ready, and serving every call.
        ready_urls = [deployment.with_api.base_url, deployment.api_url] + [deployment.workers.base_url] * 4
        deadline = time.monotonic() + RECOVERY_BOUND_SECONDS
        while True:
            statuses = [(await http.get(f"{url}/ready")).status_code for url in ready_urls]
            if set(statuses) == {200}:
                break
            assert time.monotonic() < deadline, f"not ready again: {statuses}"
            await asyncio.sleep(0.2)
        doors = ("rest", "mcp", "workers")
        after = [await add(http, deployment, doors[i % 3], -i) for i in range(1, CONCURRENCY + 1)]
        assert [(a.door, a.status, a.body) for a in after if a.task_id is None] == []
