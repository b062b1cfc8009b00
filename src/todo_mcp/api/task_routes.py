"""Task routes, on the paths the web front ends of this app family call."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Response, status

from todo_mcp.api.deps import ERRORS, DatabaseDep, OwnerDep
from todo_mcp.api.schemas import CompletionChange, TaskCreate, TaskPublic, TaskUpdate
from todo_mcp.api.strict_json import StrictJSONRoute
from todo_mcp.services import tasks

router = APIRouter(
    prefix="/api/{user_id}/tasks", tags=["tasks"], responses=ERRORS, route_class=StrictJSONRoute
)


@router.get("", summary="List the user's tasks, oldest first")
async def list_user_tasks(
    owner: OwnerDep, db: DatabaseDep, status: Literal["all", "pending", "completed"] = "all"
) -> list[TaskPublic]:
    async with db.connect() as conn:
        found = await tasks.list_tasks(conn, user_id=owner, status=status)
    return [TaskPublic.of(task) for task in found]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Add a task")
async def create_task(owner: OwnerDep, db: DatabaseDep, body: TaskCreate) -> TaskPublic:
    async with db.connect() as conn:
        task = await tasks.add_task(conn, user_id=owner, title=body.title, description=body.description)
    return TaskPublic.of(task)


@router.get("/{task_id}", summary="Get one task")
async def get_task(owner: OwnerDep, db: DatabaseDep, task_id: int) -> TaskPublic:
    async with db.connect() as conn:
        task = await tasks.get_task(conn, user_id=owner, task_id=task_id)
    return TaskPublic.of(task)


@router.put("/{task_id}", summary="Change a task's title, description or completion")
async def update_task(owner: OwnerDep, db: DatabaseDep, task_id: int, body: TaskUpdate) -> TaskPublic:
    async with db.connect() as conn:
        task = await tasks.edit_task(
            conn,
            user_id=owner,
            task_id=task_id,
            title=body.title,
            description=body.description,
            completed=body.completed,
        )
    return TaskPublic.of(task)


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a task")
async def delete_task(owner: OwnerDep, db: DatabaseDep, task_id: int) -> Response:
    async with db.connect() as conn:
        await tasks.delete_task(conn, user_id=owner, task_id=task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/{task_id}/complete", summary="Toggle a task's completion, or set it")
async def complete_task(
    owner: OwnerDep,
    db: DatabaseDep,
    task_id: int,
    body: Annotated[CompletionChange | None, Body()] = None,
) -> TaskPublic:
    """With no body (or no `completed`), flips the task between pending and completed."""
    completed = body.completed if body is not None else None
    async with db.connect() as conn:
        task = await tasks.set_task_completed(conn, user_id=owner, task_id=task_id, completed=completed)
    return TaskPublic.of(task)
