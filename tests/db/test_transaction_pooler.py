"""Behind PgBouncer in transaction mode (two server connections for many clients), every tool
and the ORM's units of work work with DATABASE_TRANSACTION_POOLER=true; asyncpg's defaults do
not (its cached statements are missing, or taken, on the server connection a call gets next)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.asgi import running
from tests.conftest import make_settings
from tests.private_pgbouncer import Pooler, private_pgbouncer
from todo_mcp.db import migrate
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.services import conversations, users

pytestmark = pytest.mark.anyio

CLIENTS = 12
ROUNDS = 5


@pytest.fixture
def pooler(empty_postgres_url: str) -> Iterator[Pooler]:
    server = make_url(empty_postgres_url)
    with private_pgbouncer(server.host or "127.0.0.1", server.port or 5432, pool_size=2) as started:
        yield started


@pytest.fixture
async def migrated(empty_postgres_url: str) -> str:
    # Migrations go straight to the server, as docs/DEPLOY.md says to run them.
    direct = Database.from_settings(make_settings(empty_postgres_url))
    try:
        await migrate.upgrade(direct)
    finally:
        await direct.dispose()
    return empty_postgres_url


async def workload(url: str, *, pooler_setting: bool) -> list[str]:
    """Concurrent clients doing all five tools and ORM units of work; the failures, as text."""
    settings = make_settings(url, database_transaction_pooler=pooler_setting, database_pool_size=CLIENTS)
    db = Database.from_settings(settings)
    failures: list[str] = []
    app = build_http_app(settings, db, host="127.0.0.1", dispose_on_shutdown=False)
    try:
        async with running(app) as http:

            async def call(tool: str, **arguments: Any) -> dict[str, Any]:
                body: dict[str, Any] = (await http.post(f"/tools/{tool}", json=arguments)).json()
                if body["status"] != "success":
                    failures.append(f"{tool}: {body['message']}")
                return body

            async def client(number: int) -> None:
                user = f"pooled-{number}-{pooler_setting}"
                try:
                    async with db.transaction() as session:
                        await users.create_user(session, user_id=user, email=f"{user}@example.com")
                        conversation = await conversations.create_conversation(session, user_id=user)
                    for round_number in range(ROUNDS):
                        added = await call("add_task", user_id=user, title=f"t{round_number}", due="tomorrow")
                        if added["status"] != "success":
                            continue
                        task_id = added["data"]["task_id"]
                        await call("list_tasks", user_id=user, status="pending", sort="due")
                        await call(
                            "update_task", user_id=user, task_id=task_id, priority="high", labels=["x"]
                        )
                        await call("complete_task", user_id=user, task_id=task_id)
                        await call("delete_task", user_id=user, task_id=task_id)
                        async with db.transaction() as session:
                            assert conversation.id is not None
                            await conversations.append_message(
                                session,
                                user_id=user,
                                conversation_id=conversation.id,
                                role="user",
                                content="hi",
                            )
                except Exception as exc:  # the failure is what this test looks for
                    failures.append(f"{type(exc).__name__}: {exc.__cause__ or exc}")

            await asyncio.gather(*(client(number) for number in range(CLIENTS)))
    finally:
        await db.dispose()
    return failures


async def test_every_tool_works_through_a_transaction_pooler_with_the_setting(
    migrated: str, pooler: Pooler
) -> None:
    failures = await workload(pooler.url_for(migrated), pooler_setting=True)

    assert failures == []


async def test_asyncpgs_statement_cache_breaks_behind_a_transaction_pooler(
    migrated: str, pooler: Pooler
) -> None:
    failures = await workload(pooler.url_for(migrated), pooler_setting=False)

    assert any("prepared statement" in failure for failure in failures), failures
