"""Alembic environment. Runs on a connection handed over by `todo_mcp.db.migrate`, or, when the
alembic command line is used (for example to autogenerate a revision), on its own engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from todo_mcp.config import Settings
from todo_mcp.db.models import metadata

config = context.config


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_on_own_engine(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


given = config.attributes.get("connection")
if given is not None:
    run_on(given)
else:
    asyncio.run(run_on_own_engine(config.get_main_option("sqlalchemy.url") or Settings().database_url))
