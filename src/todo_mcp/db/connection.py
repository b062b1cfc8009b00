"""SQL on the pooled driver connection: the lean path the task tools run on.

Every tool call is a query or two. Through the ORM each one cost about 1 ms of CPU (session,
unit of work, identity map, greenlet hops); the driver alone costs a tenth of that. So the task
service writes its SQL once, with `$1`-style parameters, and runs it here on the connection that
SQLAlchemy's pool hands out: one pool per process whichever path a request takes, and on
SQLite the same single connection that queues every writer.

A `Connection` runs each statement on its own (autocommit) until `transaction()` opens a
transaction; a single INSERT ... RETURNING or SELECT needs none, which saves two round trips.
"""

from __future__ import annotations

import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, date, datetime
from typing import Any

import aiosqlite
import anyio
import asyncpg

from todo_mcp.services.errors import DatabaseUnavailable

Row = Sequence[Any]


class IntegrityViolation(Exception):
    """A constraint (foreign key, unique, check) refused the statement."""


class Connection(ABC):
    """One pooled driver connection, lent for one unit of work."""

    # Appended to a SELECT that must lock the rows it reads until the transaction ends.
    for_update: str = ""

    def __init__(self) -> None:
        self._depth = 0

    @abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    @abstractmethod
    async def execute(self, sql: str, *args: Any) -> None: ...

    @abstractmethod
    def time(self, value: datetime) -> Any:
        """A UTC datetime as this database stores it."""

    @abstractmethod
    def read_time(self, value: Any) -> datetime:
        """A stored timestamp as an aware UTC datetime."""

    @abstractmethod
    def day(self, value: date) -> Any:
        """A calendar date as this database stores it."""

    @abstractmethod
    def read_day(self, value: Any) -> date:
        """A stored date (or a date-typed expression's value) as a `date`."""

    @abstractmethod
    def _is_connectivity_error(self, exc: BaseException) -> bool: ...

    _begin_sql = "BEGIN"

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Commit when the block ends, roll back if it raises. Nested blocks join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        # Counted as open before BEGIN is sent: a BEGIN cancelled in flight may still have
        # started a transaction on the server.
        self._depth = 1
        try:
            await self.execute(self._begin_sql)
            yield
        except BaseException:
            # Shielded: a cancelled request must still end its transaction. If the rollback
            # fails, the depth stays up and `Database.connect` discards the connection; the
            # original error is the one worth reporting.
            with anyio.CancelScope(shield=True), suppress(Exception):
                await self.execute("ROLLBACK")
                self._depth = 0
            raise
        await self.execute("COMMIT")
        self._depth = 0

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @property
    def closed(self) -> bool:
        """True when the driver already knows the connection has ended (the server said so and
        closed its end), so a statement sent on it would fail."""
        return False

    def lost(self, exc: BaseException) -> bool:
        """True when `exc` means the connection or the server is gone (the caller should
        discard the connection and answer 503)."""
        return isinstance(exc, DatabaseUnavailable) or self._is_connectivity_error(exc)

    def short_of_resources(self, exc: BaseException) -> bool:
        """True when the server refused the work for want of resources (answer 503, keep the
        connection)."""
        return False


class PostgresConnection(Connection):
    for_update = " FOR UPDATE"

    def __init__(self, driver: asyncpg.Connection) -> None:
        super().__init__()
        self._driver = driver

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            rows: list[Row] = await self._driver.fetch(sql, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityViolation(str(exc)) from exc
        return rows

    async def execute(self, sql: str, *args: Any) -> None:
        try:
            await self._driver.execute(sql, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityViolation(str(exc)) from exc

    def time(self, value: datetime) -> datetime:
        return value

    def read_time(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(UTC)

    def day(self, value: date) -> date:
        return value

    def read_day(self, value: Any) -> date:
        assert isinstance(value, date)
        return value

    @property
    def closed(self) -> bool:
        return bool(self._driver.is_closed())

    def _is_connectivity_error(self, exc: BaseException) -> bool:
        return postgres_connection_lost(exc)

    def short_of_resources(self, exc: BaseException) -> bool:
        return postgres_short_of_resources(exc)


def postgres_connection_lost(exc: BaseException | None) -> bool:
    """True when an asyncpg error means the connection or the server is gone."""
    if isinstance(exc, asyncpg.DataError | asyncpg.QueryCanceledError):
        # Bad parameters (a DataError is an InterfaceError too) and a cancelled statement
        # leave the connection fine.
        return False
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        # The driver's protocol state is broken, e.g. a statement sent after the server's
        # "terminating connection" notice arrived but before the socket's end did.
        | asyncpg.InternalClientError
        # Class 57: the server is shutting down, or refuses connections for now.
        | asyncpg.exceptions.OperatorInterventionError,
    )


def postgres_short_of_resources(exc: BaseException | None) -> bool:
    """Class 53: the server is out of connection slots (`too_many_connections`, what a new
    connection gets when the processes' pools add up to more than `max_connections`), memory
    or disk. The server is fine and so are the connections already open: the request gets a
    503, and nothing else is discarded."""
    return isinstance(exc, asyncpg.exceptions.InsufficientResourcesError)


_NUMBERED = re.compile(r"\$(\d+)")


class SqliteConnection(Connection):
    # The one connection is the only writer, and `BEGIN IMMEDIATE` takes the write lock up
    # front: a deferred transaction that reads and then writes would fail at once with
    # "database is locked" when another process wrote in between.
    _begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, driver: aiosqlite.Connection) -> None:
        super().__init__()
        self._driver = driver

    @staticmethod
    def _sql(sql: str) -> str:
        return _translated.get(sql) or _translated.setdefault(sql, _NUMBERED.sub(r"?\1", sql))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        # One trip to aiosqlite's thread for execute, fetch and close (each is a trip of its own
        # through a cursor), and the trips are where SQLite's CPU goes here.
        try:
            return list(await self._driver.execute_fetchall(self._sql(sql), args))
        except sqlite3.IntegrityError as exc:
            raise IntegrityViolation(str(exc)) from exc

    async def execute(self, sql: str, *args: Any) -> None:
        await self.fetch(sql, *args)

    def time(self, value: datetime) -> str:
        # Exactly what SQLAlchemy's SQLite DateTime writes, so both paths read each other's rows
        # and text order is time order.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def read_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    def day(self, value: date) -> str:
        # As SQLAlchemy's SQLite Date writes it: ISO text, whose order is date order.
        return value.isoformat()

    def read_day(self, value: Any) -> date:
        return date.fromisoformat(value)

    def _is_connectivity_error(self, exc: BaseException) -> bool:
        return isinstance(exc, OSError) or (isinstance(exc, sqlite3.Error) and sqlite_unavailable(exc))


# Primary result codes that mean the database cannot be used right now: the write lock still
# held after busy_timeout, I/O errors, a missing, read-only, damaged or full file. SQLITE_ERROR
# (a bad statement, a missing table: a bug or an unmigrated file) is not among them: retrying
# cannot help, so it is an unexpected error (500, logged), not a 503.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_PERM,
    }
)


def sqlite_unavailable(exc: sqlite3.Error) -> bool:
    """True when a SQLite error means the database is unusable for now rather than misused."""
    if isinstance(exc, sqlite3.ProgrammingError):
        return "closed" in str(exc)  # "Cannot operate on a closed database."
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        # Raised without a result code (by the driver itself): keep the cautious answer.
        return isinstance(exc, sqlite3.OperationalError)
    return (code & 0xFF) in _UNAVAILABLE_CODES  # extended codes keep the primary one in the low byte


# SQL text is written once per statement in the code, so this stays as small as the code.
_translated: dict[str, str] = {}
