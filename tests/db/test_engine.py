"""The ORM unit of work (`Database.transaction`): commit and rollback, and how an unreachable database
is reported. The driver connections of `Database.connect` are covered in test_connection.py.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tests.conftest import UserFactory, make_settings
from todo_mcp.db.engine import Database
from todo_mcp.db.models import Task
from todo_mcp.services import tasks, users
from todo_mcp.services.errors import DatabaseUnavailable, InvalidInput

pytestmark = pytest.mark.anyio

# Port 1 on this machine: nothing listens there, so connecting is refused at once.
UNREACHABLE_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/x"


async def _titles(db: Database, user_id: str) -> list[str]:
    async with db.connect() as conn:
        return [task.title for task in (await tasks.list_tasks(conn, user_id=user_id)).tasks]


async def test_transaction_commits_when_the_block_ends(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()

    async with db.transaction() as session:
        session.add(Task(user_id=user, title="kept"))

    assert await _titles(db, user) == ["kept"]


async def test_transaction_rolls_back_and_reraises_when_the_block_raises(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()

    async def add_a_task_then_an_invalid_user() -> None:
        async with db.transaction() as session:
            session.add(Task(user_id=user, title="flushed, then rolled back"))
            await session.flush()
            await users.create_user(session, user_id="second", email="not-an-email")

    with pytest.raises(InvalidInput, match="email"):
        await add_a_task_then_an_invalid_user()

    assert await _titles(db, user) == []


async def test_errors_that_are_not_about_connectivity_pass_through_unchanged(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()

    async def add_then_fail() -> None:
        async with db.transaction() as session:
            session.add(Task(user_id=user, title="rolled back"))
            await session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as raised:
        await add_then_fail()

    assert not isinstance(raised.value, DatabaseUnavailable)
    assert await _titles(db, user) == []


async def test_integrity_error_is_not_reported_as_unavailable(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            session.add(Task(user_id="nobody", title="orphan"))


async def test_ping_succeeds_on_a_reachable_database(db: Database) -> None:
    await db.ping()


async def test_unreachable_postgresql_is_database_unavailable_for_a_transaction() -> None:
    db = Database.from_settings(make_settings(UNREACHABLE_POSTGRES, database_pool_timeout=0.5))
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            async with db.transaction() as session:
                await session.exec(select(Task))
    finally:
        await db.dispose()

    assert raised.value.code == 503
    # The caller's message is generic; the driver's text stays in the cause, for the log.
    assert raised.value.message == DatabaseUnavailable.default_message
    assert raised.value.__cause__ is not None


async def test_unreachable_postgresql_is_database_unavailable_for_ping() -> None:
    db = Database.from_settings(make_settings(UNREACHABLE_POSTGRES, database_pool_timeout=0.5))
    try:
        with pytest.raises(DatabaseUnavailable):
            await db.ping()
    finally:
        await db.dispose()


async def test_exhausted_pool_is_database_unavailable_after_the_pool_timeout(sqlite_url: str) -> None:
    # SQLite gets one pooled connection; holding it makes a second unit of work wait, boundedly.
    db = Database.from_settings(make_settings(sqlite_url, database_pool_timeout=0.2))
    try:
        async with db.transaction() as session:
            await session.exec(select(1))  # a session takes its connection at the first statement
            with pytest.raises(DatabaseUnavailable):
                await db.ping()
        await db.ping()  # released: usable again
    finally:
        await db.dispose()
