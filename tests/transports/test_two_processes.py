"""Two `todo-mcp serve` processes on one PostgreSQL database, under concurrent clients.

The service is stateless, so any number of processes may serve one database: concurrent calls
spread over both must all succeed, lose nothing, duplicate nothing, and leave tasks in a state
both processes report the same way.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import throwaway_postgres_database
from tests.transports.clients import MODES, call, create_users, mcp_client
from tests.transports.processes import (
    LaunchServers,
    ServerProcess,
    clean_env,
    issue_token,
    run_cli,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

USERS = 8
ADDS_PER_USER = 25
# Races are won by chance: enough of them that a wrong outcome shows up in practically every run,
# a few tasks at a time so that the calls on one task reach both servers at nearly the same moment
# instead of queueing behind a hundred others.
CONTESTED_TASKS = 40
RACED_TASKS = 40
RACE_BATCH = 4
HTTP_TIMEOUT_SECONDS = 30.0


@pytest.fixture(scope="module")
def dedicated_postgres_url(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this module's own, migrated by `todo-mcp db upgrade`, dropped afterwards.

    Taking `postgres_url` applies the suite's rule for an unreachable server (skip, or fail in CI).
    """
    with throwaway_postgres_database("two_processes") as url:
        workdir = tmp_path_factory.mktemp("migrate")
        upgraded = run_cli(["db", "upgrade"], cwd=workdir, env=clean_env({"DATABASE_URL": url}))
        assert upgraded.returncode == 0, upgraded.stderr
        yield url


@pytest.fixture(scope="module")
def servers(dedicated_postgres_url: str, launch_servers: LaunchServers) -> list[ServerProcess]:
    return launch_servers(2, database_url=dedicated_postgres_url)


async def tool_call(
    http: httpx.AsyncClient, server: ServerProcess, user: str, tool: str, **arguments: Any
) -> httpx.Response:
    return await http.post(
        f"{server.base_url}/tools/{tool}",
        json={"user_id": user, **arguments},
        headers={"Authorization": f"Bearer {issue_token(user)}"},
    )


def new_client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, limits=limits)


async def list_on(http: httpx.AsyncClient, server: ServerProcess, user: str) -> list[dict[str, Any]]:
    response = await tool_call(http, server, user, "list_tasks")
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["data"]["tasks"]
    return tasks


async def test_concurrent_adds_across_two_servers_lose_nothing_and_duplicate_nothing(
    servers: list[ServerProcess], dedicated_postgres_url: str
) -> None:
    users = [f"load-{index}-{secrets.token_hex(3)}" for index in range(USERS)]
    await create_users(dedicated_postgres_url, *users)
    planned = [
        (user, f"{user} task {n}", servers[(index + n) % 2])
        for index, user in enumerate(users)
        for n in range(ADDS_PER_USER)
    ]

    async with new_client() as http:
        responses = await asyncio.gather(
            *(tool_call(http, server, user, "add_task", title=title) for user, title, server in planned)
        )

        failures = [(r.status_code, r.text) for r in responses if r.status_code != 200]
        assert failures == [], f"{len(failures)} of {len(planned)} calls failed, e.g. {failures[:3]}"
        added = [r.json()["data"] for r in responses]
        ids = [task["task_id"] for task in added]
        assert len(set(ids)) == len(planned), "task ids are not unique"

        for user in users:
            expected = {title for owner, title, _ in planned if owner == user}
            expected_ids = {
                task["task_id"] for (owner, _, _), task in zip(planned, added, strict=True) if owner == user
            }
            for server in servers:
                tasks = await list_on(http, server, user)
                titles = [task["title"] for task in tasks]
                assert len(titles) == ADDS_PER_USER, (server.port, user, titles)
                assert set(titles) == expected
                assert {task["task_id"] for task in tasks} == expected_ids


async def test_both_servers_speak_mcp_on_the_shared_database(
    servers: list[ServerProcess], dedicated_postgres_url: str
) -> None:
    user = f"mcp-{secrets.token_hex(3)}"
    await create_users(dedicated_postgres_url, user)
    for index, mode in enumerate(MODES):
        writer, reader = servers[index % 2], servers[(index + 1) % 2]
        async with mcp_client(writer.mcp_url, issue_token(user), mode=mode) as client:
            assert (await call(client, "add_task", user_id=user, title=f"via {mode}"))["status"] == "success"
        async with mcp_client(reader.mcp_url, issue_token(user), mode=mode) as client:
            listed = await call(client, "list_tasks", user_id=user)
        assert [task["title"] for task in listed["data"]["tasks"]] == [f"via {m}" for m in MODES[: index + 1]]


async def _contested_tasks(
    http: httpx.AsyncClient, servers: list[ServerProcess], user: str, count: int
) -> list[int]:
    responses = await asyncio.gather(
        *(tool_call(http, servers[n % 2], user, "add_task", title=f"original {n}") for n in range(count))
    )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    return [r.json()["data"]["task_id"] for r in responses]


async def test_concurrent_complete_and_update_from_both_servers_end_in_one_consistent_state(
    servers: list[ServerProcess], dedicated_postgres_url: str
) -> None:
    user = f"contested-{secrets.token_hex(3)}"
    await create_users(dedicated_postgres_url, user)
    a, b = servers
    async with new_client() as http:
        task_ids = await _contested_tasks(http, servers, user, CONTESTED_TASKS)
        responses: list[httpx.Response] = []
        for start in range(0, len(task_ids), RACE_BATCH):
            calls = []
            for task_id in task_ids[start : start + RACE_BATCH]:
                calls += [
                    tool_call(http, a, user, "complete_task", task_id=task_id),
                    tool_call(http, b, user, "update_task", task_id=task_id, title=f"renamed {task_id}"),
                    tool_call(http, b, user, "complete_task", task_id=task_id),
                    tool_call(
                        http, a, user, "update_task", task_id=task_id, description=f"described {task_id}"
                    ),
                ]
            responses += await asyncio.gather(*calls)
        failures = [(r.status_code, r.text) for r in responses if r.status_code != 200]
        assert failures == [], failures[:3]

        on_a = await list_on(http, a, user)
        on_b = await list_on(http, b, user)
    assert on_a == on_b
    # Each call changed different columns, so none may undo another: all four effects remain.
    assert [(t["task_id"], t["title"], t["description"], t["completed"]) for t in on_a] == [
        (task_id, f"renamed {task_id}", f"described {task_id}", True) for task_id in sorted(task_ids)
    ]


async def test_racing_delete_against_complete_and_update_never_fails_with_a_server_error(
    servers: list[ServerProcess], dedicated_postgres_url: str
) -> None:
    user = f"racing-{secrets.token_hex(3)}"
    await create_users(dedicated_postgres_url, user)
    a, b = servers
    async with new_client() as http:
        task_ids = await _contested_tasks(http, servers, user, RACED_TASKS)
        responses: list[httpx.Response] = []
        for start in range(0, len(task_ids), RACE_BATCH):
            calls = []
            for task_id in task_ids[start : start + RACE_BATCH]:
                calls += [
                    tool_call(http, b, user, "complete_task", task_id=task_id),
                    tool_call(http, a, user, "delete_task", task_id=task_id),
                    tool_call(http, b, user, "update_task", task_id=task_id, title="too late"),
                ]
            responses += await asyncio.gather(*calls)
        remaining = (await list_on(http, a, user), await list_on(http, b, user))

    # The task may be gone by the time a call reaches it: that is a 404, never a 500.
    unexpected = [(r.status_code, r.json()) for r in responses if r.status_code not in (200, 404)]
    assert unexpected == [], f"{len(unexpected)} of {len(responses)} calls, e.g. {unexpected[:3]}"
    deletes = responses[1::3]
    assert all(r.status_code == 200 for r in deletes), [r.text for r in deletes if r.status_code != 200]
    assert remaining == ([], [])
