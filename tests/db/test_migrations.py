"""Alembic migrations on a fresh SQLite file and a fresh PostgreSQL database of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from tests.conftest import make_settings
from todo_mcp.db import migrate, revisions
from todo_mcp.db.engine import Database
from todo_mcp.db.models import metadata
from todo_mcp.services import tasks, users
from todo_mcp.services.task_listing import TaskQuery

APP_TABLES = {"users", "tasks", "task_labels", "conversations", "messages"}
# Expression indexes SQLite's reflection cannot read; checked by name instead, below.
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index"),
]


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
        kept = (await tasks.list_tasks(conn, user_id="keeper")).tasks
    assert [task.title for task in kept] == ["Survive the migration"]
    assert await migrate.current_revision(empty_database) == migrate.head_revision()


async def test_the_list_indexes_exist_on_every_database(empty_database: Database) -> None:
    await migrate.upgrade(empty_database)
    # Read from the catalogues: reflection skips expression indexes on SQLite.
    if empty_database.engine.dialect.name == "sqlite":
        rows = await _execute(empty_database, "SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        rows = await _execute(empty_database, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    names = {row[0] for row in rows}
    assert {"ix_tasks_user_id_id", "ix_tasks_due_order", "uq_tasks_client_request"} <= names
    assert "ix_task_labels_user_id_label_key" in names


async def _execute(database: Database, sql: str, **params: Any) -> list[Any]:
    async with database.engine_connection() as connection:
        result = await connection.execute(text(sql), params)
        rows = list(result.all()) if result.returns_rows else []
        await connection.commit()
        return rows


async def test_0003_upgrades_a_database_with_0002_data_without_losing_a_row_and_goes_back(
    empty_database: Database,
) -> None:
    await migrate.upgrade(empty_database, "0002")
    created = "2026-11-20 10:00:00+00:00"
    await _execute(
        empty_database,
        "INSERT INTO users (id, email, name, created_at, failed_logins) "
        "VALUES ('old', 'old@example.com', 'Old', :created, 2)",
        created=_timestamp(empty_database, created),
    )
    for task_id, title, completed in [
        (1, "Pending Éclair", False),
        (2, "Done", True),
        (3, "Deleted later", False),
    ]:
        await _execute(
            empty_database,
            "INSERT INTO tasks (id, user_id, title, description, completed, created_at, updated_at) "
            "VALUES (:id, 'old', :title, 'Some NOTES', :completed, :at, :at)",
            id=task_id,
            title=title,
            completed=completed,
            at=_timestamp(empty_database, created),
        )
    if empty_database.engine.dialect.name == "postgresql":
        # Explicit ids leave the identity behind; a real 0002 database had them from it.
        await _execute(empty_database, "SELECT setval(pg_get_serial_sequence('tasks', 'id'), 3)")
    await _execute(empty_database, "DELETE FROM tasks WHERE id = 3")

    await migrate.upgrade(empty_database)

    async with empty_database.connect() as conn:
        page = (await tasks.list_tasks(conn, user_id="old")).tasks
        found = (await tasks.list_tasks(conn, user_id="old", query=TaskQuery.of(query="éclair"))).tasks
        notes = (await tasks.list_tasks(conn, user_id="old", query=TaskQuery.of(query="notes"))).tasks
        new = (await tasks.add_task(conn, user_id="old", title="After the upgrade", labels=["x"])).task
    assert [(t.id, t.title, t.completed, t.priority, t.labels, t.due_date) for t in page] == [
        (1, "Pending Éclair", False, "none", (), None),
        (2, "Done", True, "none", (), None),
    ]
    # A completed task's completion time is its last change, the best there is.
    assert page[0].completed_at is None
    assert page[1].completed_at == page[1].updated_at
    assert [t.id for t in found] == [1]
    assert [t.id for t in notes] == [1, 2]
    # The id of the task deleted before the upgrade is never handed out again.
    assert new.id == 4
    async with empty_database.transaction() as session:
        user = await users.get_user(session, user_id="old")
    assert (user.timezone, user.name, user.failed_logins) == ("UTC", "Old", 2)

    await migrate.downgrade(empty_database, "0002")
    rows = await _execute(empty_database, "SELECT id, title, completed FROM tasks ORDER BY id")
    assert [(row[0], row[1], bool(row[2])) for row in rows] == [
        (1, "Pending Éclair", False),
        (2, "Done", True),
        (4, "After the upgrade", False),
    ]
    assert "task_labels" not in await _tables(empty_database)
    await migrate.upgrade(empty_database)
    async with empty_database.connect() as conn:
        assert (await tasks.add_task(conn, user_id="old", title="Again")).task.id == 5


def _timestamp(database: Database, value: str) -> Any:
    moment = datetime.fromisoformat(value)
    if database.engine.dialect.name == "sqlite":
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return moment


async def test_0004_keeps_every_message_and_its_order_up_and_down(empty_database: Database) -> None:
    await migrate.upgrade(empty_database, "0003")
    at = _timestamp(empty_database, "2026-11-30 08:00:00+00:00")
    await _execute(
        empty_database,
        "INSERT INTO users (id, email, created_at, failed_logins, timezone) "
        "VALUES ('talker', 'talker@example.com', :at, 0, 'UTC')",
        at=at,
    )
    await _execute(
        empty_database,
        "INSERT INTO conversations (id, user_id, created_at, updated_at) VALUES (1, 'talker', :at, :at)",
        at=at,
    )
    for message_id, role, content in [(1, "user", "add milk"), (2, "assistant", "Added milk.")]:
        await _execute(
            empty_database,
            "INSERT INTO messages (id, conversation_id, user_id, role, content, created_at) "
            "VALUES (:id, 1, 'talker', :role, :content, :at)",
            id=message_id,
            role=role,
            content=content,
            at=at,
        )

    await migrate.upgrade(empty_database)

    rows = await _execute(
        empty_database,
        "SELECT id, role, content, tool_calls FROM messages WHERE conversation_id = 1 ORDER BY id",
    )
    assert [tuple(row) for row in rows] == [
        (1, "user", "add milk", None),
        (2, "assistant", "Added milk.", None),
    ]

    await migrate.downgrade(empty_database, "0003")

    rows = await _execute(empty_database, "SELECT id, role, content FROM messages ORDER BY id")
    assert [tuple(row) for row in rows] == [(1, "user", "add milk"), (2, "assistant", "Added milk.")]
    async with empty_database.engine_connection() as connection:
        columns = await connection.run_sync(
            lambda sync: {column["name"] for column in inspect(sync).get_columns("messages")}
        )
    assert "tool_calls" not in columns


async def test_the_revision_check_without_alembic_agrees_with_alembic(empty_database: Database) -> None:
    assert revisions.head_revision() == migrate.head_revision()
    assert await revisions.current_revision(empty_database) is None
    await migrate.upgrade(empty_database, "0002")
    assert await revisions.current_revision(empty_database) == "0002"
    await migrate.upgrade(empty_database)
    assert await revisions.current_revision(empty_database) == await migrate.current_revision(empty_database)
    await migrate.downgrade(empty_database, "base")
    assert await revisions.current_revision(empty_database) is None
