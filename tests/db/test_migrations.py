"""Alembic migrations on a fresh SQLite file and a fresh PostgreSQL database of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from tests.conftest import make_settings
from todo_mcp.db import migrate
from todo_mcp.db.engine import Database
from todo_mcp.db.models import metadata
from todo_mcp.services import tasks, users

pytestmark = pytest.mark.anyio

APP_TABLES = {"users", "tasks", "conversations", "messages"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("empty_postgres_url"))
    return f"sqlite:///{tmp_path / 'fresh.db'}"


@pytest.fixture
async def empty_database(empty_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(make_settings(empty_url))
    try:
        yield database
    finally:
        await database.dispose()


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _tables(database: Database) -> set[str]:
    async with database.engine_connection() as connection:
        return await connection.run_sync(_table_names)


async def test_upgrade_from_nothing_builds_exactly_the_schema_of_the_models(empty_database: Database) -> None:
    assert await migrate.current_revision(empty_database) is None
    assert await _tables(empty_database) == set()

    await migrate.upgrade(empty_database)

    assert await migrate.current_revision(empty_database) == migrate.head_revision()
    assert set(metadata.tables) >= APP_TABLES
    assert await _tables(empty_database) == set(metadata.tables) | {"alembic_version"}
    async with empty_database.engine_connection() as connection:
        differences = await connection.run_sync(_schema_differences)
    assert differences == []


async def test_upgrade_of_a_database_at_head_changes_nothing(empty_database: Database) -> None:
    await migrate.upgrade(empty_database)

    await migrate.upgrade(empty_database)

    assert await migrate.current_revision(empty_database) == migrate.head_revision()
    async with empty_database.engine_connection() as connection:
        assert await connection.run_sync(_schema_differences) == []


async def test_downgrade_to_base_leaves_no_tables_but_alembic_version(empty_database: Database) -> None:
    await migrate.upgrade(empty_database)

    await migrate.downgrade(empty_database, "base")

    assert await _tables(empty_database) <= {"alembic_version"}
    assert await migrate.current_revision(empty_database) is None


async def test_upgrade_after_a_full_downgrade_builds_the_schema_again(empty_database: Database) -> None:
    await migrate.upgrade(empty_database)
    await migrate.downgrade(empty_database, "base")

    await migrate.upgrade(empty_database)

    assert await migrate.current_revision(empty_database) == migrate.head_revision()
    async with empty_database.engine_connection() as connection:
        assert await connection.run_sync(_schema_differences) == []


async def test_stepping_down_and_up_again_keeps_every_user_and_task(empty_database: Database) -> None:
    # On SQLite a batch migration rebuilds the users table; with foreign keys left on, dropping
    # the old table would cascade and delete every task.
    await migrate.upgrade(empty_database)
    async with empty_database.transaction() as session:
        await users.create_user(session, user_id="keeper", email="keeper@example.com")
    async with empty_database.connect() as conn:
        await tasks.add_task(conn, user_id="keeper", title="Survive the migration")

    await migrate.downgrade(empty_database, "0001")
    await migrate.upgrade(empty_database)

    async with empty_database.connect() as conn:
        kept = await tasks.list_tasks(conn, user_id="keeper")
    assert [task.title for task in kept] == ["Survive the migration"]
    assert await migrate.current_revision(empty_database) == migrate.head_revision()
