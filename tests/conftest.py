"""Shared fixtures: real databases (a SQLite file and a PostgreSQL database of this run's own).

PostgreSQL is the machine's server (TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres).
Each run creates its own database, migrates it with Alembic, and drops it at the end. Outside CI
an unreachable server skips the PostgreSQL cases; with CI=true it fails them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from todo_mcp.config import Settings
from todo_mcp.db import migrate
from todo_mcp.db.engine import Database
from todo_mcp.services import users

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TABLES = ("oauth_clients", "messages", "conversations", "tasks", "users")

UserFactory = Callable[..., Awaitable[str]]


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test: nothing read from a developer's .env file."""
    return Settings(_env_file=None, database_url=database_url, **overrides)


async def _admin_execute(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def _postgres_reachable() -> str | None:
    try:
        asyncio.run(_admin_execute("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def throwaway_postgres_database(label: str) -> Iterator[str]:
    """A new, empty PostgreSQL database of the caller's own, dropped afterwards."""
    name = f"todo_mcp_{label}_{secrets.token_hex(4)}"
    asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped afterwards."""
    problem = _postgres_reachable()
    if problem is not None:
        message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({problem})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)

    async def migrate_it(url: str) -> None:
        db = Database.from_settings(make_settings(url))
        await migrate.upgrade(db)
        await db.dispose()

    with throwaway_postgres_database("test") as url:
        asyncio.run(migrate_it(url))
        yield url


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    """A new database with nothing in it; taking `postgres_url` applies its skip-or-fail rule."""
    with throwaway_postgres_database("empty") as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'todo.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


async def _empty_tables(db: Database) -> None:
    async with db.engine_connection() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in TABLES:
                await connection.execute(text(f"DELETE FROM {table}"))
        await connection.commit()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated, empty database; PostgreSQL's is emptied again after the test."""
    database = Database.from_settings(make_settings(database_url))
    if database_url.startswith("sqlite"):
        await migrate.upgrade(database)
    try:
        yield database
    finally:
        if not database_url.startswith("sqlite"):
            await _empty_tables(database)
        await database.dispose()


@pytest.fixture
def user_factory(db: Database) -> UserFactory:
    """Creates a user with a unique id (or the id given) and returns the id."""

    async def create(user_id: str | None = None, *, email: str | None = None) -> str:
        user_id = user_id or f"user-{secrets.token_hex(4)}"
        async with db.transaction() as session:
            await users.create_user(session, user_id=user_id, email=email or f"{user_id}@example.com")
        return user_id

    return create
