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

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import pydantic_core
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field

from todo_mcp.services.tasks import TaskRecord


class TaskOut(BaseModel):
    task_id: int = Field(description="The task's id; pass it to complete_task, update_task or delete_task.")
    title: str
    description: str | None
    completed: bool
    created_at: datetime = Field(description="ISO-8601, UTC.")
    updated_at: datetime = Field(description="ISO-8601, UTC.")


class TaskListOut(BaseModel):
    tasks: list[TaskOut]
    count: int


class DeletedTaskOut(BaseModel):
    task_id: int
    title: str


class UpdatedTaskOut(BaseModel):
    task_id: int
    updated_fields: list[Literal["title", "description"]]
    task: TaskOut


class ErrorData(BaseModel):
    error_code: int = Field(
        description="400 invalid input, 401 no or bad credentials, 403 not allowed for this user_id, "
        "404 user or task not found, 409 conflict, 503 database unavailable, 500 other."
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
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }


def task_list_data(tasks: Sequence[TaskRecord]) -> dict[str, Any]:
    """Tasks as `TaskListOut`."""
    return {"tasks": [task_data(task) for task in tasks], "count": len(tasks)}


def _result(envelope: dict[str, Any], *, is_error: bool) -> CallToolResult:
    # Datetimes become ISO-8601 text ("...Z"), exactly as the models would serialise them.
    structured: dict[str, Any] = pydantic_core.to_jsonable_python(envelope)
    return CallToolResult(
        content=[TextContent(type="text", text=pydantic_core.to_json(structured).decode())],
        structured_content=structured,
        is_error=is_error,
    )


def success(data: dict[str, Any], message: str) -> CallToolResult:
    return _result({"status": "success", "data": data, "message": message}, is_error=False)


def failure(code: int, message: str) -> CallToolResult:
    return _result({"status": "error", "data": {"error_code": code}, "message": message}, is_error=True)
