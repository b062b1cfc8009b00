"""The floor: the same insert as add_task, in the same server stack (uvicorn + Starlette), with the
driver alone: no MCP, no ORM, no validation, no auth. What every MCP figure is compared with.

Run by bench/run.py as `uvicorn bench.floor_app:create_app --factory`, with DATABASE_URL set.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

INSERT_POSTGRES = (
    "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at) "
    "VALUES ($1, $2, $3, false, $4, $4) RETURNING id"
)
INSERT_SQLITE = (
    "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at) "
    "VALUES (?, ?, ?, 0, ?, ?) RETURNING id"
)


def create_app() -> Starlette:
    url = os.environ["DATABASE_URL"]
    state: dict[str, Any] = {}

    async def insert_postgres(user_id: str, title: str) -> int:
        pool: asyncpg.Pool = state["pool"]
        async with pool.acquire() as connection:
            task_id: int = await connection.fetchval(INSERT_POSTGRES, user_id, title, None, datetime.now(UTC))
        return task_id

    async def insert_sqlite(user_id: str, title: str) -> int:
        connection: aiosqlite.Connection = state["sqlite"]
        now = datetime.now(UTC).isoformat()
        cursor = await connection.execute(INSERT_SQLITE, (user_id, title, None, now, now))
        row = await cursor.fetchone()
        await cursor.close()
        assert row is not None
        return int(row[0])

    async def insert(request: Request) -> Response:
        body = json.loads(await request.body())
        if url.startswith("postgresql"):
            task_id = await insert_postgres(body["user_id"], body["title"])
        else:
            task_id = await insert_sqlite(body["user_id"], body["title"])
        return Response(json.dumps({"task_id": task_id}), media_type="application/json")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if url.startswith("postgresql"):
            dsn = url.replace("postgresql+asyncpg://", "postgresql://")
            state["pool"] = await asyncpg.create_pool(dsn, min_size=4, max_size=10)
            yield
            await state["pool"].close()
        else:
            # Autocommit: each insert takes the write lock for itself, waiting up to busy_timeout.
            connection = await aiosqlite.connect(url.split("///", 1)[1], isolation_level=None)
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=NORMAL")
            await connection.execute("PRAGMA busy_timeout=5000")
            state["sqlite"] = connection
            yield
            await connection.close()

    return Starlette(routes=[Route("/insert", insert, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    """Serve the floor the way `todo-mcp serve` serves MCP: same protocol class, same workers."""
    import argparse

    import uvicorn

    from todo_mcp.tcp import NoDelayHttpToolsProtocol

    parser = argparse.ArgumentParser(description="the benchmark floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    options = parser.parse_args()
    uvicorn.run(
        "bench.floor_app:create_app",
        factory=True,
        host="127.0.0.1",
        port=options.port,
        workers=options.workers,
        http=NoDelayHttpToolsProtocol,
        loop="auto",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
