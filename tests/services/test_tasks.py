"""The task rules of the service layer, on SQLite and on PostgreSQL (the `db` fixture runs both)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta

import pytest

from tests.conftest import UserFactory
from todo_mcp.db.connection import Connection
from todo_mcp.db.engine import Database
from todo_mcp.services import tasks
from todo_mcp.services.errors import DomainError, InvalidInput, TaskNotFound, UserNotFound
from todo_mcp.services.task_listing import Status as TaskStatus
from todo_mcp.services.task_listing import TaskQuery

pytestmark = pytest.mark.anyio

TaskOperation = Callable[[Connection, str, int], Awaitable[object]]

# Every operation that names one task: each must treat ids and owners the same way.
TASK_OPERATIONS: dict[str, TaskOperation] = {
    "get": lambda s, u, t: tasks.get_task(s, user_id=u, task_id=t),
    "complete": lambda s, u, t: tasks.complete_task(s, user_id=u, task_id=t),
    "reopen": lambda s, u, t: tasks.set_task_completed(s, user_id=u, task_id=t, completed=False),
    "update": lambda s, u, t: tasks.update_task(s, user_id=u, task_id=t, title="New title"),
    "delete": lambda s, u, t: tasks.delete_task(s, user_id=u, task_id=t),
}

# Every task operation; for an unknown user each must say the user is unknown.
USER_OPERATIONS: dict[str, TaskOperation] = {
    "add": lambda s, u, _: tasks.add_task(s, user_id=u, title="Buy milk"),
    "list": lambda s, u, _: tasks.list_tasks(s, user_id=u),
    "list_pending": lambda s, u, _: tasks.list_tasks(s, user_id=u, query=TaskQuery(status="pending")),
    **TASK_OPERATIONS,
}


async def add(db: Database, user_id: str, title: str, description: str | None = None) -> tasks.TaskRecord:
    async with db.connect() as conn:
        return (await tasks.add_task(conn, user_id=user_id, title=title, description=description)).task


async def fetch(db: Database, user_id: str, task_id: int) -> tasks.TaskRecord:
    async with db.connect() as conn:
        return await tasks.get_task(conn, user_id=user_id, task_id=task_id)


async def titles(db: Database, user_id: str, status: TaskStatus = "all") -> list[str]:
    async with db.connect() as conn:
        page = await tasks.list_tasks(conn, user_id=user_id, query=TaskQuery(status=status))
        return [task.title for task in page.tasks]


async def outcome(db: Database, operation: TaskOperation, user_id: str, task_id: int) -> str:
    """The domain error an operation raises, by name and message, or "no error"."""
    try:
        async with db.connect() as conn:
            await operation(conn, user_id, task_id)
    except DomainError as exc:
        return f"{type(exc).__name__}: {exc.message}"
    return "no error"


def assert_utc(task: tasks.TaskRecord) -> None:
    assert task.created_at.tzinfo is not None
    assert task.created_at.utcoffset() == timedelta(0)
    assert task.updated_at.utcoffset() == timedelta(0)


# --- add_task ---------------------------------------------------------------------------------


async def test_added_task_is_stored_with_a_stripped_title_and_pending(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()

    added = await add(db, user, "  Buy milk \n", "  two litres  ")

    stored = await fetch(db, user, added.id)
    assert added.id is not None
    assert (stored.id, stored.user_id, stored.title, stored.description, stored.completed) == (
        added.id,
        user,
        "Buy milk",
        "two litres",
        False,
    )


async def test_added_task_without_description_has_none(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()

    added = await add(db, user, "Buy milk")

    assert (await fetch(db, user, added.id)).description is None


async def test_blank_description_on_add_is_stored_as_none(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()

    added = await add(db, user, "Buy milk", "   ")

    assert (await fetch(db, user, added.id)).description is None


@pytest.mark.parametrize("title", ["", "   ", "\t\n", "x" * 201, " " + "x" * 201 + " "])
async def test_empty_or_too_long_title_is_invalid_and_nothing_is_stored(
    db: Database, user_factory: UserFactory, title: str
) -> None:
    user = await user_factory()

    with pytest.raises(InvalidInput, match="title"):
        await add(db, user, title)

    assert await titles(db, user) == []


async def test_title_of_200_characters_is_accepted_after_stripping(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    title = "x" * 200

    added = await add(db, user, f"   {title}   ")

    assert (await fetch(db, user, added.id)).title == title


async def test_description_of_1000_characters_is_accepted(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    description = "d" * 1000

    added = await add(db, user, "Long one", description)

    assert (await fetch(db, user, added.id)).description == description


async def test_description_of_1001_characters_is_invalid(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()

    with pytest.raises(InvalidInput, match="description is 1001 characters; the limit is 1000"):
        await add(db, user, "Too long", "d" * 1001)

    assert await titles(db, user) == []


@pytest.mark.parametrize(
    ("title", "description", "field"),
    [
        ("Buy\x00milk", None, "title"),
        ("Buy milk", "two\x00litres", "description"),
        ("Buy \ud800 milk", None, "title"),
        ("Buy milk", "lone \udfff surrogate", "description"),
    ],
    ids=["nul-title", "nul-description", "surrogate-title", "surrogate-description"],
)
async def test_text_the_database_cannot_store_is_invalid_input_not_a_crash(
    db: Database, user_factory: UserFactory, title: str, description: str | None, field: str
) -> None:
    user = await user_factory()

    with pytest.raises(InvalidInput, match=field):
        await add(db, user, title, description)

    assert await titles(db, user) == []


@pytest.mark.parametrize("user_id", ["bad\x00user", "bad\ud800user"], ids=["nul", "surrogate"])
async def test_user_id_the_database_cannot_store_is_invalid_input(db: Database, user_id: str) -> None:
    async with db.connect() as conn:
        with pytest.raises(InvalidInput, match="user_id"):
            await tasks.list_tasks(conn, user_id=user_id)


@pytest.mark.parametrize(
    ("title", "description"),
    [
        ("日本語のタスク ✅", "Café — naïve façade, Ωμέγα, עברית, العربية"),
        ("🎉" * 200, "🧑\u200d💻 family: 👨\u200d👩\u200d👧\u200d👦 flags: 🇳🇿"),
        ("Robert'); DROP TABLE tasks;--", "' OR '1'='1'; DELETE FROM users; --"),
        ("100% of _all_ \\ tasks", "quotes \" and ' and `back` and $1 and :name"),
    ],
    ids=["unicode", "emoji", "sql-injection", "wildcards"],
)
async def test_unusual_text_is_stored_and_returned_verbatim(
    db: Database, user_factory: UserFactory, title: str, description: str
) -> None:
    user = await user_factory()

    added = await add(db, user, title, description)

    stored = await fetch(db, user, added.id)
    assert (stored.title, stored.description) == (title, description)
    # The tables are still there and still answer.
    assert await titles(db, user) == [title]


async def test_task_timestamps_are_timezone_aware_utc_when_read_back(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk")

    stored = await fetch(db, user, added.id)

    assert_utc(added)
    assert_utc(stored)
    assert stored.created_at.tzinfo == UTC
    assert stored.created_at == added.created_at
    assert stored.updated_at == added.updated_at


# --- list_tasks -------------------------------------------------------------------------------


async def test_tasks_are_listed_oldest_first_and_filtered_by_status(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    await add(db, user, "first")
    second = await add(db, user, "second")
    await add(db, user, "third")
    async with db.connect() as conn:
        await tasks.complete_task(conn, user_id=user, task_id=second.id)

    assert await titles(db, user) == ["first", "second", "third"]
    assert await titles(db, user, "pending") == ["first", "third"]
    assert await titles(db, user, "completed") == ["second"]


async def test_user_without_tasks_gets_empty_lists(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()

    assert await titles(db, user) == []
    assert await titles(db, user, "pending") == []
    assert await titles(db, user, "completed") == []


async def test_status_filter_with_no_match_is_an_empty_list(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    await add(db, user, "pending only")

    assert await titles(db, user, "completed") == []


async def test_list_shows_only_the_users_own_tasks(db: Database, user_factory: UserFactory) -> None:
    alice = await user_factory()
    bob = await user_factory()
    await add(db, alice, "alice's")
    await add(db, bob, "bob's")

    assert await titles(db, alice) == ["alice's"]
    assert await titles(db, bob) == ["bob's"]


# --- unknown users and other users' tasks -------------------------------------------------------


async def test_unknown_user_is_user_not_found_for_every_operation(
    db: Database, user_factory: UserFactory
) -> None:
    # The task exists (someone else's), so "unknown user" cannot be confused with "no such task".
    other = await user_factory()
    existing = await add(db, other, "someone else's")

    outcomes = {name: await outcome(db, op, "ghost", existing.id) for name, op in USER_OPERATIONS.items()}

    assert outcomes == dict.fromkeys(USER_OPERATIONS, f"UserNotFound: {UserNotFound('ghost').message}")
    assert await titles(db, other) == ["someone else's"]


@pytest.mark.parametrize("operation", list(TASK_OPERATIONS.values()), ids=list(TASK_OPERATIONS))
async def test_another_users_task_is_reported_exactly_like_a_missing_one(
    db: Database, user_factory: UserFactory, operation: TaskOperation
) -> None:
    owner = await user_factory()
    intruder = await user_factory()
    theirs = await add(db, owner, "owner's task", "private")
    assert theirs.id is not None
    missing_id = theirs.id + 1000

    async with db.connect() as conn:
        with pytest.raises(TaskNotFound) as for_theirs:
            await operation(conn, intruder, theirs.id)
    async with db.connect() as conn:
        with pytest.raises(TaskNotFound) as for_missing:
            await operation(conn, intruder, missing_id)

    assert type(for_theirs.value) is type(for_missing.value)
    assert for_theirs.value.code == for_missing.value.code == 404
    # The same sentence, differing only in the id the caller gave.
    assert for_theirs.value.message == for_missing.value.message.replace(str(missing_id), str(theirs.id))
    untouched = await fetch(db, owner, theirs.id)
    assert (untouched.title, untouched.description, untouched.completed) == ("owner's task", "private", False)
    assert untouched.updated_at == theirs.updated_at


@pytest.mark.parametrize("task_id", [0, -1, -(2**63), 2**63, 2**64], ids=["0", "-1", "-2^63", "2^63", "2^64"])
async def test_task_id_that_cannot_name_a_row_is_invalid_input_for_every_operation(
    db: Database, user_factory: UserFactory, task_id: int
) -> None:
    user = await user_factory()

    outcomes = {name: await outcome(db, op, user, task_id) for name, op in TASK_OPERATIONS.items()}

    expected = "InvalidInput: task_id must be a positive integer, as returned when the item was created."
    assert outcomes == dict.fromkeys(TASK_OPERATIONS, expected)


@pytest.mark.parametrize("task_id", [2**31 - 1, 2**31, 2**63 - 1], ids=["2^31-1", "2^31", "2^63-1"])
async def test_large_task_id_without_a_task_is_not_found_or_invalid_never_a_crash(
    db: Database, user_factory: UserFactory, task_id: int
) -> None:
    # Any answer but a domain error (e.g. a driver overflow) would reach callers as a 500.
    user = await user_factory()

    async with db.connect() as conn:
        with pytest.raises((TaskNotFound, InvalidInput)):
            await tasks.complete_task(conn, user_id=user, task_id=task_id)


# --- complete_task ----------------------------------------------------------------------------


async def test_completing_a_task_marks_it_completed_and_moves_updated_at(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk")

    async with db.connect() as conn:
        completion = await tasks.complete_task(conn, user_id=user, task_id=added.id)

    assert completion.already_completed is False
    assert completion.task.completed is True
    assert completion.task.updated_at >= added.updated_at
    stored = await fetch(db, user, added.id)
    assert stored.completed is True
    assert stored.created_at == added.created_at
    assert stored.updated_at == completion.task.updated_at


async def test_completing_a_completed_task_changes_nothing(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk")
    async with db.connect() as conn:
        first = await tasks.complete_task(conn, user_id=user, task_id=added.id)

    async with db.connect() as conn:
        second = await tasks.complete_task(conn, user_id=user, task_id=added.id)

    assert second.already_completed is True
    assert second.task.completed is True
    assert second.task.updated_at == first.task.updated_at
    stored = await fetch(db, user, added.id)
    assert (stored.completed, stored.updated_at) == (True, first.task.updated_at)


async def test_set_task_completed_false_reopens_a_completed_task(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk")
    async with db.connect() as conn:
        await tasks.complete_task(conn, user_id=user, task_id=added.id)

    async with db.connect() as conn:
        await tasks.set_task_completed(conn, user_id=user, task_id=added.id, completed=False)

    assert (await fetch(db, user, added.id)).completed is False
    assert await titles(db, user, "pending") == ["Buy milk"]


# --- update_task ------------------------------------------------------------------------------


async def test_update_with_neither_field_is_invalid_and_changes_nothing(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk", "two litres")

    async with db.connect() as conn:
        with pytest.raises(
            InvalidInput, match="at least one of title, description, due, priority, labels and completed"
        ):
            await tasks.update_task(conn, user_id=user, task_id=added.id)

    stored = await fetch(db, user, added.id)
    assert (stored.title, stored.description, stored.updated_at) == (
        "Buy milk",
        "two litres",
        added.updated_at,
    )


async def test_update_of_the_title_only_keeps_the_description(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk", "two litres")

    async with db.connect() as conn:
        update = await tasks.update_task(conn, user_id=user, task_id=added.id, title="  Buy oat milk ")

    assert update.updated_fields == ["title"]
    stored = await fetch(db, user, added.id)
    assert (stored.title, stored.description) == ("Buy oat milk", "two litres")
    assert stored.updated_at >= added.updated_at
    assert stored.created_at == added.created_at


async def test_update_of_the_description_only_keeps_the_title(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk", "two litres")

    async with db.connect() as conn:
        update = await tasks.update_task(conn, user_id=user, task_id=added.id, description="three")

    assert update.updated_fields == ["description"]
    stored = await fetch(db, user, added.id)
    assert (stored.title, stored.description) == ("Buy milk", "three")


async def test_update_of_both_fields_reports_both(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk")

    async with db.connect() as conn:
        update = await tasks.update_task(
            conn, user_id=user, task_id=added.id, title="Buy bread", description="rye"
        )

    assert update.updated_fields == ["title", "description"]
    assert (update.task.title, update.task.description) == ("Buy bread", "rye")
    stored = await fetch(db, user, added.id)
    assert (stored.title, stored.description) == ("Buy bread", "rye")


@pytest.mark.parametrize("description", ["", "   "], ids=["empty", "blank"])
async def test_empty_description_on_update_clears_it(
    db: Database, user_factory: UserFactory, description: str
) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk", "two litres")

    async with db.connect() as conn:
        update = await tasks.update_task(conn, user_id=user, task_id=added.id, description=description)

    assert update.updated_fields == ["description"]
    stored = await fetch(db, user, added.id)
    assert (stored.title, stored.description) == ("Buy milk", None)


@pytest.mark.parametrize(
    ("title", "description"),
    [("   ", None), ("x" * 201, None), (None, "d" * 1001), ("ok", "nul\x00"), ("bad\ud800", None)],
    ids=["blank-title", "long-title", "long-description", "nul-description", "surrogate-title"],
)
async def test_invalid_update_is_rejected_and_changes_nothing(
    db: Database, user_factory: UserFactory, title: str | None, description: str | None
) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk", "two litres")

    async with db.connect() as conn:
        with pytest.raises(InvalidInput):
            await tasks.update_task(
                conn, user_id=user, task_id=added.id, title=title, description=description
            )

    stored = await fetch(db, user, added.id)
    assert (stored.title, stored.description, stored.updated_at) == (
        "Buy milk",
        "two litres",
        added.updated_at,
    )


# --- delete_task ------------------------------------------------------------------------------


async def test_deleted_task_is_returned_and_gone(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    keep = await add(db, user, "keep me")
    doomed = await add(db, user, "delete me", "bye")

    async with db.connect() as conn:
        deleted = await tasks.delete_task(conn, user_id=user, task_id=doomed.id)

    assert (deleted.id, deleted.title, deleted.description) == (doomed.id, "delete me", "bye")
    with pytest.raises(TaskNotFound):
        await fetch(db, user, doomed.id)
    assert await titles(db, user) == ["keep me"]
    assert (await fetch(db, user, keep.id)).title == "keep me"


async def test_deleting_a_deleted_task_is_not_found(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    added = await add(db, user, "Buy milk")
    async with db.connect() as conn:
        await tasks.delete_task(conn, user_id=user, task_id=added.id)

    async with db.connect() as conn:
        with pytest.raises(TaskNotFound, match=f"Task {added.id} was not found"):
            await tasks.delete_task(conn, user_id=user, task_id=added.id)
