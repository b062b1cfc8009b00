"""Which schema revision a database is at, and which this code needs, without loading Alembic.

A serving process checks this once at start-up; importing Alembic (with Mako and Pygments) for
it cost every server about 10 MB of memory for as long as it ran. The head is read from the
migration files' own `revision` / `down_revision` lines; `tests/db/test_migrations.py` holds it
equal to Alembic's.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from todo_mcp.db.engine import Database

VERSIONS = Path(__file__).parent / "migrations" / "versions"
_REVISION = re.compile(r'^revision: str = "([^"]+)"', re.MULTILINE)
_DOWN = re.compile(r'^down_revision: str \| None = (?:"([^"]+)"|None)', re.MULTILINE)


@lru_cache(maxsize=1)
def head_revision() -> str:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        source = path.read_text()
        revision, down = _REVISION.search(source), _DOWN.search(source)
        if revision is None or down is None:
            raise RuntimeError(f"{path.name} does not name its revision and the one before it")
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads; they must have one")
    return heads.pop()


async def current_revision(db: Database) -> str | None:
    """The database's revision, or None when it has never been migrated."""
    async with db.engine_connection() as connection:
        try:
            row = (await connection.execute(text("SELECT version_num FROM alembic_version"))).first()
        except (ProgrammingError, OperationalError, DBAPIError) as exc:
            if "alembic_version" in str(exc):
                return None
            raise
    return str(row[0]) if row is not None else None
