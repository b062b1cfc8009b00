"""The query plans the list relies on, on PostgreSQL: a filtered page of a long list is read in
index order, never by scanning the user's tasks.

A user with 10,000 tasks (beside others' tasks) asks for pending tasks with one label, sorted by
due date, 50 at a time: the page's ids come from an index-only scan of the label index that stops
after 51 entries, on the first page and on one reached by a cursor, and its total from the same
index. The SQL is the service's own, recorded as it runs, and explained with the same parameters.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from tests.clock import at
from tests.conftest import make_settings, throwaway_postgres_database
from todo_mcp.db import migrate
from todo_mcp.db.connection import Connection
from todo_mcp.db.engine import Database
from todo_mcp.services import tasks
from todo_mcp.services.task_listing import TaskQuery

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLOCK = at("2026-12-01T12:00:00Z")
USER = "long-list"
TASKS = 10_000


@pytest.fixture(scope="module")
def long_list_url(postgres_url: str) -> Iterator[str]:
    with throwaway_postgres_database("plan") as url:
        yield url


@pytest.fixture
async def db(long_list_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(make_settings(long_list_url))
    await migrate.upgrade(database)
    async with database.engine_connection() as connection:
        await connection.execute(text("TRUNCATE users, tasks, task_labels CASCADE"))
        for user in (USER, "someone-else", "another"):
            await connection.execute(
                text("INSERT INTO users (id, email, created_at) VALUES (:id, :email, now())"),
                {"id": user, "email": f"{user}@example.com"},
            )
        # Every 5th task labelled work, 7 in 10 pending, dates over two months, a third undated.
        await connection.execute(
            text(
                "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at, "
                "due_date, due_time, priority_rank, labels, search_text) "
                "SELECT u.id, 'task ' || n, NULL, n % 10 >= 7, now(), now(), "
                "CASE WHEN n % 3 = 0 THEN NULL ELSE DATE '2026-11-15' + (n % 60) END, "
                "CASE WHEN n % 4 = 0 THEN '09:00' END, n % 4, "
                "CASE WHEN n % 5 = 0 THEN '[\"work\"]' ELSE '[]' END, 'task ' || n "
                "FROM generate_series(1, :count) AS n, "
                "(VALUES (:user), ('someone-else'), ('another')) AS u(id) "
                "WHERE u.id = :user OR n <= :count / 4"
            ),
            {"count": TASKS, "user": USER},
        )
        await connection.execute(
            text(
                "INSERT INTO task_labels (task_id, user_id, label_key) "
                "SELECT id, user_id, 'work' FROM tasks WHERE labels = '[\"work\"]'"
            )
        )
        await connection.commit()
    # As autovacuum leaves a table after a bulk load: statistics and a set visibility map.
    admin = await asyncpg.connect(long_list_url, timeout=5)
    try:
        await admin.execute("VACUUM ANALYZE users, tasks, task_labels")
    finally:
        await admin.close()
    try:
        yield database
    finally:
        await database.dispose()


class Recording:
    """Runs the service on a real connection and keeps the SQL and parameters it sent."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        fetch = connection.fetch

        async def recorded(sql: str, *args: Any) -> Any:
            self.statements.append((sql, args))
            return await fetch(sql, *args)

        connection.fetch = recorded  # type: ignore[method-assign]


def nodes(plan: dict[str, Any], *, skip_init_plans: bool) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        if skip_init_plans and child.get("Parent Relationship") == "InitPlan":
            continue
        yield from nodes(child, skip_init_plans=skip_init_plans)


async def explained(connection: Connection, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    (row,) = await connection.fetch(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    plan: dict[str, Any] = json.loads(row[0])[0]["Plan"] if isinstance(row[0], str) else row[0][0]["Plan"]
    return plan


async def page_plan(db: Database, query: TaskQuery) -> tuple[dict[str, Any], tasks.TaskPage]:
    """The plan of the one statement the page takes, and the page."""
    async with db.connect() as connection:
        recording = Recording(connection)
        page = await tasks.list_tasks(connection, user_id=USER, query=query, clock=CLOCK)
        (statement,) = recording.statements
        return await explained(connection, *statement), page


def assert_counted_from_the_label_index(plan: dict[str, Any]) -> None:
    """The total (and the user's zone) are subplans that never read the tasks table."""
    init_plans = [
        node for node in nodes(plan, skip_init_plans=False) if node.get("Parent Relationship") == "InitPlan"
    ]
    relations = {
        node.get("Relation Name") for child in init_plans for node in nodes(child, skip_init_plans=False)
    } - {None}
    assert relations == {"task_labels", "users"}, json.dumps(plan, indent=1)[:4000]


def assert_read_in_index_order(plan: dict[str, Any]) -> None:
    """The page's ids come in due order from the label index alone (an index-only scan of the
    first 51 entries), and only the tasks shown are then read, by primary key."""
    page_nodes = list(nodes(plan, skip_init_plans=True))
    shown = json.dumps(plan, indent=1)[:4000]
    scans = {(node["Node Type"], node.get("Relation Name"), node.get("Index Name")) for node in page_nodes}
    label_scan = ("Index Only Scan", "task_labels", "ix_task_labels_user_id_label_key")
    assert label_scan in scans, shown
    on_tasks = {(kind, index) for kind, relation, index in scans if relation == "tasks"}
    assert on_tasks == {("Index Scan", "pk_tasks")}, shown
    # Only the 51 rows of the page are sorted back into order after the join.
    sorts = [node for node in page_nodes if node["Node Type"] in ("Sort", "Incremental Sort")]
    assert all(node.get("Plan Rows", 0) <= 51 for node in sorts), shown
    # The tasks table is never scanned whole, by the page or by the total (a three-row users
    # table may be, for the zone).
    seq_scans = [
        node
        for node in nodes(plan, skip_init_plans=False)
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "tasks"
    ]
    assert seq_scans == [], shown


async def test_a_filtered_page_of_a_long_list_is_an_index_scan_on_every_page(db: Database) -> None:
    query = TaskQuery.of(status="pending", labels=["work"], sort="due", limit=50)
    first_plan, first = await page_plan(db, query)
    assert_read_in_index_order(first_plan)
    assert_counted_from_the_label_index(first_plan)
    assert first.count == 50
    assert first.next_cursor is not None
    assert first.total == sum(1 for n in range(1, TASKS + 1) if n % 5 == 0 and n % 10 < 7)

    later_plan, later = await page_plan(
        db, TaskQuery.of(status="pending", labels=["work"], sort="due", limit=50, cursor=first.next_cursor)
    )
    assert_read_in_index_order(later_plan)
    assert_counted_from_the_label_index(later_plan)
    assert later.count == 50
    assert later.total == first.total
    assert not {task.id for task in later.tasks} & {task.id for task in first.tasks}
