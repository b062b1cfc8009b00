"""Tasks: every rule and query about a user's to-do items.

A task that belongs to another user is reported exactly like a missing task, so no answer
reveals whether someone else's task id exists.

These are the calls agents make all day, so they run their SQL on the driver connection
(`db.connection`) rather than through the ORM; the tables are still the SQLModel ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from todo_mcp.db.connection import Connection, IntegrityViolation, Row
from todo_mcp.db.types import utcnow
from todo_mcp.services.errors import InvalidInput, TaskNotFound, UserNotFound
from todo_mcp.services.validation import check_row_id, check_user_id, clean_description, clean_title

TaskStatus = Literal["all", "pending", "completed"]
TaskField = Literal["title", "description"]

_INSERT = (
    "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $5) "
    "RETURNING id, user_id, title, description, completed, created_at, updated_at"
)
# One query answers both "does the user exist" and the list: a user without (matching) tasks
# comes back as one row of NULL task columns.
_LIST_ALL = (
    "SELECT users.id, tasks.id, tasks.user_id, tasks.title, tasks.description, tasks.completed, "
    "tasks.created_at, tasks.updated_at FROM users "
    "LEFT JOIN tasks ON tasks.user_id = users.id "
    "WHERE users.id = $1 ORDER BY tasks.id"
)
_LIST_BY_COMPLETION = (
    "SELECT users.id, tasks.id, tasks.user_id, tasks.title, tasks.description, tasks.completed, "
    "tasks.created_at, tasks.updated_at FROM users "
    "LEFT JOIN tasks ON tasks.user_id = users.id AND tasks.completed = $2 "
    "WHERE users.id = $1 ORDER BY tasks.id"
)
_GET = (
    "SELECT id, user_id, title, description, completed, created_at, updated_at "
    "FROM tasks WHERE id = $1 AND user_id = $2"
)
_USER_EXISTS = "SELECT 1 FROM users WHERE id = $1"
_SET_COMPLETED = "UPDATE tasks SET completed = $2, updated_at = $3 WHERE id = $1"
_SET_TEXT = "UPDATE tasks SET title = $2, description = $3, updated_at = $4 WHERE id = $1"
_DELETE = "DELETE FROM tasks WHERE id = $1"


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Completion:
    task: TaskRecord
    already_completed: bool


@dataclass(frozen=True)
class Update:
    task: TaskRecord
    updated_fields: list[TaskField]


def _record(conn: Connection, row: Row) -> TaskRecord:
    task_id, user_id, title, description, completed, created_at, updated_at = row
    return TaskRecord(
        id=task_id,
        user_id=user_id,
        title=title,
        description=description,
        completed=bool(completed),  # SQLite answers 0 or 1
        created_at=conn.read_time(created_at),
        updated_at=conn.read_time(updated_at),
    )


async def require_user(conn: Connection, *, user_id: str) -> None:
    """Raise `UserNotFound` unless the user exists."""
    if await conn.fetchrow(_USER_EXISTS, user_id) is None:
        raise UserNotFound(user_id)


async def add_task(
    conn: Connection, *, user_id: str, title: str, description: str | None = None
) -> TaskRecord:
    user_id = check_user_id(user_id)
    values = (clean_title(title), clean_description(description))
    try:
        row = await conn.fetchrow(_INSERT, user_id, *values, False, conn.time(utcnow()))
    except IntegrityViolation as exc:
        # The user foreign key is the only constraint an insert can break.
        raise UserNotFound(user_id) from exc
    assert row is not None
    return _record(conn, row)


async def list_tasks(conn: Connection, *, user_id: str, status: TaskStatus = "all") -> list[TaskRecord]:
    """The user's tasks, oldest first."""
    check_user_id(user_id)
    if status == "all":
        rows = await conn.fetch(_LIST_ALL, user_id)
    else:
        rows = await conn.fetch(_LIST_BY_COMPLETION, user_id, status == "completed")
    if not rows:
        raise UserNotFound(user_id)
    return [_record(conn, row[1:]) for row in rows if row[1] is not None]


async def get_task(conn: Connection, *, user_id: str, task_id: int, for_update: bool = False) -> TaskRecord:
    """The user's task, or `TaskNotFound` (or `UserNotFound` for an unknown user).

    `for_update` locks the row until the transaction ends, so a task deleted by a concurrent
    request is reported as not found instead of vanishing between our read and our write.
    """
    check_user_id(user_id)
    check_row_id(task_id, "task_id")
    row = await conn.fetchrow(_GET + conn.for_update if for_update else _GET, task_id, user_id)
    if row is None:
        # Only the failure path pays for telling an unknown user from a missing task.
        await require_user(conn, user_id=user_id)
        raise TaskNotFound(task_id)
    return _record(conn, row)


async def complete_task(conn: Connection, *, user_id: str, task_id: int) -> Completion:
    """Mark the task completed; completing a completed task succeeds and changes nothing."""
    async with conn.transaction():
        task = await get_task(conn, user_id=user_id, task_id=task_id, for_update=True)
        if task.completed:
            return Completion(task=task, already_completed=True)
        return Completion(task=await _set_completed(conn, task, True), already_completed=False)


async def _set_completed(conn: Connection, task: TaskRecord, completed: bool) -> TaskRecord:
    changed = replace(task, completed=completed, updated_at=utcnow())
    await conn.execute(_SET_COMPLETED, task.id, completed, conn.time(changed.updated_at))
    return changed


async def set_task_completed(
    conn: Connection, *, user_id: str, task_id: int, completed: bool | None
) -> TaskRecord:
    """Set the task's completion; None flips it (what web front ends send as an empty PATCH)."""
    async with conn.transaction():
        task = await get_task(conn, user_id=user_id, task_id=task_id, for_update=True)
        if completed is None:
            completed = not task.completed
        if task.completed == completed:
            return task
        return await _set_completed(conn, task, completed)


async def edit_task(
    conn: Connection,
    *,
    user_id: str,
    task_id: int,
    title: str | None = None,
    description: str | None = None,
    completed: bool | None = None,
) -> TaskRecord:
    """Change any of title, description and completion at once (a REST PUT)."""
    if title is None and description is None and completed is None:
        raise InvalidInput("Give at least one of title, description and completed; nothing was changed.")
    async with conn.transaction():
        if title is not None or description is not None:
            await update_task(conn, user_id=user_id, task_id=task_id, title=title, description=description)
        if completed is None:
            return await get_task(conn, user_id=user_id, task_id=task_id)
        return await set_task_completed(conn, user_id=user_id, task_id=task_id, completed=completed)


async def delete_task(conn: Connection, *, user_id: str, task_id: int) -> TaskRecord:
    """Delete the task and return it as it was."""
    async with conn.transaction():
        task = await get_task(conn, user_id=user_id, task_id=task_id, for_update=True)
        await conn.execute(_DELETE, task.id)
    return task


async def update_task(
    conn: Connection,
    *,
    user_id: str,
    task_id: int,
    title: str | None = None,
    description: str | None = None,
) -> Update:
    """Change the title, the description, or both; an empty description clears it."""
    if title is None and description is None:
        raise InvalidInput("Give a new title, a new description, or both; nothing was changed.")
    new_title = clean_title(title) if title is not None else None
    new_description = clean_description(description) if description is not None else None
    async with conn.transaction():
        task = await get_task(conn, user_id=user_id, task_id=task_id, for_update=True)
        updated: list[TaskField] = []
        changed = task
        if new_title is not None:
            changed = replace(changed, title=new_title)
            updated.append("title")
        if description is not None:
            changed = replace(changed, description=new_description)
            updated.append("description")
        if changed != task:
            # Repeating the same update leaves the task exactly as it was, updated_at included.
            changed = replace(changed, updated_at=utcnow())
            await conn.execute(
                _SET_TEXT, task.id, changed.title, changed.description, conn.time(changed.updated_at)
            )
    return Update(task=changed, updated_fields=updated)
