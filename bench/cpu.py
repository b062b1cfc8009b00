"""CPU per tool call of the MCP app in one process: no HTTP server, no load generator.

    python -m bench.cpu --tool add_task --protocol 2026-07-28 --calls 4000 2>/dev/null

(stderr carries the app's log, one line per call, as served; the figure goes to stdout.)

Builds the app `todo-mcp serve` runs, drives its ASGI entry with `--calls` tools/call requests,
`--concurrency` at a time on one event loop (uvloop, as served), and prints the process's CPU
time per call. On this shared machine wrk figures drift by 20% within minutes; this one moves
by about 5%, so it is the one to compare two versions of the code with: run each several
times, alternating, and compare medians. It leaves out HTTP parsing (uvicorn, httptools), which
`make bench` includes. Uses a database of its own (PostgreSQL by default), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Message

from bench.run import LIST_USER_TASKS, PG_ADMIN_URL, admin, prepare_database, tool_request

ARGUMENTS = {
    "add_task": ("bench", {"user_id": "bench", "title": "Benchmark task"}),
    "list_tasks": ("lister", {"user_id": "lister"}),
}


async def call(app: ASGIApp, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 5000),
        "state": {},
    }
    received = False
    answer: list[bytes] = []
    status: list[int] = []

    async def receive() -> Message:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the caller stays
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    reply = b"".join(answer)
    if status != [200] or b'"isError":true' in reply:
        raise RuntimeError(f"the call failed: {status} {reply[:300]!r}")
    return reply


def request_of(
    tool: str, arguments: dict[str, Any], protocol: str, token: str
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    request = tool_request(tool, arguments, protocol)
    body = request["BENCH_BODY"].encode()
    headers = [
        (b"host", b"127.0.0.1:5000"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"mcp-protocol-version", protocol.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if "BENCH_MCP_METHOD" in request:
        headers += [(b"mcp-method", b"tools/call"), (b"mcp-name", tool.encode())]
    return headers, body


async def drive(options: argparse.Namespace, tokens: dict[str, str]) -> None:
    from todo_mcp.mcp.http_app import create_app

    app = create_app()
    user, arguments = ARGUMENTS[options.tool]
    headers, body = request_of(options.tool, arguments, options.protocol, tokens[user])
    async with app.router.lifespan_context(app):
        for number in range(LIST_USER_TASKS if options.tool == "list_tasks" else 0):
            task = {"user_id": "lister", "title": f"Task {number}"}
            await call(app, *request_of("add_task", task, options.protocol, tokens["lister"]))
        for _ in range(300):  # warm-up: connections, caches
            await call(app, headers, body)
        per_client = options.calls // options.concurrency

        async def client() -> None:
            for _ in range(per_client):
                await call(app, headers, body)

        before, wall = os.times(), time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(options.concurrency):
                group.create_task(client())
        after, wall = os.times(), time.perf_counter() - wall
    user_cpu, system_cpu = after.user - before.user, after.system - before.system
    calls = per_client * options.concurrency
    print(
        f"{options.database} {options.tool} {options.protocol} c{options.concurrency}: "
        f"{(user_cpu + system_cpu) / calls * 1e6:.0f} µs CPU per call (user {user_cpu / calls * 1e6:.0f}, "
        f"system {system_cpu / calls * 1e6:.0f}), {calls / wall:.0f} calls/s on one core",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", choices=sorted(ARGUMENTS), default="add_task")
    parser.add_argument("--protocol", choices=("2025-11-25", "2026-07-28"), default="2026-07-28")
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--core", type=int, default=0, help="CPU to run on (-1: any)")
    options = parser.parse_args()
    if options.core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {options.core})
    with tempfile.TemporaryDirectory(prefix="todo-cpu-") as scratch:
        name = f"todo_cpu_{secrets.token_hex(4)}"
        if options.database == "postgresql":
            url = make_url(PG_ADMIN_URL).set(drivername="postgresql", database=name).render_as_string(False)
            asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        else:
            url = f"sqlite:///{Path(scratch) / 'cpu.db'}"
        env = {"DATABASE_URL": url, "JWT_SECRET": secrets.token_urlsafe(32), "LOG_LEVEL": "INFO"}
        try:
            tokens = prepare_database({**os.environ, **env})
            os.environ.update(env | {"MCP_SERVER_HOST": "127.0.0.1"})
            uvloop.run(drive(options, tokens))
        finally:
            if options.database == "postgresql":
                asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
