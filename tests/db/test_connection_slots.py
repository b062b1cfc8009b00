"""A PostgreSQL server with fewer connection slots than the pools want, and idle connections
given back: on a server of the test's own whose `max_connections` is tiny.

What a deployment meets when processes x pool size > max_connections: a connection the server
refuses is a 503 (never a 500), the connections already open keep working, and a process that
had a burst closes what it no longer uses so that the others get the slots.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
import pytest

from tests.conftest import make_settings
from tests.private_postgres import PrivateServer, private_postgres
from todo_mcp.db.engine import Database
from todo_mcp.services.errors import DatabaseUnavailable

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SLOTS = 4
WAIT_BOUND_SECONDS = 10.0


@pytest.fixture(scope="module")
def server(postgres_url: str) -> Iterator[PrivateServer]:
    # Every connection here is a superuser's, so no slot is reserved away from the test.
    with private_postgres({"max_connections": str(SLOTS), "superuser_reserved_connections": "0"}) as server:
        yield server


def database(url: str, **settings: Any) -> Database:
    return Database.from_settings(
        make_settings(url, database_pool_size=2 * SLOTS, database_pool_timeout=2.0, **settings)
    )


@pytest.fixture
async def db(server: PrivateServer) -> AsyncIterator[Database]:
    database_ = database(server.url(), database_pool_idle_seconds=3600)
    try:
        yield database_
    finally:
        await database_.dispose()


@asynccontextmanager
async def holding(db: Database, count: int) -> AsyncIterator[list[object]]:
    """`count` borrowers at once, each holding its connection until the block ends; yields,
    once every borrower has one or has failed, what each got: its backend pid or its error."""
    outcomes: list[object] = []
    release = anyio.Event()

    async def borrower() -> None:
        try:
            async with db.connect() as connection:
                row = await connection.fetchrow("SELECT pg_backend_pid()")
                assert row is not None
                outcomes.append(row[0])
                await release.wait()
        except Exception as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(borrower)
        try:
            with anyio.fail_after(WAIT_BOUND_SECONDS):
                while len(outcomes) < count:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            yield outcomes
        finally:
            release.set()


async def hold_connections(db: Database, count: int) -> list[object]:
    async with holding(db, count) as outcomes:
        return list(outcomes)


async def test_connections_the_server_refuses_are_503s_and_the_open_ones_keep_working(db: Database) -> None:
    started = time.monotonic()
    outcomes = await hold_connections(db, SLOTS + 2)

    pids = [o for o in outcomes if isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, DatabaseUnavailable)]
    assert len(pids) == SLOTS
    assert len(refused) == 2, outcomes
    # The driver's "too many clients" is kept as the cause, for the log.
    assert isinstance(refused[0].__cause__, Exception)
    assert time.monotonic() - started < WAIT_BOUND_SECONDS

    # The refusals dropped none of the open connections: the same backends serve again.
    again = await hold_connections(db, SLOTS)
    assert sorted(o for o in again if isinstance(o, int)) == sorted(pids)


async def test_the_orm_path_and_readiness_answer_503_when_no_slot_is_free(db: Database) -> None:
    async with holding(db, SLOTS) as outcomes:
        assert all(isinstance(o, int) for o in outcomes)
        for _ in range(2):
            with pytest.raises(DatabaseUnavailable):
                await db.ping()
            with pytest.raises(DatabaseUnavailable):
                async with db.transaction() as session:
                    await session.connection()
    await db.ping()


async def test_a_process_gives_back_idle_connections_so_another_can_connect(server: PrivateServer) -> None:
    first = database(server.url(), database_pool_idle_seconds=0.3, database_pool_min_idle=1)
    second = database(server.url(), database_pool_idle_seconds=3600)
    try:
        burst = await hold_connections(first, SLOTS)
        assert all(isinstance(o, int) for o in burst)
        with pytest.raises(DatabaseUnavailable):
            async with second.connect() as connection:
                await connection.fetch("SELECT 1")

        # The first keeps only its most recently used connection once the others sat idle.
        with anyio.fail_after(WAIT_BOUND_SECONDS):
            while True:
                outcomes = await hold_connections(second, SLOTS - 1)
                if all(isinstance(o, int) for o in outcomes):
                    break
                await anyio.sleep(0.1)
        assert len(first._lender._idle) == 1
        async with first.connect() as connection:
            assert await connection.fetch("SELECT 1") == [(1,)]
    finally:
        await first.dispose()
        await second.dispose()


async def backends(admin: asyncpg.Connection, pids: list[int]) -> set[int]:
    rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids)
    return {row["pid"] for row in rows}


async def test_idle_connections_beyond_the_most_recent_are_closed_after_any_kind_of_use(
    postgres_url: str,
) -> None:
    db = database(postgres_url, database_pool_idle_seconds=0.2, database_pool_min_idle=1)
    admin = await asyncpg.connect(postgres_url, timeout=5)
    try:
        pids = [o for o in await hold_connections(db, 3) if isinstance(o, int)]
        assert len(pids) == 3
        # An ORM unit of work, whose connection passes through SQLAlchemy's own pool queue.
        await db.ping()
        with anyio.fail_after(WAIT_BOUND_SECONDS):
            while len(await backends(admin, pids)) > 1:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        # The one kept is the one used last, and it still serves.
        (kept,) = await backends(admin, pids)
        async with db.connect() as connection:
            assert await connection.fetchrow("SELECT pg_backend_pid()") == (kept,)
    finally:
        await admin.close()
        await db.dispose()
