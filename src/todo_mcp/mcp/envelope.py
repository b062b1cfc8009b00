"""The envelope every tool returns, and the shapes of its `data`.

The same envelope travels as MCP structured content (checked against the output schema) and
as a JSON text block for clients that read only text; `isError` is true exactly when
`status` is "error".
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ConfigDict, Field

from todo_mcp.db.models import Task


class TaskOut(BaseModel):
    task_id: int = Field(description="The task's id; pass it to complete_task, update_task or delete_task.")
    title: str
    description: str | None
    completed: bool
    created_at: datetime = Field(description="ISO-8601, UTC.")
    updated_at: datetime = Field(description="ISO-8601, UTC.")

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        assert task.id is not None
        return cls(
            task_id=task.id,
            title=task.title,
            description=task.description,
            completed=task.completed,
            created_at=task.created_at,
            updated_at=task.updated_at,
        )


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


def _result(envelope: dict[str, Any], *, is_error: bool) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(envelope, ensure_ascii=False))],
        structured_content=envelope,
        is_error=is_error,
    )


def success(data: BaseModel, message: str) -> CallToolResult:
    envelope = {"status": "success", "data": data.model_dump(mode="json"), "message": message}
    return _result(envelope, is_error=False)


def failure(code: int, message: str) -> CallToolResult:
    envelope = {"status": "error", "data": {"error_code": code}, "message": message}
    return _result(envelope, is_error=True)
