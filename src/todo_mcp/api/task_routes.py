"""Task routes, on the paths the web front ends of this app family call."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request, Response, status

from todo_mcp.api.deps import ERRORS, DatabaseDep, OwnerDep
from todo_mcp.api.schemas import (
    AddedTaskPublic,
    CompletionChange,
    Priority,
    TaskCreate,
    TaskPagePublic,
    TaskPublic,
    TaskUpdate,
)
from todo_mcp.api.strict_json import StrictJSONRoute
from todo_mcp.services import tasks
from todo_mcp.services.dates import Clock
from todo_mcp.services.task_listing import LIMIT_DEFAULT, LIMIT_MAX, CursorCodec, TaskQuery

router = APIRouter(
    prefix="/api/{user_id}/tasks", tags=["tasks"], responses=ERRORS, route_class=StrictJSONRoute
)


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


@router.get("", summary="List the user's tasks: filtered, sorted, a page at a time")
async def list_user_tasks(
    owner: OwnerDep,
    db: DatabaseDep,
    request: Request,
    status: Literal["all", "pending", "completed"] = "all",
    due: Annotated[
        Literal["overdue", "today", "tomorrow", "next_7_days", "no_date"] | None,
        Query(description="A window of the user's local calendar; overdue means pending and past due."),
    ] = None,
    due_from: Annotated[
        str | None, Query(description="On or after this date: YYYY-MM-DD or today, tomorrow, a weekday.")
    ] = None,
    due_to: Annotated[str | None, Query(description="On or before this date, in the same forms.")] = None,
    priority: Annotated[
        list[Priority] | None, Query(description="Repeat for several: ?priority=high&priority=medium.")
    ] = None,
    labels: Annotated[
        list[str] | None, Query(description="Tasks having all of these labels: ?labels=work&labels=urgent.")
    ] = None,
    query: Annotated[str | None, Query(description="Text in the title or description, any case.")] = None,
    sort: Literal["created", "due", "priority", "updated"] = "created",
    order: Literal["asc", "desc"] = "asc",
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description=f"1-{LIMIT_MAX}.")] = LIMIT_DEFAULT,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> TaskPagePublic:
    codec: CursorCodec = request.app.state.cursors
    task_query = TaskQuery.of(
        status=status,
        due=due,
        due_from=due_from,
        due_to=due_to,
        priority=priority,
        labels=labels,
        query=query,
        sort=sort,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    async with db.connect() as conn:
        page = await tasks.list_tasks(
            conn, user_id=owner, query=task_query, codec=codec, clock=clock_of(request)
        )
    return TaskPagePublic.of(page)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Add a task",
    responses={
        200: {"model": AddedTaskPublic, "description": "A retry: the task its client_request_id made."}
    },
)
async def create_task(
    owner: OwnerDep, db: DatabaseDep, body: TaskCreate, request: Request, response: Response
) -> AddedTaskPublic:
    async with db.connect() as conn:
        added = await tasks.add_task(
            conn,
            user_id=owner,
            title=body.title,
            description=body.description,
            due=body.due,
            priority=body.priority,
            labels=body.labels,
            client_request_id=body.client_request_id,
            clock=clock_of(request),
        )
    if added.deduplicated:
        response.status_code = status.HTTP_200_OK
    return AddedTaskPublic(**TaskPublic.of(added.task).model_dump(), deduplicated=added.deduplicated)


@router.get("/{task_id}", summary="Get one task")
async def get_task(owner: OwnerDep, db: DatabaseDep, task_id: int, request: Request) -> TaskPublic:
    async with db.connect() as conn:
        task = await tasks.get_task(conn, user_id=owner, task_id=task_id, clock=clock_of(request))
    return TaskPublic.of(task)


@router.put("/{task_id}", summary="Change any of a task's fields")
async def update_task(
    owner: OwnerDep, db: DatabaseDep, task_id: int, body: TaskUpdate, request: Request
) -> TaskPublic:
    async with db.connect() as conn:
        update = await tasks.update_task(
            conn,
            user_id=owner,
            task_id=task_id,
            title=body.title,
            description=body.description,
            due=body.due,
            priority=body.priority,
            labels=body.labels,
            completed=body.completed,
            clock=clock_of(request),
        )
    return TaskPublic.of(update.task)


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
    request: Request,
    body: Annotated[CompletionChange | None, Body()] = None,
) -> TaskPublic:
    """With no body (or no `completed`), flips the task between pending and completed."""
    completed = body.completed if body is not None else None
    async with db.connect() as conn:
        task = await tasks.set_task_completed(
            conn, user_id=owner, task_id=task_id, completed=completed, clock=clock_of(request)
        )
    return TaskPublic.of(task)
