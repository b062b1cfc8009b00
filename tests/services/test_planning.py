"""Planning fields on both databases: due dates in the user's zone, priority, labels, completion
time, retried adds, and the list's filters, orders and pages."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.clock import FrozenClock, at
from tests.conftest import UserFactory
from todo_mcp.db.engine import Database
from todo_mcp.services import tasks, users
from todo_mcp.services.errors import InvalidInput, TaskNotFound, UserNotFound
from todo_mcp.services.task_listing import TaskQuery
from todo_mcp.services.tasks import TaskRecord

pytestmark = pytest.mark.anyio

# Tuesday 2026-12-01, 22:00 UTC: already Wednesday in Kiritimati, still Tuesday in Pago Pago.
INSTANT = "2026-12-01T22:00:00Z"


@pytest.fixture
def clock() -> FrozenClock:
    return at(INSTANT)


async def user_in(db: Database, user_factory: UserFactory, timezone: str) -> str:
    user = await user_factory()
    async with db.transaction() as session:
        await users.update_profile(session, user_id=user, timezone=timezone)
    return user


async def add(db: Database, user: str, title: str, clock: FrozenClock, **fields: Any) -> TaskRecord:
    async with db.connect() as conn:
        return (await tasks.add_task(conn, user_id=user, title=title, clock=clock, **fields)).task


async def listing(db: Database, user: str, clock: FrozenClock, **filters: Any) -> tasks.TaskPage:
    async with db.connect() as conn:
        return await tasks.list_tasks(conn, user_id=user, query=TaskQuery.of(**filters), clock=clock)


async def titles(db: Database, user: str, clock: FrozenClock, **filters: Any) -> list[str]:
    return [task.title for task in (await listing(db, user, clock, **filters)).tasks]


async def test_tomorrow_is_the_users_tomorrow_and_labelled_so(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    east = await user_in(db, user_factory, "Pacific/Kiritimati")
    west = await user_in(db, user_factory, "Pacific/Pago_Pago")

    east_task = await add(db, east, "Call the dentist", clock, due="tomorrow 09:00")
    west_task = await add(db, west, "Call the dentist", clock, due="tomorrow 09:00")

    assert (east_task.due_date, east_task.due_time, east_task.due_label) == (
        date(2026, 12, 3),
        "09:00",
        "tomorrow",
    )
    assert (west_task.due_date, west_task.due_time, west_task.due_label) == (
        date(2026, 12, 2),
        "09:00",
        "tomorrow",
    )
    east_page, west_page = await listing(db, east, clock), await listing(db, west, clock)
    assert (east_page.today, east_page.timezone) == (date(2026, 12, 2), "Pacific/Kiritimati")
    assert (west_page.today, west_page.timezone) == (date(2026, 12, 1), "Pacific/Pago_Pago")


async def test_labels_move_with_the_clock_at_the_users_midnight(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user = await user_in(db, user_factory, "Europe/Lisbon")
    await add(db, user, "Due Wednesday", clock, due="2026-12-02")
    assert (await listing(db, user, clock)).tasks[0].due_label == "tomorrow"
    clock.advance(hours=2)  # 00:00 in Lisbon
    assert (await listing(db, user, clock)).tasks[0].due_label == "today"
    clock.advance(days=1)
    assert (await listing(db, user, clock)).tasks[0].due_label == "overdue"
    assert await titles(db, user, clock, due="overdue") == ["Due Wednesday"]


async def test_priority_labels_and_completion_time_are_stored_and_reopening_clears_it(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user = await user_factory()
    task = await add(db, user, "Taxes", clock, priority="high", labels=["Money", " money ", "Home", "URGENT"])
    assert task.priority == "high"
    assert task.labels == ("Money", "Home", "URGENT")  # stripped, duplicates folded into the first
    assert task.completed_at is None

    async with db.connect() as conn:
        done = (await tasks.complete_task(conn, user_id=user, task_id=task.id, clock=clock)).task
        reopened = await tasks.update_task(conn, user_id=user, task_id=task.id, completed=False, clock=clock)
        again = await tasks.get_task(conn, user_id=user, task_id=task.id, clock=clock)

    assert done.completed
    assert done.completed_at is not None
    assert reopened.updated_fields == ["completed"]
    assert (reopened.task.completed, reopened.task.completed_at) == (False, None)
    assert again == reopened.task


async def test_update_replaces_labels_changes_due_and_priority_and_clears_with_empty_values(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user = await user_factory()
    task = await add(
        db, user, "Plan trip", clock, labels=["travel", "family"], due="2026-12-20", priority="low"
    )
    async with db.connect() as conn:
        changed = await tasks.update_task(
            conn, user_id=user, task_id=task.id, labels=["Work"], due="friday", priority="medium", clock=clock
        )
        cleared = await tasks.update_task(conn, user_id=user, task_id=task.id, labels=[], due="", clock=clock)
    assert changed.updated_fields == ["due", "priority", "labels"]
    assert (changed.task.labels, changed.task.due_date, changed.task.priority) == (
        ("Work",),
        date(2026, 12, 4),
        "medium",
    )
    assert (cleared.task.labels, cleared.task.due_date, cleared.task.due_time, cleared.task.due_label) == (
        (),
        None,
        None,
        None,
    )
    assert await titles(db, user, clock, labels=["work"]) == []
    assert await titles(db, user, clock, due="no_date") == ["Plan trip"]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"due": "someday"}, "due"),
        ({"due": "2027-03-28T01:30"}, "due"),
        ({"priority": "urgent"}, "priority"),
        ({"labels": ["x" * 41]}, "labels"),
        ({"labels": [""]}, "labels"),
        ({"labels": [f"l{n}" for n in range(11)]}, "labels"),
        ({"labels": ["ok", 5]}, "labels"),
        ({"labels": "work"}, "labels"),
        ({"labels": ["a\x00b"]}, "labels"),
        ({"client_request_id": ""}, "client_request_id"),
        ({"client_request_id": "x" * 65}, "client_request_id"),
        ({"client_request_id": "a\x07"}, "client_request_id"),
    ],
)
async def test_bad_planning_input_is_a_400_naming_it_and_writes_nothing(
    db: Database, user_factory: UserFactory, clock: FrozenClock, fields: dict[str, Any], named: str
) -> None:
    user = await user_in(db, user_factory, "Europe/Lisbon")
    task = await add(db, user, "Keep me", clock)
    update_fields = {key: value for key, value in fields.items() if key != "client_request_id"}
    async with db.connect() as conn:
        with pytest.raises(InvalidInput) as added:
            await tasks.add_task(conn, user_id=user, title="New", clock=clock, **fields)
        if update_fields:
            with pytest.raises(InvalidInput) as updated:
                await tasks.update_task(conn, user_id=user, task_id=task.id, clock=clock, **update_fields)
            assert named in updated.value.message
    assert named in added.value.message
    page = await listing(db, user, clock)
    assert [t.title for t in page.tasks] == ["Keep me"]
    assert page.tasks[0] == task


async def test_a_retried_add_with_the_same_client_request_id_returns_the_first_task(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user, other = await user_factory(), await user_factory()
    async with db.connect() as conn:
        first = await tasks.add_task(
            conn, user_id=user, title="Buy milk", client_request_id="req-1", clock=clock
        )
        retry = await tasks.add_task(
            conn, user_id=user, title="Buy milk!", client_request_id="req-1", clock=clock
        )
        fresh = await tasks.add_task(
            conn, user_id=user, title="Buy milk", client_request_id="req-2", clock=clock
        )
        # The same id from another user is that user's own.
        theirs = await tasks.add_task(
            conn, user_id=other, title="Theirs", client_request_id="req-1", clock=clock
        )
    assert (first.deduplicated, retry.deduplicated, fresh.deduplicated, theirs.deduplicated) == (
        False,
        True,
        False,
        False,
    )
    assert retry.task == first.task
    assert await titles(db, user, clock) == ["Buy milk", "Buy milk"]
    assert await titles(db, other, clock) == ["Theirs"]


async def test_a_client_request_id_older_than_a_day_makes_a_new_task(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user = await user_factory()
    async with db.connect() as conn:
        first = await tasks.add_task(
            conn, user_id=user, title="Weekly report", client_request_id="r", clock=clock
        )
    # As if made 25 hours ago.
    async with db.engine_connection() as connection:
        old = first.task.created_at - timedelta(hours=25)
        stored: object = (
            old if connection.dialect.name == "postgresql" else old.replace(tzinfo=None).isoformat(" ")
        )
        await connection.execute(text("UPDATE tasks SET created_at = :old"), {"old": stored})
        await connection.commit()
    async with db.connect() as conn:
        later = await tasks.add_task(
            conn, user_id=user, title="Weekly report", client_request_id="r", clock=clock
        )
    assert not later.deduplicated
    assert later.task.id != first.task.id
    assert await titles(db, user, clock) == ["Weekly report", "Weekly report"]


async def test_concurrent_retries_with_one_client_request_id_make_one_task(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user = await user_factory()

    async def attempt() -> tasks.Added:
        async with db.connect() as conn:
            return await tasks.add_task(
                conn, user_id=user, title="Once", labels=["x"], client_request_id="same", clock=clock
            )

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert len({result.task.id for result in results}) == 1
    assert sum(not result.deduplicated for result in results) == 1
    assert await titles(db, user, clock) == ["Once"]
    assert await titles(db, user, clock, labels=["X"]) == ["Once"]


async def test_filters_select_by_status_window_priority_labels_and_text(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user = await user_in(db, user_factory, "Pacific/Pago_Pago")  # today is Tuesday 2026-12-01, 11:00
    await add(db, user, "Late", clock, due="2026-11-30", priority="high", labels=["Work"])
    await add(db, user, "This morning", clock, due="2026-12-01T09:00", labels=["work", "calls"])
    await add(db, user, "Tonight", clock, due="2026-12-01T20:00", description="the Invoice for Q4")
    await add(db, user, "Tomorrow", clock, due="tomorrow", priority="medium")
    await add(db, user, "Next week", clock, due="2026-12-08")
    await add(db, user, "Undated", clock, priority="low", labels=["calls"])
    done = await add(db, user, "Done late", clock, due="2026-11-20")
    async with db.connect() as conn:
        await tasks.complete_task(conn, user_id=user, task_id=done.id, clock=clock)

    assert await titles(db, user, clock, due="overdue") == ["Late", "This morning"]
    assert await titles(db, user, clock, due="today") == ["This morning", "Tonight"]
    assert await titles(db, user, clock, due="tomorrow") == ["Tomorrow"]
    assert await titles(db, user, clock, due="next_7_days") == ["This morning", "Tonight", "Tomorrow"]
    assert await titles(db, user, clock, due="no_date") == ["Undated"]
    assert await titles(db, user, clock, due_from="2026-12-02", due_to="2026-12-08") == [
        "Tomorrow",
        "Next week",
    ]
    assert await titles(db, user, clock, due_to="2026-11-30") == ["Late", "Done late"]
    assert await titles(db, user, clock, status="completed") == ["Done late"]
    assert await titles(db, user, clock, priority=["high", "medium"]) == ["Late", "Tomorrow"]
    assert await titles(db, user, clock, labels=["WORK"]) == ["Late", "This morning"]
    assert await titles(db, user, clock, labels=["work", "calls"]) == ["This morning"]
    assert await titles(db, user, clock, query="invoice") == ["Tonight"]
    assert await titles(db, user, clock, query="INVOICE for q4") == ["Tonight"]
    assert await titles(db, user, clock, query="%") == []
    assert await titles(db, user, clock, query="_") == []
    assert await titles(db, user, clock, status="pending", labels=["calls"], sort="due") == [
        "This morning",
        "Undated",
    ]


async def test_sorts_order_dated_tasks_by_date_and_time_then_priority_and_undated_last(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user = await user_factory()
    await add(db, user, "undated high", clock, priority="high")
    await add(db, user, "dec 2 timed", clock, due="2026-12-02T08:00")
    await add(db, user, "dec 2 all day low", clock, due="2026-12-02", priority="low")
    await add(db, user, "dec 2 all day high", clock, due="2026-12-02", priority="high")
    await add(db, user, "dec 1", clock, due="2026-12-01T23:00")
    assert await titles(db, user, clock, sort="due") == [
        "dec 1",
        "dec 2 all day high",
        "dec 2 all day low",
        "dec 2 timed",
        "undated high",
    ]
    assert await titles(db, user, clock, sort="due", order="desc") == [
        "undated high",
        "dec 2 timed",
        "dec 2 all day low",
        "dec 2 all day high",
        "dec 1",
    ]
    assert await titles(db, user, clock, sort="priority") == [
        "dec 2 all day high",
        "undated high",
        "dec 2 all day low",
        "dec 1",
        "dec 2 timed",
    ]
    assert (await titles(db, user, clock))[0] == "undated high"  # created: oldest first


async def test_pages_join_up_and_the_answer_says_how_many_match(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    user = await user_factory()
    for n in range(7):
        await add(db, user, f"task {n}", clock, labels=["a"] if n % 2 else ["b"])
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await listing(db, user, clock, limit=2, cursor=cursor)
        pages += 1
        assert page.total == 7
        seen += [task.title for task in page.tasks]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 4
    assert seen == [f"task {n}" for n in range(7)]


async def test_a_cursor_is_refused_with_other_filters_for_another_user_or_when_forged(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    owner, other = await user_factory(), await user_factory()
    for n in range(3):
        await add(db, owner, f"mine {n}", clock, labels=["secret"])
        await add(db, other, f"theirs {n}", clock)
    cursor = (await listing(db, owner, clock, limit=1)).next_cursor
    assert cursor is not None
    head, _, mac = cursor.partition(".")
    for user, filters in [
        (owner, {"status": "pending"}),
        (owner, {"sort": "due"}),
        (owner, {"order": "desc"}),
        (other, {}),
        (owner, {"cursor": head + "." + mac[::-1]}),
        (owner, {"cursor": "garbage"}),
        (owner, {"cursor": head}),
    ]:
        with pytest.raises(InvalidInput, match="cursor") as refused:
            await listing(db, user, clock, limit=1, **({"cursor": cursor} | filters))
        assert "mine" not in refused.value.message
        assert "secret" not in refused.value.message
    # With the same filters it goes on, and the page size may change.
    assert [t.title for t in (await listing(db, owner, clock, limit=5, cursor=cursor)).tasks] == [
        "mine 1",
        "mine 2",
    ]


async def test_labels_query_and_counts_never_reach_another_users_tasks(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    owner, other = await user_factory(), await user_factory()
    await add(db, owner, "Quarterly invoice", clock, labels=["finance"])
    empty = await listing(db, other, clock, labels=["finance"], query="invoice")
    assert (empty.tasks, empty.total) == ([], 0)
    with pytest.raises(UserNotFound):
        await listing(db, "nobody-here", clock)
    task = (await listing(db, owner, clock)).tasks[0]
    async with db.connect() as conn:
        with pytest.raises(TaskNotFound):
            await tasks.update_task(conn, user_id=other, task_id=task.id, labels=["mine now"], clock=clock)


async def test_a_labelled_page_in_due_order_follows_every_change_of_date_priority_and_completion(
    db: Database, user_factory: UserFactory, clock: FrozenClock
) -> None:
    # Such a page is read from the label rows, which repeat the task's date, priority and state.
    user = await user_factory()
    first = await add(db, user, "first", clock, labels=["work"], due="2026-12-10")
    second = await add(db, user, "second", clock, labels=["work", "home"], due="2026-12-11")
    await add(db, user, "third", clock, labels=["work"])
    by_due = {"labels": ["work"], "status": "pending", "sort": "due"}
    assert await titles(db, user, clock, **by_due) == ["first", "second", "third"]
    async with db.connect() as conn:
        await tasks.update_task(conn, user_id=user, task_id=first.id, due="2026-12-12", clock=clock)
        await tasks.update_task(
            conn, user_id=user, task_id=second.id, priority="high", due="2026-12-12", clock=clock
        )
    assert await titles(db, user, clock, **by_due) == ["second", "first", "third"]
    async with db.connect() as conn:
        await tasks.complete_task(conn, user_id=user, task_id=second.id, clock=clock)
        await tasks.update_task(conn, user_id=user, task_id=first.id, due="", clock=clock)
    assert await titles(db, user, clock, **by_due) == ["first", "third"]
    assert await titles(db, user, clock, **(by_due | {"status": "completed"})) == ["second"]
    assert await titles(db, user, clock, labels=["work", "home"], sort="due") == ["second"]
    async with db.connect() as conn:
        await tasks.update_task(conn, user_id=user, task_id=second.id, completed=False, clock=clock)
    page = await listing(db, user, clock, **by_due, limit=1)
    assert ([t.title for t in page.tasks], page.total) == (["second"], 3)
