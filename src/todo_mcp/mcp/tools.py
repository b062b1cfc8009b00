"""The five MCP tools: typed arguments in, one service call, the envelope out.

Each docstring is the description a model reads when choosing a tool, so it says what the tool
does, when to use it, and how it relates to the others. No rule lives here: lengths, ownership
and idempotence are the service layer's.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BeforeValidator, ConfigDict, Field

from todo_mcp.db.connection import Connection
from todo_mcp.mcp.envelope import (
    DeletedTaskResult,
    TaskListResult,
    TaskResult,
    UpdatedTaskResult,
    task_data,
    task_list_data,
)
from todo_mcp.mcp.runtime import ToolRuntime
from todo_mcp.services import tasks

UserId = Annotated[
    str,
    Field(
        description="The id of the user whose to-do list this is. "
        "When the server checks tokens, it must be the token's subject."
    ),
]


def _not_a_boolean(value: object) -> object:
    # Pydantic reads true as 1: a model that sends a boolean must not complete task 1.
    if isinstance(value, bool):
        raise ValueError("must be an integer, not true or false")
    return value


TaskId = Annotated[
    int,
    BeforeValidator(_not_a_boolean),
    Field(description="The task's id (task_id), as returned by add_task or list_tasks."),
]


def _summary(count: int, status: str) -> str:
    noun = "task" if count == 1 else "tasks"
    qualifier = "" if status == "all" else f"{status} "
    return f"Found {count} {qualifier}{noun}." if count else f"There are no {qualifier}tasks."


class TaskTools:
    """The tool functions, bound to one runtime (database and caller)."""

    def __init__(self, runtime: ToolRuntime) -> None:
        self._runtime = runtime

    async def add_task(
        self,
        user_id: UserId,
        title: Annotated[str, Field(description="A short name for the task, 1 to 200 characters.")],
        description: Annotated[
            str | None, Field(description="Optional details, up to 1000 characters.")
        ] = None,
    ) -> Annotated[CallToolResult, TaskResult]:
        """Add a new task to the user's to-do list.

        Use this when the user asks to add, remember, note or plan something to do. Returns the
        new task, including the task_id that the other tools take.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            task = await tasks.add_task(conn, user_id=user_id, title=title, description=description)
            return task_data(task), f"Task {task.id} '{task.title}' was added."

        return await self._runtime.run("add_task", user_id, operation)

    async def list_tasks(
        self,
        user_id: UserId,
        status: Annotated[
            Literal["all", "pending", "completed"],
            Field(description="'pending' for tasks not yet done, 'completed' for done ones, 'all' for both."),
        ] = "all",
    ) -> Annotated[CallToolResult, TaskListResult]:
        """List the user's tasks, oldest first.

        Use this to show the to-do list, to answer questions about it, or to find the task_id of
        a task before completing, updating or deleting it.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            found = await tasks.list_tasks(conn, user_id=user_id, status=status)
            return task_list_data(found), _summary(len(found), status)

        return await self._runtime.run("list_tasks", user_id, operation)

    async def complete_task(self, user_id: UserId, task_id: TaskId) -> Annotated[CallToolResult, TaskResult]:
        """Mark one of the user's tasks as done.

        Completing a task that is already done succeeds and changes nothing. If you do not know
        the task_id, call list_tasks first.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            done = await tasks.complete_task(conn, user_id=user_id, task_id=task_id)
            task = done.task
            if done.already_completed:
                return task_data(task), f"Task {task.id} '{task.title}' was already completed."
            return task_data(task), f"Task {task.id} '{task.title}' is now completed."

        return await self._runtime.run("complete_task", user_id, operation)

    async def delete_task(
        self, user_id: UserId, task_id: TaskId
    ) -> Annotated[CallToolResult, DeletedTaskResult]:
        """Permanently delete one of the user's tasks.

        This cannot be undone. To mark a task as done, use complete_task instead; delete only
        when the user asks to remove the task.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            task = await tasks.delete_task(conn, user_id=user_id, task_id=task_id)
            # As DeletedTaskOut.
            return {"task_id": task.id, "title": task.title}, f"Task {task.id} '{task.title}' was deleted."

        return await self._runtime.run("delete_task", user_id, operation)

    async def update_task(
        self,
        user_id: UserId,
        task_id: TaskId,
        title: Annotated[
            str | None, Field(description="The new title, 1 to 200 characters; omit to keep the current one.")
        ] = None,
        description: Annotated[
            str | None,
            Field(
                description="The new description, up to 1000 characters; an empty string removes it; "
                "omit to keep the current one."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, UpdatedTaskResult]:
        """Change the title and/or the description of one of the user's tasks.

        Give at least one of title and description. To mark a task as done use complete_task;
        this tool does not change completion.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            update = await tasks.update_task(
                conn, user_id=user_id, task_id=task_id, title=title, description=description
            )
            task = update.task
            # As UpdatedTaskOut.
            out = {"task_id": task.id, "updated_fields": update.updated_fields, "task": task_data(task)}
            return out, f"Task {task.id} was updated ({', '.join(update.updated_fields)})."

        return await self._runtime.run("update_task", user_id, operation)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    annotations: ToolAnnotations


# What each tool does to the user's data, for clients that ask before acting.
SPECS = (
    ToolSpec(
        "add_task",
        "Add a task",
        ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    ),
    ToolSpec(
        "list_tasks",
        "List tasks",
        ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    ),
    ToolSpec(
        "complete_task",
        "Complete a task",
        ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    ),
    ToolSpec(
        "delete_task",
        "Delete a task",
        ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
        ),
    ),
    ToolSpec(
        "update_task",
        "Update a task",
        # Overwrites the title or description: destructive in MCP's sense, and idempotent.
        ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    ),
)


class _TextStaysText(FuncMetadata):
    """Argument handling for tools whose arguments are all scalars.

    The SDK json-decodes string arguments whose type is not exactly `str` (a workaround for
    clients that send lists as text), so an optional description "null" became None and "[1]"
    was refused. Ours are text, kept as written.
    """

    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        return data


def _strict(tool: Tool) -> Tool:
    """Refuse unknown arguments (a misspelt `descripton` must not be dropped silently), and
    say so in the input schema (`additionalProperties: false`).

    The output schema is published without its model, which the SDK documents as "advertised
    but not validated": its check of every result re-validated the envelope the tool had just
    built from typed records (6% of an add_task's CPU, more of a list_tasks'). Every tool call
    in the tests is checked against the published schema instead (tests/mcp/conftest.py).
    """
    loose = tool.fn_metadata
    arg_model = cast(
        type[ArgModelBase],
        type(
            loose.arg_model.__name__,
            (loose.arg_model,),
            {"model_config": ConfigDict(extra="forbid"), "__module__": __name__},
        ),
    )
    tool.fn_metadata = _TextStaysText(
        arg_model=arg_model,
        output_schema=loose.output_schema,
        output_model=None,
        wrap_output=loose.wrap_output,
    )
    tool.parameters = arg_model.model_json_schema(by_alias=True)
    return tool


def build_tools(runtime: ToolRuntime) -> dict[str, Tool]:
    functions = TaskTools(runtime)
    built: dict[str, Tool] = {}
    for spec in SPECS:
        fn: Any = getattr(functions, spec.name)
        tool = Tool.from_function(
            fn,
            name=spec.name,
            title=spec.title,
            description=inspect.cleandoc(fn.__doc__ or ""),
            annotations=spec.annotations,
            structured_output=True,
        )
        built[spec.name] = _strict(tool)
    return built
