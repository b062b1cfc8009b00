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
    AddedTaskResult,
    DeletedTaskResult,
    TaskListResult,
    TaskResult,
    UpdatedTaskResult,
    added_task_data,
    task_data,
    task_list_data,
)
from todo_mcp.mcp.runtime import ToolRuntime
from todo_mcp.services import tasks
from todo_mcp.services.task_listing import TaskQuery
from todo_mcp.services.tasks import TaskPage, TaskRecord

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


DUE_DESCRIPTION = (
    "When the task is due, in the user's own time zone; send it as the user said it and let the "
    "server resolve it (never convert to UTC yourself): YYYY-MM-DD, YYYY-MM-DDTHH:MM (the user's "
    "local time), an ISO 8601 date-time with an offset (converted to the user's zone), or one of "
    "the words today, tomorrow, a weekday name such as friday (the next one, never today), "
    "'next week' (next Monday), 'in 3 days', each optionally with a 24-hour time: "
    "'tomorrow 09:30', 'friday at 17:00'."
)
Priority = Literal["none", "low", "medium", "high"]


def _page_message(page: TaskPage) -> str:
    described = page.described.replace("tasks", "task", 1) if page.total == 1 else page.described
    if page.total == 0:
        return f"There are no {page.described}."
    if page.next_cursor is not None:
        return f"Showing {page.count} of {page.total} {described}; pass next_cursor for more."
    if page.count == page.total:
        return f"Found {page.total} {described}."
    return f"Showing the last {page.count} of {page.total} {described}."


def _due_words(task: TaskRecord) -> str:
    if task.due_date is None:
        return ""
    when = task.due_label or task.due_date.isoformat()
    at = f" at {task.due_time}" if task.due_time else ""
    return (
        f", due {when}{at}" if task.due_label is None else f", due {when} ({task.due_date.isoformat()}){at}"
    )


def _with_note(message: str, note: str | None) -> str:
    return f"{message} Note: {note}" if note else message


class TaskTools:
    """The tool functions, bound to one runtime (database, caller, clock)."""

    def __init__(self, runtime: ToolRuntime) -> None:
        self._runtime = runtime

    async def add_task(
        self,
        user_id: UserId,
        title: Annotated[str, Field(description="A short name for the task, 1 to 200 characters.")],
        description: Annotated[
            str | None, Field(description="Optional details, up to 1000 characters.")
        ] = None,
        due: Annotated[str | None, Field(description=DUE_DESCRIPTION + " Omit for no due date.")] = None,
        priority: Annotated[
            Priority | None, Field(description="How urgent it is: high, medium, low, or none (the default).")
        ] = None,
        labels: Annotated[
            list[str] | None,
            Field(
                max_length=10,
                description='Up to 10 short labels of 1 to 40 characters, such as ["work", "errands"]; '
                "compared without regard to case.",
            ),
        ] = None,
        client_request_id: Annotated[
            str | None,
            Field(
                max_length=64,
                description="Optional: an id you make once for this task (a UUID) and send again if you "
                "retry this call, say after a timeout. A retry within 24 hours returns the task made the "
                "first time, with deduplicated true, instead of adding it twice.",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, AddedTaskResult]:
        """Add a new task to the user's to-do list, optionally with a due date, priority and labels.

        Use this when the user asks to add, remember, note or plan something to do. For "remind me
        to call the dentist tomorrow at 9" send title "Call the dentist" and due "tomorrow 09:00":
        the server reads it in the user's time zone, so never work out dates or offsets yourself.
        Returns the new task, with the task_id that the other tools take and its due_label.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            added = await tasks.add_task(
                conn,
                user_id=user_id,
                title=title,
                description=description,
                due=due,
                priority=priority,
                labels=labels,
                client_request_id=client_request_id,
                clock=self._runtime.clock,
            )
            task = added.task
            if added.deduplicated:
                message = (
                    f"Task {task.id} '{task.title}' was already added by an earlier call with this "
                    "client_request_id; nothing new was written."
                )
            else:
                message = f"Task {task.id} '{task.title}' was added{_due_words(task)}."
            return added_task_data(added), _with_note(message, added.note)

        return await self._runtime.run("add_task", user_id, operation)

    async def list_tasks(
        self,
        user_id: UserId,
        status: Annotated[
            Literal["all", "pending", "completed"],
            Field(description="'pending' for tasks not yet done, 'completed' for done ones, 'all' for both."),
        ] = "all",
        due: Annotated[
            Literal["overdue", "today", "tomorrow", "next_7_days", "no_date"] | None,
            Field(
                description="Only tasks due in this window of the user's local calendar: overdue (pending "
                "and past due), today, tomorrow, next_7_days (today and the 6 days after), no_date (undated)."
            ),
        ] = None,
        due_from: Annotated[
            str | None,
            Field(
                description="Only tasks due on or after this date: YYYY-MM-DD, or today, tomorrow, a weekday."
            ),
        ] = None,
        due_to: Annotated[
            str | None,
            Field(
                description="Only tasks due on or before this date: YYYY-MM-DD, or today, tomorrow, "
                "a weekday."
            ),
        ] = None,
        priority: Annotated[
            list[Priority] | None,
            Field(description='Only tasks of these priorities, such as ["high"] or ["high", "medium"].'),
        ] = None,
        labels: Annotated[
            list[str] | None,
            Field(max_length=10, description="Only tasks that have every one of these labels (any case)."),
        ] = None,
        query: Annotated[
            str | None,
            Field(
                max_length=200,
                description="Only tasks whose title or description contains this text (any case).",
            ),
        ] = None,
        sort: Annotated[
            Literal["created", "due", "priority", "updated"],
            Field(
                description="created: oldest first (the default). due: dated tasks by date and time, then "
                "undated ones, ties by priority. priority: high first, then by due date. "
                "updated: by last change."
            ),
        ] = "created",
        order: Annotated[Literal["asc", "desc"], Field(description="asc (the default) or desc.")] = "asc",
        limit: Annotated[int, Field(ge=1, le=100, description="Tasks per page, 1 to 100 (default 50).")] = 50,
        cursor: Annotated[
            str | None,
            Field(
                description="next_cursor from the previous answer, to get the next page; send every other "
                "argument unchanged."
            ),
        ] = None,
    ) -> Annotated[CallToolResult, TaskListResult]:
        """List the user's tasks that match the filters, one page at a time.

        Use this to show the to-do list, to answer questions about it ("what's overdue?", "only the
        urgent ones", "find the invoice task"), or to find the task_id of a task before completing,
        updating or deleting it. Dates are the user's: today, tomorrow and overdue are worked out in
        their time zone, and each task carries due_label. The answer has count (this page), total
        (all matches), today and timezone; when next_cursor is not null there are more: call again
        with cursor set to it.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            page = await tasks.list_tasks(
                conn,
                user_id=user_id,
                query=TaskQuery.of(
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
                ),
                codec=self._runtime.cursors,
                clock=self._runtime.clock,
            )
            return task_list_data(page), _page_message(page)

        return await self._runtime.run("list_tasks", user_id, operation)

    async def complete_task(self, user_id: UserId, task_id: TaskId) -> Annotated[CallToolResult, TaskResult]:
        """Mark one of the user's tasks as done.

        Completing a task that is already done succeeds and changes nothing. To reopen a task, use
        update_task with completed false. If you do not know the task_id, call list_tasks first.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            done = await tasks.complete_task(
                conn, user_id=user_id, task_id=task_id, clock=self._runtime.clock
            )
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
            task = await tasks.delete_task(conn, user_id=user_id, task_id=task_id, clock=self._runtime.clock)
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
        due: Annotated[
            str | None,
            Field(description=DUE_DESCRIPTION + " An empty string removes the due date; omit to keep it."),
        ] = None,
        priority: Annotated[
            Priority | None,
            Field(description="The new priority: high, medium, low or none; omit to keep it."),
        ] = None,
        labels: Annotated[
            list[str] | None,
            Field(
                max_length=10,
                description="The task's new labels, replacing all current ones; [] removes them; "
                "omit to keep them.",
            ),
        ] = None,
        completed: Annotated[
            bool | None,
            Field(description="false reopens a completed task; true marks it done; omit to keep it."),
        ] = None,
    ) -> Annotated[CallToolResult, UpdatedTaskResult]:
        """Change one of the user's tasks: its title, description, due date, priority, labels, or
        whether it is done.

        Give at least one field; the others stay as they are. Use completed false to reopen a task
        that was completed by mistake. updated_fields in the answer names what was changed.
        """

        async def operation(conn: Connection) -> tuple[dict[str, Any], str]:
            update = await tasks.update_task(
                conn,
                user_id=user_id,
                task_id=task_id,
                title=title,
                description=description,
                due=due,
                priority=priority,
                labels=labels,
                completed=completed,
                clock=self._runtime.clock,
            )
            task = update.task
            # As UpdatedTaskOut.
            out = {"task_id": task.id, "updated_fields": update.updated_fields, "task": task_data(task)}
            message = f"Task {task.id} was updated ({', '.join(update.updated_fields)}){_due_words(task)}."
            return out, _with_note(message, update.note)

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
