"""The process's one async engine and the unit of work that every request runs in."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from uuid import uuid4

from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.connectors.asyncio import AsyncAdapt_Error
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from todo_mcp import metrics
from todo_mcp.config import Settings
from todo_mcp.db.connection import (
    Connection,
    PostgresConnection,
    SqliteConnection,
    postgres_connection_lost,
    postgres_short_of_resources,
    sqlite_unavailable,
)
from todo_mcp.db.lender import ConnectionLender
from todo_mcp.services.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000
POOL_RECYCLE_SECONDS = 1800


def _driver_error(exc: BaseException) -> BaseException | None:
    """asyncpg's own exception, which SQLAlchemy's adapter raises its DBAPI error from: under a
    `DBAPIError` when a statement or `engine.connect()` failed, bare from `raw_connection()`."""
    adapted = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return adapted.__cause__ if isinstance(adapted, AsyncAdapt_Error) else None


def _is_short_of_resources(exc: BaseException) -> bool:
    """The server refused for want of connection slots, memory or disk (see
    `postgres_short_of_resources`): a 503 that leaves the open connections alone."""
    return postgres_short_of_resources(_driver_error(exc))


def _is_lost(exc: BaseException) -> bool:
    """The connection or the server is gone."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc.orig, sqlite3.Error):
            return sqlite_unavailable(exc.orig)
        return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or postgres_connection_lost(
            _driver_error(exc)
        )
    # Pool exhaustion, and drivers that raise socket errors before any DBAPI wrapping.
    if isinstance(exc, sa_exc.TimeoutError | OSError | ConnectionError):
        return True
    # A connection attempt's error, as `raw_connection()` raises it (adapted, not wrapped).
    return postgres_connection_lost(_driver_error(exc))


def _is_connectivity_error(exc: BaseException) -> bool:
    """Whatever should reach the caller as `DatabaseUnavailable` (503)."""
    return _is_lost(exc) or _is_short_of_resources(exc)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads and then writes
        # fails at once with "database is locked" when another process wrote in between,
        # whatever busy_timeout says.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_postgres(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(_: DBAPIConnection, __: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        # A server that shuts down says so to every connection, and the driver marks them closed:
        # one the pool still holds from before a restart is reconnected here (the pool retries
        # on this error), instead of failing its unit of work with a 503.
        driver = proxy.driver_connection
        if driver is not None and driver.is_closed():
            raise sa_exc.DisconnectionError("the server closed the connection")


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        # One connection: SQLite allows one writer, and a pool of writers queues on its
        # lock with multi-second stalls; one connection queues in the pool instead, fairly.
        engine = create_async_engine(
            settings.database_url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=settings.database_pool_timeout,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
        pool_recycle=POOL_RECYCLE_SECONDS,
        # The connection an ORM unit of work just checked in is the next one out: the lender
        # takes it straight back (`ConnectionLender.pool_slot`).
        pool_use_lifo=True,
        connect_args={
            "server_settings": {"application_name": "todo-mcp"},
            "timeout": settings.database_connect_timeout,
            **(TRANSACTION_POOLER_ARGS if settings.database_transaction_pooler else {}),
        },
    )
    _configure_postgres(engine)
    return engine


def _unique_statement_name() -> str:
    return f"__todo_mcp_{uuid4().hex}__"


# Behind a transaction-mode pooler: asyncpg's statement cache off (its queries go as unnamed
# statements), SQLAlchemy's off, and what SQLAlchemy still prepares named uniquely, so that two
# clients sharing one server connection never collide on "__asyncpg_stmt_1__".
TRANSACTION_POOLER_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _unique_statement_name,
}


class Database:
    """Owns the engine; hands out ORM sessions and lean driver connections from its one pool."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        connections: int,
        wait_seconds: float,
        recycle_seconds: float | None = None,
        idle_seconds: float | None = None,
        min_idle: int = 0,
    ) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        self._lender = ConnectionLender(
            engine,
            SqliteConnection if engine.dialect.name == "sqlite" else PostgresConnection,
            is_connectivity_error=_is_connectivity_error,
            capacity=connections,
            wait_seconds=wait_seconds,
            recycle_seconds=recycle_seconds,
            idle_seconds=idle_seconds,
            min_idle=min_idle,
        )

    def connect(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled driver connection for one unit of work (see `db.connection`, `db.lender`)."""
        return self._lender.lend()

    @asynccontextmanager
    async def engine_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection straight from the engine (migrations, schema checks).

        Use this rather than `engine.connect()`: the lender keeps idle connections checked out,
        and on SQLite the pool's only connection may be one of them.
        """
        async with self._lender.pool_slot(), self.engine.connect() as connection:
            yield connection

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        connections = (
            1 if settings.is_sqlite else settings.database_pool_size + settings.database_max_overflow
        )
        return cls(
            create_engine(settings),
            connections=connections,
            wait_seconds=settings.database_pool_timeout,
            recycle_seconds=None if settings.is_sqlite else POOL_RECYCLE_SECONDS,
            # SQLite's one connection holds no server's slot, and reopening it costs the pragmas.
            idle_seconds=None if settings.is_sqlite else settings.database_pool_idle_seconds,
            min_idle=settings.database_pool_min_idle,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends, rolls back if it raises.

        Lost connections, an unreachable server and pool exhaustion come out as
        `DatabaseUnavailable`, so every door reports them the same way.
        """
        try:
            async with self._lender.pool_slot(), self._sessions() as session, session.begin():
                yield session
        except Exception as exc:
            if _is_lost(exc):
                metrics.database_error("lost")
                await self._lender.drop_kept(exc)
                raise DatabaseUnavailable() from exc
            if _is_short_of_resources(exc):
                metrics.database_error("too_many_connections")
                raise DatabaseUnavailable() from exc
            raise

    async def ping(self) -> None:
        """Raise `DatabaseUnavailable` unless a query round-trips.

        Asks twice when the first answer is a lost connection: after a database restart the
        pool still holds connections to the old server, and the first to be used fails and
        takes the others with it. Only the second try says whether the database answers now;
        without it a process that served nothing since the restart reads as not ready.
        """
        try:
            await self._select_one()
        except DatabaseUnavailable as err:
            # Not after waiting for a free connection or being refused one: that would double the wait.
            cause = err.__cause__
            if not (isinstance(cause, sa_exc.DBAPIError) and _is_lost(cause)):
                raise
            await self._select_one()

    async def _select_one(self) -> None:
        async with self.transaction() as session:
            await session.exec(text("SELECT 1"))  # type: ignore[call-overload]

    def pool_usage(self) -> tuple[int, int]:
        """Connections in use and calls waiting for one, now."""
        return self._lender.usage()

    async def dispose(self) -> None:
        await self._lender.close()
        await self.engine.dispose()
