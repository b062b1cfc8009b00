"""Tasks: every rule and query about a user's to-do items.

A task that belongs to another user is reported exactly like a missing task, so no answer
reveals whether someone else's task id exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import and_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from todo_mcp.db.models import Task, User
from todo_mcp.db.types import utcnow
from todo_mcp.services.errors import InvalidInput, TaskNotFound, UserNotFound
from todo_mcp.services.users import require_user
from todo_mcp.services.validation import check_row_id, check_user_id, clean_description, clean_title

TaskStatus = Literal["all", "pending", "completed"]
TaskField = Literal["title", "description"]


@dataclass(frozen=True)
class Completion:
    task: Task
    already_completed: bool


@dataclass(frozen=True)
class Update:
    task: Task
    updated_fields: list[TaskField]


async def add_task(
    session: AsyncSession, *, user_id: str, title: str, description: str | None = None
) -> Task:
    now = utcnow()
    task = Task(
        user_id=check_user_id(user_id),
        title=clean_title(title),
        description=clean_description(description),
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    try:
        await session.flush()
    except IntegrityError as exc:
        # The user foreign key is the only constraint an insert can break.
        raise UserNotFound(user_id) from exc
    return task


async def list_tasks(session: AsyncSession, *, user_id: str, status: TaskStatus = "all") -> list[Task]:
    """The user's tasks, oldest first. One query answers both "does the user exist" and the list."""
    check_user_id(user_id)
    join_on = col(Task.user_id) == col(User.id)
    if status == "pending":
        join_on = and_(join_on, col(Task.completed).is_(False))
    elif status == "completed":
        join_on = and_(join_on, col(Task.completed).is_(True))
    rows = (
        await session.exec(
            select(User.id, Task)
            .outerjoin(Task, join_on)
            .where(col(User.id) == user_id)
            .order_by(col(Task.id))
        )
    ).all()
    if not rows:
        raise UserNotFound(user_id)
    return [task for _, task in rows if task is not None]


async def get_task(session: AsyncSession, *, user_id: str, task_id: int, for_update: bool = False) -> Task:
    """The user's task, or `TaskNotFound` (or `UserNotFound` for an unknown user).

    `for_update` locks the row until the transaction ends, so a task deleted by a concurrent
    request is reported as not found instead of vanishing between our read and our write.
    """
    check_user_id(user_id)
    check_row_id(task_id, "task_id")
    query = select(Task).where(col(Task.id) == task_id, col(Task.user_id) == user_id)
    task = (await session.exec(query.with_for_update() if for_update else query)).first()
    if task is None:
        # Only the failure path pays for telling an unknown user from a missing task.
        await require_user(session, user_id=user_id)
        raise TaskNotFound(task_id)
    return task


async def complete_task(session: AsyncSession, *, user_id: str, task_id: int) -> Completion:
    """Mark the task completed; completing a completed task succeeds and changes nothing."""
    task = await get_task(session, user_id=user_id, task_id=task_id, for_update=True)
    if task.completed:
        return Completion(task=task, already_completed=True)
    task.completed = True
    task.updated_at = utcnow()
    await session.flush()
    return Completion(task=task, already_completed=False)


async def set_task_completed(
    session: AsyncSession, *, user_id: str, task_id: int, completed: bool | None
) -> Task:
    """Set the task's completion; None flips it (what web front ends send as an empty PATCH)."""
    task = await get_task(session, user_id=user_id, task_id=task_id, for_update=True)
    if completed is None:
        completed = not task.completed
    if task.completed != completed:
        task.completed = completed
        task.updated_at = utcnow()
        await session.flush()
    return task


async def edit_task(
    session: AsyncSession,
    *,
    user_id: str,
    task_id: int,
    title: str | None = None,
    description: str | None = None,
    completed: bool | None = None,
) -> Task:
    """Change any of title, description and completion at once (a REST PUT)."""
    if title is None and description is None and completed is None:
        raise InvalidInput("Give at least one of title, description and completed; nothing was changed.")
    if title is not None or description is not None:
        await update_task(session, user_id=user_id, task_id=task_id, title=title, description=description)
    if completed is None:
        return await get_task(session, user_id=user_id, task_id=task_id)
    return await set_task_completed(session, user_id=user_id, task_id=task_id, completed=completed)


async def delete_task(session: AsyncSession, *, user_id: str, task_id: int) -> Task:
    """Delete the task and return it as it was."""
    task = await get_task(session, user_id=user_id, task_id=task_id, for_update=True)
    await session.delete(task)
    await session.flush()
    return task


async def update_task(
    session: AsyncSession,
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
    task = await get_task(session, user_id=user_id, task_id=task_id, for_update=True)
    updated: list[TaskField] = []
    changed = False
    if new_title is not None:
        changed = changed or task.title != new_title
        task.title = new_title
        updated.append("title")
    if description is not None:
        changed = changed or task.description != new_description
        task.description = new_description
        updated.append("description")
    if changed:
        # Repeating the same update leaves the task exactly as it was, updated_at included.
        task.updated_at = utcnow()
        await session.flush()
    return Update(task=task, updated_fields=updated)
