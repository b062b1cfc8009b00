"""The envelope every tool returns, and the shapes of its `data`.

The same envelope travels as MCP structured content (described by the output schema) and
as a JSON text block for clients that read only text; `isError` is true exactly when
`status` is "error".

The models below declare the shapes (they are the tools' published output schemas; every tool
call in the tests is checked against them, the server does not re-check each result, see
tools._strict); the data itself is built as plain dicts from the service's records and turned
into JSON values in one pass, which costs a third of building the models.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

import pydantic_core
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field

from todo_mcp.services.tasks import Added, TaskPage, TaskRecord


class TaskOut(BaseModel):
    task_id: int = Field(description="The task's id; pass it to complete_task, update_task or delete_task.")
    title: str
    description: str | None
    completed: bool
    due_date: date | None = Field(description="The user's local calendar date the task is due, YYYY-MM-DD.")
    due_time: str | None = Field(
        description="The user's local wall-clock time it is due, HH:MM; null for all day."
    )
    due_label: Literal["overdue", "today", "tomorrow"] | None = Field(
        description="Worked out in the user's time zone now: overdue (pending and past due), today, "
        "tomorrow, or null. Repeat it instead of comparing dates yourself."
    )
    priority: Literal["none", "low", "medium", "high"]
    labels: list[str]
    completed_at: datetime | None = Field(description="ISO-8601, UTC; null while the task is pending.")
    created_at: datetime = Field(description="ISO-8601, UTC.")
    updated_at: datetime = Field(description="ISO-8601, UTC.")


class AddedTaskOut(TaskOut):
    deduplicated: Literal[True] | None = Field(
        default=None,
        description="Present, and true, only when client_request_id matched an earlier add_task: this is "
        "the task that call made, and nothing new was written.",
    )


class TaskListOut(BaseModel):
    tasks: list[TaskOut]
    count: int = Field(description="Tasks on this page.")
    total: int = Field(description="Tasks matching the filters, on every page.")
    next_cursor: str | None = Field(
        description="Pass as cursor, with the same filters, for the next page; null on the last page."
    )
    today: date = Field(description="The user's local date now, YYYY-MM-DD.")
    timezone: str = Field(description="The user's IANA time zone, in which dates are read and labelled.")


class DeletedTaskOut(BaseModel):
    task_id: int
    title: str


class UpdatedTaskOut(BaseModel):
    task_id: int
    updated_fields: list[Literal["title", "description", "due", "priority", "labels", "completed"]]
    task: TaskOut


class ErrorData(BaseModel):
    error_code: int = Field(
        description="400 invalid input, 401 no or bad credentials, 403 not allowed for this user_id, "
        "404 user or task not found, 409 conflict, 429 too many calls, 503 database unavailable, "
        "500 other."
    )
    retry_after_seconds: int | None = Field(
        default=None, description="With 429: wait this many seconds before calling again."
    )


DataT = TypeVar("DataT", bound=BaseModel)


class Envelope(BaseModel, Generic[DataT]):
    model_config = ConfigDict(extra="forbid")

    status: Literal["success", "error"]
    data: DataT | ErrorData
    message: str = Field(description="One human-readable sentence about the outcome.")


# Named subclasses give each tool's output schema a readable title.
class TaskResult(Envelope[TaskOut]):
    pass


class AddedTaskResult(Envelope[AddedTaskOut]):
    pass


class TaskListResult(Envelope[TaskListOut]):
    pass


class DeletedTaskResult(Envelope[DeletedTaskOut]):
    pass


class UpdatedTaskResult(Envelope[UpdatedTaskOut]):
    pass


def task_data(task: TaskRecord) -> dict[str, Any]:
    """A task as `TaskOut`."""
    return {
        "task_id": task.id,
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "due_date": task.due_date,
        "due_time": task.due_time,
        "due_label": task.due_label,
        "priority": task.priority,
        "labels": list(task.labels),
        "completed_at": task.completed_at,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }


def added_task_data(added: Added) -> dict[str, Any]:
    """An added task as `AddedTaskOut`: the task, exactly as list_tasks shows it, unless deduplicated."""
    data = task_data(added.task)
    if added.deduplicated:
        data["deduplicated"] = True
    return data


def task_list_data(page: TaskPage) -> dict[str, Any]:
    """A page of tasks as `TaskListOut`."""
    return {
        "tasks": [task_data(task) for task in page.tasks],
        "count": page.count,
        "total": page.total,
        "next_cursor": page.next_cursor,
        "today": page.today,
        "timezone": page.timezone,
    }


def _result(envelope: dict[str, Any], *, is_error: bool) -> CallToolResult:
    # Datetimes become ISO-8601 text ("...Z"), exactly as the models would serialise them.
    text = pydantic_core.to_json(envelope)
    structured: dict[str, Any] = pydantic_core.from_json(text)
    return CallToolResult(
        content=[TextContent(type="text", text=text.decode())],
        structured_content=structured,
        is_error=is_error,
    )


def success(data: dict[str, Any], message: str) -> CallToolResult:
    return _result({"status": "success", "data": data, "message": message}, is_error=False)


def failure(code: int, message: str, *, retry_after_seconds: int | None = None) -> CallToolResult:
    data: dict[str, Any] = {"error_code": code}
    if retry_after_seconds is not None:
        data["retry_after_seconds"] = retry_after_seconds
    return _result({"status": "error", "data": data, "message": message}, is_error=True)
