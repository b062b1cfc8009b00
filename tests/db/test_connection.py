"""The driver connections of `Database.connect` (`db.connection`), on SQLite and on PostgreSQL.

What the task service relies on: each statement commits on its own until `transaction()` opens
a transaction; a transaction commits once when its block ends and rolls back when it raises,
and nested blocks join it; the pool never lends a connection that is inside a transaction or
broken; and rows written on this path and through the ORM read back the same either way.

"Committed" is always checked by an outsider: a connection of its own, outside the pool, which
sees nothing but committed rows.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import aiosqlite
import anyio
import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import select

from tests.conftest import UserFactory, make_settings
from todo_mcp.db.connection import Connection, IntegrityViolation
from todo_mcp.db.engine import Database
from todo_mcp.db.models import Task
from todo_mcp.db.types import utcnow
from todo_mcp.services import tasks
from todo_mcp.services.errors import DatabaseUnavailable, UserNotFound

pytestmark = pytest.mark.anyio

INSERT_TASK = (
    "INSERT INTO tasks (user_id, title, completed, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)"
)
# Every wait in this file ends within this many seconds, or the test fails.
DEADLINE_SECONDS = 3
# Statements that run well past anything the tests wait for, unless cancelled.
PG_SLOW = "SELECT pg_sleep(5)"
SQLITE_SLOW = (  # a fifth of a second or so of CPU
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000000) SELECT count(*) FROM n"
)
# What SQLAlchemy's SQLite DateTime writes: UTC, no offset, always six digits of microseconds.
SQLITE_STORED_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")
UNREACHABLE_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/x"


def on_sqlite(db: Database) -> bool:
    return db.engine.dialect.name == "sqlite"


def plain_postgres_url(db: Database) -> str:
    """The database's URL as asyncpg itself takes it."""
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def insert(conn: Connection, user_id: str, title: str) -> None:
    await conn.execute(INSERT_TASK, user_id, title, False, conn.time(utcnow()))


async def scalar(conn: Connection, sql: str, *args: Any) -> Any:
    row = await conn.fetchrow(sql, *args)
    assert row is not None
    return row[0]


async def committed_titles(db: Database, user_id: str) -> list[str]:
    """The user's task titles as a connection outside the pool sees them: committed rows only."""
    sql = "SELECT title FROM tasks WHERE user_id = {} ORDER BY id"
    if on_sqlite(db):
        assert db.engine.url.database is not None
        async with (
            aiosqlite.connect(db.engine.url.database) as outsider,
            outsider.execute(sql.format("?"), (user_id,)) as cursor,
        ):
            return [row[0] for row in await cursor.fetchall()]
    outsider = await asyncpg.connect(plain_postgres_url(db), timeout=DEADLINE_SECONDS)
    try:
        return [row[0] for row in await outsider.fetch(sql.format("$1"), user_id)]
    finally:
        await outsider.close()


async def terminate_backend(db: Database, pid: int) -> None:
    """Kill a PostgreSQL connection's server process from another connection, and wait until it is
    gone and the client end has read the close.

    A backend leaves `pg_stat_activity` before it exits and closes its socket; in between, the
    driver holds the server's "terminating connection" error but not yet the end of the stream,
    which no client can tell from an idle connection. A real restart takes far longer than that
    gap, so the tests wait it out, watching the process itself when the server runs here.
    """
    outsider = await asyncpg.connect(plain_postgres_url(db), timeout=DEADLINE_SECONDS)
    try:
        assert await outsider.fetchval("SELECT pg_terminate_backend($1)", pid) is True
        for _ in range(DEADLINE_SECONDS * 100):
            listed = await outsider.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
            if not listed and not local_server_process_running(pid):
                break
            await anyio.sleep(0.01)
        else:
            pytest.fail(f"backend {pid} outlived pg_terminate_backend")
    finally:
        await outsider.close()
    # Its socket closed with it; a few turns of the event loop let the driver read the end.
    for _ in range(3):
        await anyio.sleep(0.01)


def local_server_process_running(pid: int) -> bool:
    """Whether `pid` is a PostgreSQL process of this machine that has not exited (a zombie has:
    its sockets are closed). False where /proc cannot tell, as for a server elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name, _, rest = stat.partition("(")[2].rpartition(")")
    return name == "postgres" and rest.split()[0] != "Z"


async def borrow_at_once(db: Database, count: int, sql: str = "SELECT 1") -> list[Any]:
    """`count` calls that hold a connection at the same time, so the lender keeps `count`
    connections afterwards (where the pool has that many); what `sql` answered on each."""
    answers: list[Any] = []

    async def borrow() -> None:
        async with db.connect() as conn:
            answers.append(await scalar(conn, sql))
            await anyio.sleep(0.1)  # still holding it while the others take theirs

    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(borrow)
    return answers


def single_connection(url: str) -> Database:
    """A `Database` whose pool holds one connection: each `connect()` gets the connection the
    last one gave back, or a new one if that was discarded."""
    return Database.from_settings(
        make_settings(
            url, database_pool_size=1, database_max_overflow=0, database_pool_timeout=DEADLINE_SECONDS
        )
    )


@pytest.fixture
async def lone(db: Database, database_url: str) -> AsyncIterator[Database]:
    """`db`'s (migrated, emptied afterwards) database, through a pool of one connection."""
    database = single_connection(database_url)
    try:
        yield database
    finally:
        await database.dispose()


class HeldReplies:
    """A TCP proxy to PostgreSQL that can hold back the server's replies.

    While holding, a statement the client sends reaches the server and is carried out, but the
    client does not hear the answer until `release()`: a window as wide as the test wants.
    """

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._target = (parsed.host or "127.0.0.1", parsed.port or 5432)
        self.url = url
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.holding_a_reply = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> HeldReplies:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = make_url(self.url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    def hold(self) -> None:
        self.holding_a_reply.clear()
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self._target)
        pipes = [
            asyncio.ensure_future(self._pipe(client_reader, server_writer, holdable=False)),
            asyncio.ensure_future(self._pipe(server_reader, client_writer, holdable=True)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, holdable: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if holdable and not self._flowing.is_set():
                    self.holding_a_reply.set()
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


# --- transactions ---------------------------------------------------------------------------------


async def test_transaction_commits_when_the_block_ends(db: Database, user_factory: UserFactory) -> None:
    """Inside the block the row is the transaction's own; when the block ends it is committed."""
    user = await user_factory()

    async with db.connect() as conn:
        assert not conn.in_transaction
        async with conn.transaction():
            assert conn.in_transaction
            await insert(conn, user, "kept")
            assert await committed_titles(db, user) == []
        assert not conn.in_transaction
        assert await committed_titles(db, user) == ["kept"]


async def test_transaction_rolls_back_and_reraises_when_the_block_raises(
    db: Database, user_factory: UserFactory
) -> None:
    """The block's own exception comes out, its writes are gone, and the connection is back to
    committing each statement on its own."""
    user = await user_factory()
    boom = RuntimeError("boom")

    async with db.connect() as conn:

        async def write_then_fail() -> None:
            async with conn.transaction():
                await insert(conn, user, "rolled back")
                raise boom

        with pytest.raises(RuntimeError) as raised:
            await write_then_fail()
        assert raised.value is boom
        assert not conn.in_transaction
        assert await committed_titles(db, user) == []

        await insert(conn, user, "after")
        assert await committed_titles(db, user) == ["after"]


async def test_nested_transaction_joins_the_outer_one_and_commits_once(
    db: Database, user_factory: UserFactory
) -> None:
    """The inner block's end commits nothing; the outer block's end commits both writes."""
    user = await user_factory()

    async with db.connect() as conn:
        async with conn.transaction():
            await insert(conn, user, "outer")
            async with conn.transaction():
                assert conn.in_transaction
                await insert(conn, user, "inner")
            assert conn.in_transaction
            assert await committed_titles(db, user) == []
        assert not conn.in_transaction

    assert await committed_titles(db, user) == ["outer", "inner"]


async def test_inner_error_caught_in_the_outer_block_is_rolled_back_when_the_outer_raises(
    db: Database, user_factory: UserFactory
) -> None:
    """An inner block that raised leaves the outer transaction open; the outer raise then rolls
    back the writes of both blocks."""
    user = await user_factory()

    async with db.connect() as conn:

        async def inner() -> None:
            async with conn.transaction():
                await insert(conn, user, "inner")
                raise ValueError("inner")

        async def outer() -> None:
            async with conn.transaction():
                await insert(conn, user, "outer")
                with pytest.raises(ValueError, match="inner"):
                    await inner()
                assert conn.in_transaction
                raise RuntimeError("outer")

        with pytest.raises(RuntimeError, match="outer"):
            await outer()
        assert not conn.in_transaction

    assert await committed_titles(db, user) == []


async def test_inner_error_that_escapes_rolls_back_the_whole_transaction(
    db: Database, user_factory: UserFactory
) -> None:
    """An exception out of the inner block, through the outer one, undoes the outer's writes too."""
    user = await user_factory()

    async with db.connect() as conn:

        async def outer_then_inner_fails() -> None:
            async with conn.transaction():
                await insert(conn, user, "outer")
                async with conn.transaction():
                    await insert(conn, user, "inner")
                    raise ValueError("inner")

        with pytest.raises(ValueError, match="inner"):
            await outer_then_inner_fails()
        assert not conn.in_transaction

    assert await committed_titles(db, user) == []


async def test_nested_block_is_no_savepoint_its_writes_commit_with_the_outer_one(
    db: Database, user_factory: UserFactory
) -> None:
    """Joining means no savepoint: a caught inner error undoes nothing, so the outer commit keeps
    the inner block's writes."""
    user = await user_factory()

    async with db.connect() as conn:

        async def inner() -> None:
            async with conn.transaction():
                await insert(conn, user, "inner")
                raise ValueError("inner")

        async with conn.transaction():
            with pytest.raises(ValueError, match="inner"):
                await inner()
            await insert(conn, user, "outer")

    assert await committed_titles(db, user) == ["inner", "outer"]


async def test_statements_outside_a_transaction_commit_on_their_own(
    db: Database, user_factory: UserFactory
) -> None:
    """Without `transaction()` an insert is committed at once, and stays when the block raises
    afterwards; the block's exception comes out unchanged."""
    user = await user_factory()

    async def write_then_fail() -> None:
        async with db.connect() as conn:
            await insert(conn, user, "autocommitted")
            assert not conn.in_transaction
            assert await committed_titles(db, user) == ["autocommitted"]
            raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError, match="after the insert") as raised:
        await write_then_fail()

    assert not isinstance(raised.value, DatabaseUnavailable)
    assert await committed_titles(db, user) == ["autocommitted"]


# --- what the pool lends ----------------------------------------------------------------------------


async def test_a_connection_cancelled_inside_a_transaction_is_lent_again_only_outside_it(
    lone: Database, user_factory: UserFactory
) -> None:
    """A request cancelled while its transaction awaits a slow statement: the write is rolled
    back, and the next borrower of the pool's one connection commits each statement on its own."""
    user = await user_factory()
    inside = anyio.Event()

    async def write_then_wait() -> None:
        async with lone.connect() as conn, conn.transaction():
            await insert(conn, user, "cancelled")
            inside.set()
            await conn.execute(SQLITE_SLOW if on_sqlite(lone) else PG_SLOW)
        pytest.fail("the slow statement should have been cancelled")

    with anyio.fail_after(DEADLINE_SECONDS):
        async with anyio.create_task_group() as group:
            group.start_soon(write_then_wait)
            await inside.wait()
            group.cancel_scope.cancel()

    assert await committed_titles(lone, user) == []
    async with lone.connect() as conn:
        assert not conn.in_transaction
        await insert(conn, user, "next borrower")
        assert await committed_titles(lone, user) == ["next borrower"]


async def test_a_connection_cancelled_while_its_transaction_begins_is_lent_again_only_outside_it(
    db: Database, database_url: str, user_factory: UserFactory
) -> None:
    """A request cancelled while BEGIN is under way, after the server began the transaction: the
    next borrower of the pool's one connection must still commit each statement on its own.

    On PostgreSQL a proxy holds back the server's answer to BEGIN; on SQLite BEGIN IMMEDIATE
    waits for the write lock an outsider holds, then gets it once the outsider commits.
    """
    user = await user_factory()
    if on_sqlite(db):
        assert db.engine.url.database is not None
        lone = single_connection(database_url)
        async with aiosqlite.connect(db.engine.url.database, isolation_level=None) as outsider:
            try:
                await _cancel_while_beginning_on_sqlite(lone, outsider)
                await _assert_next_borrower_autocommits(lone, user)
            finally:
                await lone.dispose()
        return

    async with HeldReplies(database_url) as proxy:
        lone = single_connection(proxy.url)
        try:
            async with lone.connect() as conn:
                await conn.execute("SELECT 1")  # the pool's one connection, opened and returned
            # Cancels the call alone: the test itself goes on, to release the server's answer
            # (a shielded ROLLBACK after the cancel may be waiting for it).
            call = anyio.CancelScope()

            async def begin() -> None:
                with call:
                    async with lone.connect() as conn, conn.transaction():
                        pytest.fail("BEGIN should have been cancelled")

            with anyio.fail_after(DEADLINE_SECONDS):
                proxy.hold()
                async with anyio.create_task_group() as group:
                    group.start_soon(begin)
                    await proxy.holding_a_reply.wait()  # the server has answered BEGIN
                    call.cancel()
                    await anyio.sleep(0.1)
                    proxy.release()
                assert call.cancelled_caught
            await _assert_next_borrower_autocommits(lone, user)
        finally:
            await lone.dispose()


async def _cancel_while_beginning_on_sqlite(lone: Database, outsider: aiosqlite.Connection) -> None:
    async with lone.connect() as conn:
        await conn.execute("SELECT 1")  # the pool's one connection, opened and returned

    # Cancels the call alone: the test itself goes on, to let the outsider commit.
    call = anyio.CancelScope()

    async def begin() -> None:
        with call:
            async with lone.connect() as conn, conn.transaction():
                pytest.fail("BEGIN IMMEDIATE should have been cancelled")

    with anyio.fail_after(DEADLINE_SECONDS):
        await outsider.execute("BEGIN IMMEDIATE")
        async with anyio.create_task_group() as group:
            group.start_soon(begin)
            await anyio.sleep(0.3)  # well inside the 5 s busy timeout BEGIN IMMEDIATE waits for
            call.cancel()
            await anyio.sleep(0.1)
            await outsider.execute("COMMIT")  # now BEGIN IMMEDIATE gets the lock
        assert call.cancelled_caught


async def _assert_next_borrower_autocommits(lone: Database, user: str) -> None:
    with anyio.fail_after(DEADLINE_SECONDS):
        async with lone.connect() as conn:
            await insert(conn, user, "next borrower")
            assert await committed_titles(lone, user) == ["next borrower"]


async def test_a_connectivity_failure_is_database_unavailable_and_the_connection_is_discarded(
    lone: Database,
) -> None:
    """The statement's driver error comes out of `connect()` as `DatabaseUnavailable` (503, the
    driver's error as its cause), and the next borrower gets a new, working connection.

    On PostgreSQL the lent connection's server process is killed; on SQLite the lent connection
    cannot get the write lock that an outsider holds ("database is locked").
    """
    if on_sqlite(lone):
        assert lone.engine.url.database is not None
        async with aiosqlite.connect(lone.engine.url.database, isolation_level=None) as outsider:
            await outsider.execute("BEGIN IMMEDIATE")

            async def begin_without_the_lock() -> None:
                async with lone.connect() as conn:
                    # Only this lent connection's own setting: a new connection starts at 5000.
                    await conn.execute("PRAGMA busy_timeout = 50")
                    async with conn.transaction():
                        pytest.fail("the write lock is the outsider's")

            with pytest.raises(DatabaseUnavailable) as raised:
                await begin_without_the_lock()
            await outsider.execute("COMMIT")
        async with lone.connect() as conn:
            assert await scalar(conn, "PRAGMA busy_timeout") == 5000
            assert await scalar(conn, "SELECT 1") == 1
    else:
        killed: list[int] = []

        async def query_after_the_kill() -> None:
            async with lone.connect() as conn:
                killed.append(await scalar(conn, "SELECT pg_backend_pid()"))
                await terminate_backend(lone, killed[0])
                await conn.fetch("SELECT 1")

        with pytest.raises(DatabaseUnavailable) as raised:
            await query_after_the_kill()
        async with lone.connect() as conn:
            assert await scalar(conn, "SELECT pg_backend_pid()") not in killed

    assert raised.value.code == 503
    assert raised.value.message == DatabaseUnavailable.default_message
    assert raised.value.__cause__ is not None
    assert not isinstance(raised.value.__cause__, DatabaseUnavailable)


async def test_a_bad_statement_on_sqlite_is_an_error_of_its_own_not_unavailability(sqlite_url: str) -> None:
    """SQLITE_ERROR (a missing table, a syntax error) means the code or the schema is wrong:
    retrying cannot help, so it comes out as the driver's error (a 500 at the doors), not as
    `DatabaseUnavailable` (a 503), on either path, and the connection is kept."""
    db = single_connection(sqlite_url)
    try:
        async with db.connect() as conn:
            # Only this connection's own setting: a new connection would start at 5000.
            await conn.execute("PRAGMA busy_timeout = 1234")
        for statement in ("SELECT * FROM no_such_table", "SELEC 1"):
            with pytest.raises(sqlite3.OperationalError):
                async with db.connect() as conn:
                    await conn.execute(statement)
            with pytest.raises(sa_exc.OperationalError):
                async with db.transaction() as session:
                    await session.exec(text(statement))  # type: ignore[call-overload]
        async with db.connect() as conn:
            assert await scalar(conn, "PRAGMA busy_timeout") == 1234
    finally:
        await db.dispose()


async def test_a_postgresql_connection_killed_inside_a_transaction_is_discarded(postgres_url: str) -> None:
    """The ROLLBACK after the failure cannot run either; still `DatabaseUnavailable`, and the
    pool's one slot gets a new connection."""
    lone = single_connection(postgres_url)
    try:
        killed: list[int] = []

        async def query_after_the_kill() -> None:
            async with lone.connect() as conn, conn.transaction():
                killed.append(await scalar(conn, "SELECT pg_backend_pid()"))
                await terminate_backend(lone, killed[0])
                await conn.fetch("SELECT 1")

        with pytest.raises(DatabaseUnavailable) as raised:
            await query_after_the_kill()
        async with lone.connect() as conn:
            assert not conn.in_transaction
            assert await scalar(conn, "SELECT pg_backend_pid()") not in killed
            assert await scalar(conn, "SELECT txid_current_if_assigned()") is None
    finally:
        await lone.dispose()

    assert raised.value.__cause__ is not None


async def test_after_a_restart_no_call_gets_a_503_for_a_kept_connection(postgres_url: str) -> None:
    """A server restart or failover ends every connection at once, and the server says so to
    each as it goes: the connections kept for later calls are replaced before they are lent,
    so once the database is back no call fails for having been handed a dead one."""
    db = Database.from_settings(make_settings(postgres_url, database_pool_size=3))
    try:
        with anyio.fail_after(DEADLINE_SECONDS * 3):
            pids = await borrow_at_once(db, 3, "SELECT pg_backend_pid()")
            assert len(set(pids)) == 3
            for pid in pids:
                await terminate_backend(db, pid)
            new_pids = await borrow_at_once(db, 3, "SELECT pg_backend_pid()")
    finally:
        await db.dispose()

    assert not set(new_pids) & set(pids)


async def test_a_connection_lost_in_use_is_a_503_and_the_kept_ones_are_replaced(postgres_url: str) -> None:
    """The call whose connection ends under it gets `DatabaseUnavailable`; those kept for later
    calls, ended with it, are not lent again."""
    db = Database.from_settings(make_settings(postgres_url, database_pool_size=3))
    try:
        with anyio.fail_after(DEADLINE_SECONDS * 3):
            pids = await borrow_at_once(db, 3, "SELECT pg_backend_pid()")

            async def query_after_the_kill() -> None:
                async with db.connect() as conn:
                    for pid in set(pids):
                        await terminate_backend(db, pid)
                    await conn.fetch("SELECT 1")

            with pytest.raises(DatabaseUnavailable):
                await query_after_the_kill()
            new_pids = await borrow_at_once(db, 3, "SELECT pg_backend_pid()")
    finally:
        await db.dispose()

    assert not set(new_pids) & set(pids)


async def test_an_orm_session_after_a_restart_gets_a_new_connection(postgres_url: str) -> None:
    """The same when an ORM session (log-in, sign-up) is the first to run after a restart: the
    connection the lender gives back for it is dead too, and the pool reconnects it rather than
    failing the session."""
    db = Database.from_settings(make_settings(postgres_url, database_pool_size=3))
    try:
        with anyio.fail_after(DEADLINE_SECONDS * 3):
            pids = await borrow_at_once(db, 3, "SELECT pg_backend_pid()")
            for pid in set(pids):
                await terminate_backend(db, pid)
            async with db.transaction() as session:
                session_pid = (await session.exec(select(func.pg_backend_pid()))).one()
            async with db.connect() as conn:
                connection_pid = await scalar(conn, "SELECT pg_backend_pid()")
    finally:
        await db.dispose()

    assert session_pid not in pids
    assert connection_pid not in pids


async def test_ping_after_a_restart_says_the_database_answers_not_that_a_kept_connection_died(
    postgres_url: str,
) -> None:
    """A restart ends every pooled connection; the database is back, and a readiness check
    that finds the first dead connection must still answer that it is (else a process that
    served nothing since the restart is pulled from its balancer)."""
    db = Database.from_settings(make_settings(postgres_url, database_pool_size=3))
    try:
        with anyio.fail_after(DEADLINE_SECONDS * 3):
            pids = await borrow_at_once(db, 3, "SELECT pg_backend_pid()")
            async with db.transaction() as session:
                pids.append((await session.exec(select(func.pg_backend_pid()))).one())
            for pid in set(pids):
                await terminate_backend(db, pid)
            await db.ping()
            async with db.connect() as conn:
                assert await scalar(conn, "SELECT pg_backend_pid()") not in pids
    finally:
        await db.dispose()


async def test_unreachable_postgresql_is_database_unavailable_for_connect() -> None:
    settings = make_settings(
        UNREACHABLE_POSTGRES, database_pool_size=2, database_max_overflow=0, database_pool_timeout=0.5
    )
    db = Database.from_settings(settings)
    causes: list[BaseException | None] = []
    try:
        # More attempts than the pool has connections: a failed attempt gives its slot back,
        # so each fails on the connection, never on waiting for a slot.
        for _ in range(4):
            with pytest.raises(DatabaseUnavailable) as raised:
                async with db.connect():
                    pytest.fail("nothing listens there")
            assert raised.value.code == 503
            causes.append(raised.value.__cause__)
    finally:
        await db.dispose()

    assert all(cause is not None and not isinstance(cause, TimeoutError) for cause in causes), causes


async def test_connections_and_orm_sessions_share_the_one_sqlite_connection(sqlite_url: str) -> None:
    """One pool for both paths: while one holds SQLite's single connection, the other waits for
    it, boundedly, and reports `DatabaseUnavailable`."""
    db = Database.from_settings(make_settings(sqlite_url, database_pool_timeout=0.2))
    try:
        async with db.connect() as conn:
            await conn.execute("SELECT 1")
            with pytest.raises(DatabaseUnavailable):
                await db.ping()
        async with db.transaction() as session:
            await session.exec(select(1))  # a session takes its connection at the first statement
            with pytest.raises(DatabaseUnavailable):
                async with db.connect():
                    pytest.fail("the session holds the only connection")
        async with db.connect() as conn:  # released: usable again
            assert await scalar(conn, "SELECT 1") == 1
    finally:
        await db.dispose()


async def test_connections_are_lent_in_the_order_they_were_asked_for(postgres_url: str) -> None:
    """With every connection busy, waiters get one in arrival order, and a newcomer that asks
    just as one is returned queues behind them instead of taking it (SQLAlchemy's own pool
    queue lets it, and the passed-over waiter then queues again at the back)."""
    db = Database.from_settings(make_settings(postgres_url, database_pool_size=1))
    order: list[str] = []

    async def borrow(name: str, started: anyio.Event) -> None:
        started.set()
        async with db.connect() as conn:
            order.append(name)
            await conn.execute("SELECT 1")

    try:
        with anyio.fail_after(DEADLINE_SECONDS):
            async with anyio.create_task_group() as group:
                async with db.connect():
                    for name in ("first", "second"):
                        started = anyio.Event()
                        group.start_soon(borrow, name, started)
                        await started.wait()
                        await anyio.sleep(0.05)  # let it reach the queue
                # Returned just now: this task asks again before the waiters have run.
                async with db.connect():
                    order.append("newcomer")
        assert order == ["first", "second", "newcomer"]
    finally:
        await db.dispose()


async def test_waiting_for_a_connection_is_bounded_by_the_pool_timeout(postgres_url: str) -> None:
    db = Database.from_settings(make_settings(postgres_url, database_pool_size=1, database_pool_timeout=0.2))
    try:
        async with db.connect():
            with anyio.fail_after(DEADLINE_SECONDS), pytest.raises(DatabaseUnavailable):
                async with db.connect():
                    pytest.fail("the only connection is lent out")
        async with db.connect() as conn:
            assert await scalar(conn, "SELECT 1") == 1
    finally:
        await db.dispose()


async def test_lent_orm_and_engine_borrowers_together_stay_within_the_pool(database_url: str) -> None:
    """The lender keeps returned connections for the next borrower, outside SQLAlchemy's pool;
    ORM sessions and engine connections still take theirs from the pool. Mixed together, no
    borrower ever waits for the pool's timeout, and the pool never has more out than it holds
    (one connection on SQLite, two here on PostgreSQL)."""
    size = 1 if database_url.startswith("sqlite") else 2
    db = Database.from_settings(
        make_settings(database_url, database_pool_size=size, database_pool_timeout=DEADLINE_SECONDS)
    )
    most_out = 0

    def note_pool() -> None:
        nonlocal most_out
        most_out = max(most_out, db.engine.pool.checkedout())  # type: ignore[attr-defined]

    async def borrow(number: int) -> None:
        for round_ in range(6):
            kind = (number + round_) % 3
            if kind == 0:
                async with db.connect() as conn:
                    assert await scalar(conn, "SELECT 1") == 1
                    note_pool()
            elif kind == 1:
                async with db.transaction() as session:
                    assert (await session.exec(select(1))).one() == 1
                    note_pool()
            else:
                async with db.engine_connection() as connection:
                    assert (await connection.exec_driver_sql("SELECT 1")).scalar() == 1
                    note_pool()

    try:
        with anyio.fail_after(DEADLINE_SECONDS * 4):
            async with anyio.create_task_group() as group:
                for number in range(12):
                    group.start_soon(borrow, number)
        assert 1 <= most_out <= size
    finally:
        await db.dispose()


async def test_a_connection_older_than_the_recycle_age_is_replaced(postgres_url: str) -> None:
    """Kept connections are still recycled: one taken from the pool longer ago than the recycle
    age goes back, and the pool (which reconnects anything that old) lends a new one."""
    url = make_settings(postgres_url).database_url
    engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_recycle=0.2)
    db = Database(engine, connections=1, wait_seconds=DEADLINE_SECONDS, recycle_seconds=0.2)
    try:
        async with db.connect() as conn:
            first = await scalar(conn, "SELECT pg_backend_pid()")
        async with db.connect() as conn:
            assert await scalar(conn, "SELECT pg_backend_pid()") == first  # kept, not reconnected
        await anyio.sleep(0.3)
        async with db.connect() as conn:
            assert await scalar(conn, "SELECT pg_backend_pid()") != first
    finally:
        await db.dispose()


async def test_dispose_returns_every_kept_connection_to_the_pool(database_url: str) -> None:
    db = Database.from_settings(make_settings(database_url, database_pool_size=3))
    pool = db.engine.pool
    await borrow_at_once(db, 3)
    assert pool.checkedout() >= 1  # type: ignore[attr-defined]  # kept by the lender
    await db.dispose()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


# --- constraints ------------------------------------------------------------------------------------


async def test_foreign_key_violation_is_integrity_violation(db: Database, user_factory: UserFactory) -> None:
    """A task for a missing user: `IntegrityViolation`, not `DatabaseUnavailable`; the connection
    stays usable, and in a transaction the violation rolls back the transaction's other writes."""
    user = await user_factory()

    async with db.connect() as conn:
        with pytest.raises(IntegrityViolation):
            await insert(conn, "nobody", "orphan")
        await insert(conn, user, "kept")
        with pytest.raises(UserNotFound):
            await tasks.add_task(conn, user_id="nobody", title="orphan")

    async def write_then_violate() -> None:
        async with db.connect() as conn, conn.transaction():
            await insert(conn, user, "rolled back")
            await insert(conn, "nobody", "orphan")

    with pytest.raises(IntegrityViolation) as raised:
        await write_then_violate()

    assert not isinstance(raised.value, DatabaseUnavailable)
    assert await committed_titles(db, user) == ["kept"]


# --- timestamps and order ---------------------------------------------------------------------------


def assert_same_utc_instant(read: datetime, written: datetime) -> None:
    assert read == written
    assert read.tzinfo == UTC
    assert read.isoformat() == written.astimezone(UTC).isoformat()  # to the microsecond


async def test_a_task_written_by_the_driver_reads_back_identical_through_the_orm(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    async with db.connect() as conn:
        added = (await tasks.add_task(conn, user_id=user, title="driver", description="written raw")).task

    async with db.transaction() as session:
        stored = await session.get(Task, added.id)

    assert stored is not None
    assert (stored.id, stored.user_id, stored.title, stored.description, stored.completed) == (
        added.id,
        user,
        "driver",
        "written raw",
        False,
    )
    assert_same_utc_instant(stored.created_at, added.created_at)
    assert_same_utc_instant(stored.updated_at, added.updated_at)


async def test_a_task_written_by_the_orm_reads_back_identical_through_the_driver(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    created = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=13)))
    updated = datetime(2026, 5, 6, 7, 8, 9, 1, tzinfo=UTC)
    async with db.transaction() as session:
        written = Task(user_id=user, title="orm", completed=True, created_at=created, updated_at=updated)
        session.add(written)
    assert written.id is not None

    async with db.connect() as conn:
        stored = await tasks.get_task(conn, user_id=user, task_id=written.id)

    assert (stored.id, stored.user_id, stored.title, stored.description, stored.completed) == (
        written.id,
        user,
        "orm",
        None,
        True,
    )
    assert_same_utc_instant(stored.created_at, created)
    assert_same_utc_instant(stored.updated_at, updated)
    assert (stored.created_at.day, stored.created_at.hour, stored.created_at.microsecond) == (31, 23, 123456)


async def test_both_paths_store_timestamps_in_the_same_form(db: Database, user_factory: UserFactory) -> None:
    """On SQLite the stored text is the same format whichever path wrote it (so text order is time
    order); on PostgreSQL both are timestamptz values."""
    user = await user_factory()
    when = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    async with db.transaction() as session:
        session.add(Task(user_id=user, title="orm", created_at=when, updated_at=when))
    async with db.connect() as conn:
        await conn.execute(INSERT_TASK, user, "driver", False, conn.time(when))
        stored = await conn.fetch(
            "SELECT created_at, updated_at FROM tasks WHERE user_id = $1 ORDER BY id", user
        )
        as_written = conn.time(when)

    assert len(stored) == 2
    orm_row, driver_row = (tuple(row) for row in stored)
    assert orm_row == driver_row
    if on_sqlite(db):
        assert orm_row == (as_written, as_written)
        assert SQLITE_STORED_TIME.fullmatch(orm_row[0]), orm_row
    else:
        assert all(isinstance(value, datetime) and value == when for value in orm_row)


async def test_tasks_are_listed_oldest_first_whichever_path_wrote_them(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    async with db.connect() as conn:
        await tasks.add_task(conn, user_id=user, title="first")
    async with db.transaction() as session:
        session.add(Task(user_id=user, title="second"))
    async with db.connect() as conn:
        await tasks.add_task(conn, user_id=user, title="third")

    async with db.connect() as conn:
        listed = (await tasks.list_tasks(conn, user_id=user)).tasks
        by_time = await conn.fetch("SELECT title FROM tasks WHERE user_id = $1 ORDER BY created_at", user)

    assert [task.title for task in listed] == ["first", "second", "third"]
    assert [task.created_at for task in listed] == sorted(task.created_at for task in listed)
    # On SQLite this sorts stored text: both paths' text must sort in time order.
    assert [row[0] for row in by_time] == ["first", "second", "third"]


# --- SQL text -------------------------------------------------------------------------------------


async def test_numbered_parameters_may_repeat_and_come_in_any_order(
    db: Database, user_factory: UserFactory
) -> None:
    """`$n` means the n-th argument wherever and however often it appears (SQLite gets `?n`), and
    `$1` is not mistaken for the start of `$10` or `$11`."""
    user = await user_factory()
    others = [f"other {n}" for n in range(2, 11)]

    async with db.connect() as conn:
        await conn.execute(
            "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at) "
            "VALUES ($1, $2, $2, $3, $4, $4)",
            user,
            "same",
            False,
            conn.time(utcnow()),
        )
        row = await conn.fetchrow(
            "SELECT title, description FROM tasks WHERE description = $2 AND user_id = $1 AND title = $2",
            user,
            "same",
        )
        count = await scalar(
            conn,
            "SELECT count(*) FROM tasks "
            "WHERE user_id = $11 AND title IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            "same",
            *others,
            user,
        )
        by_tenth = await scalar(
            conn,
            "SELECT count(*) FROM tasks "
            "WHERE user_id = $11 AND title = $10 AND title NOT IN ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            *others,
            "same",
            user,
        )

    assert row is not None
    assert tuple(row) == ("same", "same")
    # Had `$10` been read as `$1` ("other 2"), or `$11` as `$1`, these would count nothing.
    assert (count, by_tenth) == (1, 1)
