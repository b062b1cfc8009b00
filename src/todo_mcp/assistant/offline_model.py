"""The built-in model: rules instead of a language model, behind the Agents SDK's `Model`
interface, so that with no model configured the assistant runs the very same path (Runner, MCP
client, tools, history) as with a real one.

Each call it is given the conversation so far and decides one step: call a tool, or answer.
It keeps no state of its own: the step follows from the user's latest message (read by
`phrases.understand`), the tool answers already in this turn's input, and, for "the second
one", the question it asked in the previous assistant message.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import ModelResponse, TResponseInputItem, TResponseOutputItem, TResponseStreamEvent
from agents.model_settings import ModelSettings
from agents.models.interface import Model, ModelTracing
from agents.tool import Tool
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam

from todo_mcp.assistant.agent import envelope_of
from todo_mcp.assistant.instructions import local_date_of, user_id_of
from todo_mcp.assistant.phrases import (
    AddTask,
    ChangeTask,
    Chat,
    Choice,
    ListTasks,
    Request,
    TaskRef,
    pick,
    significant_words,
    understand,
)

CAPABILITIES = (
    'I can add tasks ("add call the dentist tomorrow at 9, high priority, #health"), show them '
    '("what\'s due today?", "what\'s overdue?", "show tasks labelled work", "find the invoice task"), '
    "and complete, reopen, rename, re-date, re-prioritise, label or delete one "
    '("complete the dentist task", "move the report to friday").'
)
ASK_BACK = "Which one should I"
SHOWN_MAX = 10
SEARCH_LIMIT = 100

_VERBS = {
    "complete": "complete",
    "reopen": "reopen",
    "delete": "delete",
    "rename": "rename",
    "redate": "re-date",
    "undate": "take the due date off",
    "prioritize": "re-prioritise",
    "label": "label",
}


@dataclass(frozen=True, slots=True)
class Step:
    """A tool call of this turn and the envelope it got."""

    name: str
    arguments: dict[str, Any]
    envelope: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.envelope.get("status") == "success"

    @property
    def data(self) -> dict[str, Any]:
        data = self.envelope.get("data")
        return data if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Say:
    text: str


Decision = Call | Say


@dataclass(frozen=True, slots=True)
class Conversation:
    """The model's input, read: the latest user message, what came before, this turn's steps."""

    message: str
    earlier: Sequence[tuple[str, str]]
    steps: Sequence[Step]

    @classmethod
    def of(cls, items: str | list[TResponseInputItem]) -> Conversation:
        if isinstance(items, str):
            return cls(message=items, earlier=(), steps=())
        messages: list[tuple[str, str]] = []
        calls: dict[str, tuple[str, dict[str, Any]]] = {}
        steps: list[Step] = []
        for item in items:
            entry: dict[str, Any] = dict(item)
            role = entry.get("role")
            if role in ("user", "assistant") and entry.get("type", "message") == "message":
                messages.append((role, _text(entry.get("content"))))
                steps = []
            elif entry.get("type") == "function_call":
                calls[str(entry.get("call_id"))] = (
                    str(entry.get("name")),
                    _json_object(entry.get("arguments")),
                )
            elif entry.get("type") == "function_call_output":
                name, arguments = calls.get(str(entry.get("call_id")), ("", {}))
                steps.append(Step(name=name, arguments=arguments, envelope=envelope_of(entry.get("output"))))
        last_user = max((i for i, (role, _) in enumerate(messages) if role == "user"), default=None)
        if last_user is None:
            return cls(message="", earlier=messages, steps=steps)
        return cls(message=messages[last_user][1], earlier=messages[:last_user], steps=steps)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _json_object(value: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class OfflineModel(Model):
    """Answers by rules (see `decide`); needs no network and no key."""

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        decision = decide(
            Conversation.of(input),
            user_id=user_id_of(system_instructions),
            today=local_date_of(system_instructions),
            tool_names={tool.name for tool in tools},
        )
        return ModelResponse(output=[_output_item(decision)], usage=Usage(requests=1), response_id=None)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        response = await self.get_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        )
        yield ResponseCompletedEvent(
            type="response.completed",
            sequence_number=0,
            response=Response(
                id="offline",
                created_at=0,
                model="offline",
                object="response",
                output=response.output,
                tool_choice="auto",
                tools=[],
                parallel_tool_calls=False,
                status="completed",
            ),
        )


def _output_item(decision: Decision) -> TResponseOutputItem:
    if isinstance(decision, Call):
        call_id = f"call_{secrets.token_hex(6)}"
        return ResponseFunctionToolCall(
            id=call_id,
            call_id=call_id,
            type="function_call",
            name=decision.name,
            arguments=json.dumps(decision.arguments, ensure_ascii=False),
        )
    return ResponseOutputMessage(
        id=f"msg_{secrets.token_hex(6)}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=decision.text, annotations=[])],
    )


# --- deciding ---------------------------------------------------------------------------------


def decide(
    conversation: Conversation, *, user_id: str | None, today: date | None, tool_names: set[str]
) -> Decision:
    if user_id is None:
        return Say("I don't know whose list this is, so I can't look at any tasks.")
    request = understand(conversation.message, today)
    if isinstance(request, Choice):
        request = _chosen(request, conversation, today)
    if isinstance(request, Chat):
        return Say(_small_talk(request))
    needed = {"add_task", "list_tasks", "complete_task", "update_task", "delete_task"}
    if not needed <= tool_names:
        return Say("My task tools are not available right now, so I can't do that; try again in a moment.")
    steps = list(conversation.steps)
    if steps and not steps[-1].ok:
        return Say(_failure(request, steps[-1]))
    if isinstance(request, AddTask):
        return _adding(request, user_id, steps)
    if isinstance(request, ListTasks):
        return _listing(request, user_id, steps)
    return _changing(request, user_id, steps)


def _small_talk(request: Chat) -> str:
    if request.kind == "greeting":
        return "Hello! " + CAPABILITIES
    if request.kind == "thanks":
        return "You're welcome! Anything else on your list?"
    if request.kind == "help":
        return CAPABILITIES + " Dates can be words like tomorrow 09:00, friday, next week or in 3 days."
    return "Sorry, I didn't understand that. " + CAPABILITIES


def _failure(request: Request, step: Step) -> str:
    message = str(step.envelope.get("message") or "the tool reported an error")
    if isinstance(request, AddTask):
        return f"I couldn't add that task: {message}"
    if isinstance(request, ListTasks):
        return f"I couldn't look at your tasks: {message}"
    if isinstance(request, ChangeTask) and step.name != "list_tasks":
        return f"I couldn't {_VERBS[request.action]} that task: {message}"
    return f"I couldn't look for that task: {message}"


def _chosen(choice: Choice, conversation: Conversation, today: date | None) -> ChangeTask | Chat:
    """The request an answer to "which one?" completes: the earlier one, now with a task id."""
    earlier = list(conversation.earlier)
    question = next(
        (i for i in range(len(earlier) - 1, -1, -1) if earlier[i][0] == "assistant"),
        None,
    )
    if question is None or ASK_BACK not in earlier[question][1]:
        return Chat("unknown")
    offered = [int(found) for found in re.findall(r"\(#(\d+)", earlier[question][1])]
    asked = next((text for role, text in reversed(earlier[:question]) if role == "user"), None)
    original = understand(asked, today) if asked else None
    if not isinstance(original, ChangeTask) or not offered:
        return Chat("unknown")
    if choice.task_id is not None:
        task_id = choice.task_id
    elif choice.position is not None and -len(offered) <= choice.position < len(offered):
        task_id = offered[choice.position]
    else:
        return Chat("unknown")
    return replace(original, target=TaskRef(task_id=task_id))


def _adding(request: AddTask, user_id: str, steps: list[Step]) -> Decision:
    if not steps:
        arguments: dict[str, Any] = {"user_id": user_id, "title": request.title}
        if request.due:
            arguments["due"] = request.due
        if request.priority:
            arguments["priority"] = request.priority
        if request.labels:
            arguments["labels"] = list(request.labels)
        return Call("add_task", arguments)
    task = steps[-1].data
    return Say(f"Added \u201c{task.get('title')}\u201d{_details(task)}.")


def _listing(request: ListTasks, user_id: str, steps: list[Step]) -> Decision:
    if not steps:
        arguments: dict[str, Any] = {"user_id": user_id, "status": request.status, "limit": 50}
        if request.due:
            arguments["due"] = request.due
        if request.day:
            arguments["due_from"] = arguments["due_to"] = request.day
        if request.priority:
            arguments["priority"] = list(request.priority)
        if request.labels:
            arguments["labels"] = list(request.labels)
        if request.query:
            arguments["query"] = request.query
        if request.due or request.day:
            arguments["sort"] = "due"
        return Call("list_tasks", arguments)
    page = steps[-1].data
    tasks: list[dict[str, Any]] = list(page.get("tasks") or [])
    total = int(page.get("total") or len(tasks))
    what = _described(request)
    if not tasks:
        return Say(f"You have no {what}.")
    lines = [f"{index}. {_line(task)}" for index, task in enumerate(tasks[:SHOWN_MAX], start=1)]
    more = total - min(len(tasks), SHOWN_MAX)
    if more > 0:
        lines.append(f"\u2026and {more} more.")
    count = "one" if total == 1 else str(total)
    return Say(f"You have {count} {what if total != 1 else _singular(what)}:\n" + "\n".join(lines))


def _described(request: ListTasks) -> str:
    words = {"pending": "pending tasks", "completed": "completed tasks", "all": "tasks"}[request.status]
    if request.priority:
        words = f"{request.priority[0]}-priority {words}"
    if request.labels:
        words += " labelled " + " and ".join(request.labels)
    if request.due == "overdue":
        words = "overdue tasks" if request.status == "pending" else words + " that are overdue"
    elif request.due == "no_date":
        words += " without a due date"
    elif request.due == "next_7_days":
        words += " due in the next 7 days"
    elif request.due:
        words += f" due {request.due}"
    elif request.day:
        words += f" due {request.day}"
    if request.query:
        words += f" matching \u201c{request.query}\u201d"
    return words


def _singular(words: str) -> str:
    return words.replace("tasks", "task", 1)


def _changing(request: ChangeTask, user_id: str, steps: list[Step]) -> Decision:
    acted = [step for step in steps if step.name != "list_tasks"]
    if acted:
        return Say(_confirmation(request, acted[-1]))
    target = request.target
    if target.task_id is not None:
        if request.action == "label":
            listed = _find_by_id(steps, target.task_id)
            if listed is None and not steps:
                return Call("list_tasks", {"user_id": user_id, "status": "all", "limit": SEARCH_LIMIT})
            if listed is None:
                return Say(f"I couldn't find task {target.task_id} on your list.")
            return _act(request, user_id, listed)
        return _act(request, user_id, {"task_id": target.task_id})
    words = target.words or ""
    searches = [step for step in steps if step.name == "list_tasks"]
    status = {"complete": "pending", "reopen": "completed"}.get(request.action, "all")
    if not searches:
        return Call(
            "list_tasks", {"user_id": user_id, "status": status, "query": words, "limit": SEARCH_LIMIT}
        )
    found = pick(list(searches[-1].data.get("tasks") or []), words)
    if not found and len(searches) == 1 and len(significant_words(words)) > 1:
        # "the dentist appointment" for "Call the dentist": look at every task, by word.
        return Call("list_tasks", {"user_id": user_id, "status": status, "limit": SEARCH_LIMIT})
    if not found:
        which = {"pending": "pending task", "completed": "completed task"}.get(status, "task")
        return Say(
            f"I couldn't find a {which} matching \u201c{words}\u201d. "
            "Say \u201cshow my tasks\u201d to see them all."
        )
    if len(found) > 1:
        offered = "\n".join(
            f"{index}. {_line(task)}" for index, task in enumerate(found[:SHOWN_MAX], start=1)
        )
        return Say(
            f"I found {len(found)} tasks matching \u201c{words}\u201d:\n{offered}\n"
            f"{ASK_BACK} {_VERBS[request.action]}? Answer with its number."
        )
    return _act(request, user_id, found[0])


def _find_by_id(steps: list[Step], task_id: int) -> dict[str, Any] | None:
    for step in steps:
        for task in step.data.get("tasks") or []:
            if task.get("task_id") == task_id:
                return dict(task)
    return None


def _act(request: ChangeTask, user_id: str, task: dict[str, Any]) -> Call:
    ids = {"user_id": user_id, "task_id": task["task_id"]}
    if request.action == "complete":
        return Call("complete_task", ids)
    if request.action == "delete":
        return Call("delete_task", ids)
    if request.action == "reopen":
        return Call("update_task", {**ids, "completed": False})
    if request.action == "rename":
        return Call("update_task", {**ids, "title": request.title})
    if request.action == "redate":
        return Call("update_task", {**ids, "due": request.due})
    if request.action == "undate":
        return Call("update_task", {**ids, "due": ""})
    if request.action == "prioritize":
        return Call("update_task", {**ids, "priority": request.priority})
    existing = [str(label) for label in task.get("labels") or []]
    added = [label for label in request.labels if label.casefold() not in {e.casefold() for e in existing}]
    return Call("update_task", {**ids, "labels": existing + added})


def _confirmation(request: ChangeTask, step: Step) -> str:
    data = step.data
    task = data.get("task", data) if isinstance(data.get("task"), dict) else data
    title = f"\u201c{task.get('title')}\u201d"
    if request.action == "complete":
        return f"Done: I marked {title} as completed. Nice work!"
    if request.action == "delete":
        return f"I deleted {title}."
    if request.action == "reopen":
        return f"I reopened {title}; it's back on your list."
    if request.action == "rename":
        return f"Renamed: the task is now {title}."
    if request.action == "redate":
        return f"I moved {title}{_details(task, priority=False) or ' (no due date)'}."
    if request.action == "undate":
        return f"{title} no longer has a due date."
    if request.action == "prioritize":
        return f"{title} is now {task.get('priority')} priority."
    labels = ", ".join(str(label) for label in task.get("labels") or [])
    return f"{title} now has the labels {labels}."


def _details(task: dict[str, Any], *, priority: bool = True) -> str:
    parts = []
    if task.get("due_date"):
        when = str(task.get("due_label") or "")
        shown = when if when in ("today", "tomorrow") else f"on {_day(str(task['due_date']))}"
        if when == "overdue":
            shown = f"on {_day(str(task['due_date']))} (overdue)"
        parts.append(f", due {shown}" + (f" at {task['due_time']}" if task.get("due_time") else ""))
    if priority and task.get("priority") not in (None, "none"):
        parts.append(f", {task['priority']} priority")
    if task.get("labels") and priority:
        parts.append(", labelled " + ", ".join(str(label) for label in task["labels"]))
    return "".join(parts)


def _day(iso: str) -> str:
    try:
        return date.fromisoformat(iso).strftime("%a %d %b %Y")
    except ValueError:
        return iso


def _line(task: dict[str, Any]) -> str:
    done = "\u2713 " if task.get("completed") else ""
    return f"{done}{task.get('title')} (#{task.get('task_id')}{_details(task)})"
