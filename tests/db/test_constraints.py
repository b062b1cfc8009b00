"""What the database itself enforces, below the service layer (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import select

from tests.conftest import UserFactory, make_settings
from todo_mcp.db import migrate
from todo_mcp.db.connection import IntegrityViolation
from todo_mcp.db.engine import Database
from todo_mcp.db.models import Message, Task
from todo_mcp.db.types import utcnow
from todo_mcp.services import conversations, tasks, users

pytestmark = pytest.mark.anyio


async def _conversation(db: Database, user_id: str) -> int:
    async with db.transaction() as session:
        conversation = await conversations.create_conversation(session, user_id=user_id)
    assert conversation.id is not None
    return conversation.id


async def test_role_check_constraint_rejects_system_in_the_database(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    conversation_id = await _conversation(db, user)

    # Straight to the table, past the service's own check: the database must refuse it too.
    with pytest.raises(IntegrityError, match="ck_messages_role"):
        async with db.transaction() as session:
            session.add(Message(conversation_id=conversation_id, user_id=user, role="system", content="x"))

    async with db.transaction() as session:
        session.add(Message(conversation_id=conversation_id, user_id=user, role="assistant", content="ok"))
    async with db.transaction() as session:
        stored = await conversations.list_messages(session, user_id=user, conversation_id=conversation_id)
    assert [(m.role, m.content) for m in stored] == [("assistant", "ok")]


async def test_task_for_a_missing_user_is_refused_by_the_foreign_key(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            session.add(Task(user_id="nobody", title="orphan"))


async def test_deleted_task_id_is_never_given_to_a_new_task(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    async with db.connect() as conn:
        await tasks.add_task(conn, user_id=user, title="first")
        newest = (await tasks.add_task(conn, user_id=user, title="second")).task
    assert newest.id is not None
    async with db.connect() as conn:
        await tasks.delete_task(conn, user_id=user, task_id=newest.id)

    async with db.connect() as conn:
        replacement = (await tasks.add_task(conn, user_id=user, title="third")).task

    # Without AUTOINCREMENT, SQLite would reuse the highest deleted rowid.
    assert replacement.id is not None
    assert replacement.id > newest.id


async def test_naive_datetime_is_refused_before_it_reaches_the_database(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()

    with pytest.raises(StatementError, match="naive datetime"):
        async with db.transaction() as session:
            session.add(Task(user_id=user, title="naive", created_at=datetime(2026, 1, 1, 12, 0)))


async def test_aware_datetime_in_another_zone_is_stored_as_the_same_instant_in_utc(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    auckland = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=13)))
    async with db.transaction() as session:
        added = Task(user_id=user, title="zoned", created_at=auckland, updated_at=auckland)
        session.add(added)
    assert added.id is not None

    async with db.connect() as conn:
        stored = await tasks.get_task(conn, user_id=user, task_id=added.id)

    assert stored.created_at == auckland
    assert stored.created_at.tzinfo == UTC
    assert (stored.created_at.day, stored.created_at.hour, stored.created_at.microsecond) == (31, 23, 123456)


async def test_sqlite_connections_enforce_foreign_keys_without_a_migration_on_them(sqlite_url: str) -> None:
    # A server usually opens a database that another process migrated: its own connections
    # must switch foreign keys on, or deleting a user would leave their tasks behind.
    migrating = Database.from_settings(make_settings(sqlite_url))
    await migrate.upgrade(migrating)
    await migrating.dispose()
    db = Database.from_settings(make_settings(sqlite_url))
    try:
        async with db.transaction() as session:
            await users.create_user(session, user_id="ada", email="ada@example.com")
        async with db.connect() as conn:
            await tasks.add_task(conn, user_id="ada", title="hers")
        async with db.transaction() as session:
            await users.delete_user(session, user_id="ada")
        async with db.transaction() as session:
            remaining = (await session.exec(select(func.count()).select_from(Task))).one()
        with pytest.raises(IntegrityError):
            async with db.transaction() as session:
                session.add(Task(user_id="nobody", title="orphan"))
        # The task service's driver connections come from the same pool and refuse it too.
        async with db.connect() as conn:
            with pytest.raises(IntegrityViolation):
                await conn.execute(
                    "INSERT INTO tasks (user_id, title, completed, created_at, updated_at) "
                    "VALUES ($1, $2, $3, $4, $4)",
                    "nobody",
                    "orphan",
                    False,
                    conn.time(utcnow()),
                )
    finally:
        await db.dispose()

    assert remaining == 0
