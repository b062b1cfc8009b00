"""The README's walk-through over real ports: sign up and log in over REST, then use the token
on both doors of one `todo-mcp serve --with-api` process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.transports.clients import call, mcp_client
from tests.transports.processes import (
    STARTUP_DEADLINE_SECONDS,
    ServerProcess,
    free_port,
    server_env,
    stop,
    todo_mcp_executable,
)

pytestmark = pytest.mark.anyio


@dataclass
class BothDoors:
    mcp: ServerProcess
    api_url: str


def _wait_for_health(server: ServerProcess, urls: list[str]) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    with httpx.Client(timeout=2.0) as http:
        for url in urls:
            while True:
                assert server.is_running(), f"the server exited:\n{server.log()}"
                with suppress(httpx.TransportError):
                    if http.get(url).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"{url} never answered:\n{server.log()}"
                with suppress(subprocess.TimeoutExpired):
                    server.process.wait(timeout=0.05)


@pytest.fixture
def both_doors(tmp_path: Path) -> Iterator[BothDoors]:
    mcp_port, api_port = free_port(), free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                str(todo_mcp_executable()),
                "serve",
                "--port",
                str(mcp_port),
                "--with-api",
                "--api-port",
                str(api_port),
            ],
            cwd=tmp_path,
            env=server_env(f"sqlite:///{tmp_path / 'todo.db'}"),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process=process, port=mcp_port, log_path=log_path)
    try:
        api_url = f"http://127.0.0.1:{api_port}"
        _wait_for_health(server, [f"{server.base_url}/health", f"{api_url}/health"])
        yield BothDoors(mcp=server, api_url=api_url)
    finally:
        stop(server)


async def _sign_up_and_log_in(api: httpx.AsyncClient, email: str) -> tuple[str, str]:
    password = "correct horse battery"
    signed_up = await api.post("/auth/signup", json={"email": email, "password": password})
    assert signed_up.status_code == 201, signed_up.text
    logged_in = await api.post("/auth/login", json={"email": email, "password": password})
    assert logged_in.status_code == 200, logged_in.text
    body = logged_in.json()
    assert body["user"]["id"] == signed_up.json()["id"]
    return body["user"]["id"], body["access_token"]


async def test_a_token_from_rest_login_drives_mcp_and_rest_on_one_task_list(both_doors: BothDoors) -> None:
    async with httpx.AsyncClient(base_url=both_doors.api_url, timeout=10) as api:
        ada, ada_token = await _sign_up_and_log_in(api, "ada@example.com")
        bob, bob_token = await _sign_up_and_log_in(api, "bob@example.com")

        async with mcp_client(both_doors.mcp.mcp_url, ada_token, mode="2026-07-28") as client:
            added = await call(client, "add_task", user_id=ada, title="Added by an agent")
        assert added["status"] == "success"
        task_id = added["data"]["task_id"]

        ada_auth = {"Authorization": f"Bearer {ada_token}"}
        edited = await api.put(f"/api/{ada}/tasks/{task_id}", json={"completed": True}, headers=ada_auth)
        assert edited.status_code == 200, edited.text

        async with mcp_client(both_doors.mcp.mcp_url, ada_token, mode="legacy") as client:
            listed = await call(client, "list_tasks", user_id=ada)
        assert [(task["task_id"], task["title"], task["completed"]) for task in listed["data"]["tasks"]] == [
            (task_id, "Added by an agent", True)
        ]

        bob_auth = {"Authorization": f"Bearer {bob_token}"}
        assert (await api.get(f"/api/{bob}/tasks", headers=bob_auth)).json()["tasks"] == []
        assert (await api.get(f"/api/{bob}/tasks/{task_id}", headers=bob_auth)).status_code == 404
        assert (await api.get(f"/api/{ada}/tasks", headers=bob_auth)).status_code == 403
        async with mcp_client(both_doors.mcp.mcp_url, bob_token, mode="2026-07-28") as client:
            assert (await call(client, "list_tasks", user_id=bob))["data"]["count"] == 0
            foreign = await call(client, "complete_task", user_id=bob, task_id=task_id)
        assert foreign["data"] == {"error_code": 404}
