"""Paging through list_tasks returns exactly what a plain in-memory filter and sort returns.

For random task sets and random filters and orders, following next_cursor to the end yields the
reference list, in order, each task once, on SQLite and PostgreSQL; and with tasks added and
completed between pages, no task that matched throughout is skipped or shown twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.clock import at
from todo_mcp.db.engine import Database
from todo_mcp.services import tasks, users
from todo_mcp.services.task_listing import PRIORITY_RANK, TaskQuery
from todo_mcp.services.tasks import TaskRecord

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CLOCK = at("2026-12-01T12:00:00Z")  # Tuesday, in UTC
TODAY = date(2026, 12, 1)
WORDS = ("alpha", "Beta", "gamma", "Éclair", "50%", "snake_case")
LABELS = ("work", "Home", "urgent")
NO_DATE = date(9999, 12, 30)


@dataclass(frozen=True)
class NewTask:
    title: str
    due_day: int | None
    due_time: str | None
    priority: str
    labels: tuple[str, ...]
    completed: bool


new_tasks = st.builds(
    NewTask,
    title=st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join),
    due_day=st.none() | st.integers(-3, 9),
    due_time=st.none() | st.sampled_from(["08:00", "12:30", "23:59"]),
    priority=st.sampled_from(["none", "low", "medium", "high"]),
    labels=st.lists(st.sampled_from(LABELS), max_size=2, unique=True).map(tuple),
    completed=st.booleans(),
)
queries = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["all", "pending", "completed"]),
        "sort": st.sampled_from(["created", "due", "priority", "updated"]),
        "order": st.sampled_from(["asc", "desc"]),
        "limit": st.integers(1, 4),
    },
    optional={
        "due": st.sampled_from(["overdue", "today", "tomorrow", "next_7_days", "no_date"]),
        "priority": st.lists(st.sampled_from(["none", "low", "medium", "high"]), min_size=1, max_size=2),
        "labels": st.lists(st.sampled_from([*LABELS, "HOME", "nowhere"]), min_size=1, max_size=2),
        "query": st.sampled_from(["alpha", "BETA", "éclair", "%", "_", "a", "case"]),
    },
)


def matches(task: TaskRecord, query: dict[str, Any]) -> bool:
    status = query["status"]
    if status != "all" and task.completed != (status == "completed"):
        return False
    due = query.get("due")
    day = task.due_date
    if due == "overdue" and not (
        not task.completed
        and day is not None
        and (day < TODAY or (day == TODAY and (task.due_time or "99") < "12:00"))
    ):
        return False
    if due == "today" and day != TODAY:
        return False
    if due == "tomorrow" and day != TODAY + timedelta(days=1):
        return False
    if due == "next_7_days" and not (day is not None and TODAY <= day <= TODAY + timedelta(days=6)):
        return False
    if due == "no_date" and day is not None:
        return False
    if "priority" in query and task.priority not in query["priority"]:
        return False
    own = {label.casefold() for label in task.labels}
    if any(label.casefold() not in own for label in query.get("labels", [])):
        return False
    text = query.get("query")
    return text is None or text.casefold() in f"{task.title}\n{task.description or ''}".casefold()


def sort_key(task: TaskRecord, sort: str) -> tuple[Any, ...]:
    day, at_time, rank = task.due_date or NO_DATE, task.due_time or "", PRIORITY_RANK[task.priority]
    return {
        "created": (task.id,),
        "due": (day, at_time, rank, task.id),
        "priority": (rank, day, at_time, task.id),
        "updated": (task.updated_at, task.id),
    }[sort]


def reference(stored: list[TaskRecord], query: dict[str, Any]) -> list[int]:
    chosen = [task for task in stored if matches(task, query)]
    chosen.sort(key=lambda task: sort_key(task, query["sort"]), reverse=query["order"] == "desc")
    return [task.id for task in chosen]


async def store(db: Database, user: str, new: list[NewTask]) -> None:
    async with db.connect() as conn:
        for task in new:
            due = None
            if task.due_day is not None:
                day = (TODAY + timedelta(days=task.due_day)).isoformat()
                due = f"{day}T{task.due_time}" if task.due_time else day
            added = await tasks.add_task(
                conn,
                user_id=user,
                title=task.title,
                due=due,
                priority=task.priority,
                labels=list(task.labels),
                clock=CLOCK,
            )
            if task.completed:
                await tasks.complete_task(conn, user_id=user, task_id=added.task.id, clock=CLOCK)


async def everything(db: Database, user: str) -> list[TaskRecord]:
    async with db.connect() as conn:
        return (await tasks.list_tasks(conn, user_id=user, query=TaskQuery.of(limit=100), clock=CLOCK)).tasks


async def new_user(db: Database) -> str:
    user = f"pager-{secrets.token_hex(4)}"
    async with db.transaction() as session:
        await users.create_user(session, user_id=user, email=f"{user}@example.com")
    return user


async def page_through(db: Database, user: str, query: dict[str, Any], between: Any = None) -> list[int]:
    shown: list[int] = []
    cursor: str | None = None
    for _ in range(200):
        async with db.connect() as conn:
            page = await tasks.list_tasks(
                conn, user_id=user, query=TaskQuery.of(**query, cursor=cursor), clock=CLOCK
            )
        shown += [task.id for task in page.tasks]
        assert page.count <= query["limit"]
        cursor = page.next_cursor
        if cursor is None:
            return shown
        if between is not None:
            await between()
    raise AssertionError("paging did not end")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(new=st.lists(new_tasks, max_size=14), query=queries)
async def test_paging_returns_exactly_the_filtered_sorted_tasks_once_each(
    db: Database, new: list[NewTask], query: dict[str, Any]
) -> None:
    user = await new_user(db)
    await store(db, user, new)
    stored = await everything(db, user)
    expected = reference(stored, query)

    shown = await page_through(db, user, query)

    assert shown == expected
    async with db.connect() as conn:
        first = await tasks.list_tasks(conn, user_id=user, query=TaskQuery.of(**query), clock=CLOCK)
    assert first.total == len(expected)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    new=st.lists(new_tasks, min_size=1, max_size=12),
    query=queries,
    picks=st.lists(st.integers(0, 50), max_size=8),
)
async def test_writes_between_pages_never_skip_or_repeat_a_task_that_matched_throughout(
    db: Database, new: list[NewTask], query: dict[str, Any], picks: list[int]
) -> None:
    user = await new_user(db)
    await store(db, user, new)
    before = await everything(db, user)
    pending_picks = list(picks)
    # Completing a task changes its last update, so under sort=updated it moves by design.
    completes = query["sort"] != "updated"

    writes = [0]

    async def write() -> None:
        # A few writes: a new task may match and land later in the order, and a list that
        # grows one task per page would never end at one task a page.
        writes[0] += 1
        if writes[0] > 4:
            return
        async with db.connect() as conn:
            await tasks.add_task(
                conn, user_id=user, title="alpha added", labels=["work"], due="today", clock=CLOCK
            )
            if completes and pending_picks:
                target = before[pending_picks.pop() % len(before)]
                await tasks.complete_task(conn, user_id=user, task_id=target.id, clock=CLOCK)

    shown = await page_through(db, user, query, between=write)
    after = {task.id: task for task in await everything(db, user)}

    assert len(shown) == len(set(shown)), "a task was shown twice"
    throughout = [task.id for task in before if matches(task, query) and matches(after[task.id], query)]
    missing = [task_id for task_id in throughout if task_id not in shown]
    assert missing == [], f"skipped {missing}"
