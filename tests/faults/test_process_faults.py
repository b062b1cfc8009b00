"""Faults made to happen for real, to real `todo-mcp serve` processes under load:

- PostgreSQL (a cluster of the test's own) stopped while serving: every call answers within a
  few seconds, a 503 envelope while it is down, never a 500 or a hang; /ready says so; once it
  is back, service resumes by itself within 5 s.
- SIGKILL under load: every task a client got a success envelope for is in the database after;
  a SQLite file passes `PRAGMA integrity_check`.
- SIGTERM under load: the requests already received are answered, then the process exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.private_postgres import PrivateServer, private_postgres
from tests.transports.processes import (
    ServerProcess,
    issue_token,
    run_cli,
    server_env,
    spawn_command,
    stop,
    wait_healthy,
)

pytestmark = pytest.mark.slow

USER = "fault-user"
CLIENTS = 8
ANSWER_BOUND_SECONDS = 8.0
RESUME_BOUND_SECONDS = 5.0


@dataclass
class Load:
    """Clients adding tasks until told to stop, noting every answer."""

    base_url: str
    acknowledged: set[str] = field(default_factory=set)
    answers: list[tuple[float, float, int, str]] = field(default_factory=list)  # sent, took, status, kind
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, number: int) -> None:
        headers = {"Authorization": f"Bearer {issue_token(USER)}"}
        sequence = 0
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=30) as http:
            while not self.stopping.is_set():
                sequence += 1
                title = f"c{number}-{sequence}"
                sent = time.monotonic()
                try:
                    response = http.post("/tools/add_task", json={"user_id": USER, "title": title})
                    status = response.status_code
                    body: dict[str, Any] = response.json()
                    kind = body.get("status", "?")
                except httpx.TransportError as exc:
                    status, kind = 0, type(exc).__name__
                took = time.monotonic() - sent
                with self.lock:
                    self.answers.append((sent, took, status, kind))
                    if status == 200 and kind == "success":
                        self.acknowledged.add(title)
                if status == 0:
                    time.sleep(0.05)

    def run(self) -> ThreadPoolExecutor:
        pool = ThreadPoolExecutor(max_workers=CLIENTS)
        for number in range(CLIENTS):
            pool.submit(self.client, number)
        return pool

    def wait_for(self, answers: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.answers) < answers:
            assert time.monotonic() < deadline, "the load made no progress"
            time.sleep(0.05)


async def stored_titles(url: str) -> set[str]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await connection.fetch("SELECT title FROM tasks WHERE user_id = $1", USER)
    finally:
        await connection.close()
    return {row["title"] for row in rows}


def prepare(env: dict[str, str], workdir: Path) -> None:
    for command in (["db", "upgrade"], ["users", "add", USER, "--email", "fault@example.com"]):
        done = run_cli(command, cwd=workdir, env=env)
        assert done.returncode == 0, done.stderr


@pytest.fixture
def own_postgres() -> Iterator[PrivateServer]:
    with private_postgres() as server:
        yield server


def test_postgresql_stopped_while_serving_is_503s_then_service_resumes_by_itself(
    own_postgres: PrivateServer, tmp_path: Path
) -> None:
    url = own_postgres.url()
    env = server_env(url, {"DATABASE_CONNECT_TIMEOUT": "2", "LOG_LEVEL": "WARNING"})
    prepare(env, tmp_path)
    server = spawn_command(tmp_path, env, "serve", ["serve"])
    load = Load(server.base_url)
    try:
        wait_healthy(server.base_url, processes=[server])
        pool = load.run()
        load.wait_for(50)
        own_postgres.stop()
        stopped_at = time.monotonic()
        time.sleep(3)
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            ready_while_down = http.get("/ready")
        own_postgres.start()
        started_at = time.monotonic()
        # Served again by itself: a call succeeds within the bound, with no restart of ours.
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {issue_token(USER)}"}, timeout=10
        ) as http:
            while True:
                answer = http.post("/tools/list_tasks", json={"user_id": USER, "limit": 1})
                if answer.status_code == 200:
                    break
                assert time.monotonic() - started_at < RESUME_BOUND_SECONDS, answer.text
                time.sleep(0.1)
        resumed_after = time.monotonic() - started_at
        load.wait_for(len(load.answers) + 50)
        load.stopping.set()
        pool.shutdown(wait=True)
        assert server.is_running()
    finally:
        load.stopping.set()
        stop(server)

    assert ready_while_down.status_code == 503
    statuses = {status for _, _, status, _ in load.answers}
    assert statuses <= {200, 503}, statuses
    during = [answer for answer in load.answers if stopped_at < answer[0] < started_at]
    assert any(status == 503 for _, _, status, _ in during)
    assert max(took for _, took, _, _ in load.answers) < ANSWER_BOUND_SECONDS
    assert resumed_after < RESUME_BOUND_SECONDS
    assert load.acknowledged <= asyncio.run(stored_titles(url))
    # No call failed as something other than the outage, and the log says why it was not ready.
    assert "unexpected error" not in server.log()
    assert "readiness check failed" in server.log()


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_sigkill_under_load_loses_no_acknowledged_write(
    database: str, empty_postgres_url: str, tmp_path: Path
) -> None:
    url = empty_postgres_url if database == "postgresql" else f"sqlite:///{tmp_path / 'todo.db'}"
    env = server_env(url, {"LOG_LEVEL": "WARNING"})
    prepare(env, tmp_path)
    server = spawn_command(tmp_path, env, "serve", ["serve"])
    load = Load(server.base_url)
    try:
        wait_healthy(server.base_url, processes=[server])
        pool = load.run()
        load.wait_for(200)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        load.stopping.set()
        pool.shutdown(wait=True)
    finally:
        load.stopping.set()
        stop(server)

    assert len(load.acknowledged) >= 100
    if database == "sqlite":
        connection = sqlite3.connect(tmp_path / "todo.db")
        try:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            stored = {
                row[0] for row in connection.execute("SELECT title FROM tasks WHERE user_id = ?", (USER,))
            }
        finally:
            connection.close()
    else:
        stored = asyncio.run(stored_titles(url))
    missing = load.acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged tasks are gone: {sorted(missing)[:5]}"


def test_sigterm_under_load_answers_what_it_received_then_exits(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    env = server_env(empty_postgres_url, {"LOG_LEVEL": "WARNING"})
    prepare(env, tmp_path)
    server: ServerProcess = spawn_command(tmp_path, env, "serve", ["serve"])
    load = Load(server.base_url)
    try:
        wait_healthy(server.base_url, processes=[server])
        pool = load.run()
        load.wait_for(200)
        terminated_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=30)
        exited_after = time.monotonic() - terminated_at
        load.stopping.set()
        pool.shutdown(wait=True)
    finally:
        load.stopping.set()
        stop(server)

    # uvicorn shuts down gracefully, then re-raises the signal it caught, as a process killed by
    # it would end (exit status 0 from older versions).
    assert code in (0, -signal.SIGTERM), server.log()
    assert exited_after < 15
    # Whatever reached the server was answered; after it stopped listening, connections were
    # refused (status 0) rather than cut off mid-answer with a 5xx.
    statuses = {status for _, _, status, _ in load.answers}
    assert statuses <= {200, 0}, statuses
    # Calls in flight when the signal came were answered, not dropped.
    in_flight = [a for a in load.answers if a[0] < terminated_at < a[0] + a[1]]
    assert any(status == 200 for _, _, status, _ in in_flight), in_flight
    # Connections refused or reset once it stopped accepting (an idle keep-alive connection it
    # closed, one still in the listen backlog): never before the signal, never a 5xx.
    refused = [a for a in load.answers if a[2] == 0]
    assert {kind for _, _, _, kind in refused} <= {"ConnectError", "ReadError", "RemoteProtocolError"}, (
        refused
    )
    assert all(sent + took >= terminated_at for sent, took, _, _ in refused)
    assert load.acknowledged <= asyncio.run(stored_titles(empty_postgres_url))
