"""The assistant: an OpenAI Agents SDK agent whose only tools are our MCP server's.

One reply is one `Runner` run on a fresh MCP connection acting for the request's user. The run
is bounded (`CHAT_TIMEOUT_SECONDS`, `CHAT_MAX_TURNS`); what can go wrong is said as a 502
(the model gave no usable answer), 503 (the model server or the tools cannot be reached) or 504
(too slow), never as a bare 500.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import anyio
import openai
from agents import Agent, RunConfig, Runner, RunResult, RunResultStreaming, TResponseInputItem
from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError, ModelTimeoutError, UserError
from agents.items import MessageOutputItem, RunItem, ToolCallItem, ToolCallOutputItem
from agents.models.interface import Model
from agents.stream_events import RawResponsesStreamEvent, RunItemStreamEvent, StreamEvent

from todo_mcp.assistant.instructions import instructions
from todo_mcp.assistant.tools_link import ReplyConnection, ToolsLink
from todo_mcp.services.chat import (
    AssistantFailed,
    AssistantTimedOut,
    ChatEvents,
    Reply,
    ToolCall,
    ToolsUnavailable,
    Turn,
)
from todo_mcp.services.errors import Unavailable

log = logging.getLogger("todo_mcp.chat")

AGENT_NAME = "todo-assistant"


class ModelUnavailable(Unavailable):
    default_message = (
        "The assistant's model server cannot be reached right now; your message is saved, try again."
    )


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_seconds: float = 60.0
    max_turns: int = 10
    tracing: bool = False


class AgentAssistant:
    def __init__(self, model: Model, link: ToolsLink, limits: Limits = Limits()) -> None:
        self.model = model
        self.link = link
        self.limits = limits

    async def reply(self, turn: Turn, events: ChatEvents | None = None) -> Reply:
        limit: anyio.CancelScope | None = None
        try:
            with anyio.fail_after(self.limits.timeout_seconds) as limit:
                server = self.link.server_for(turn.user_id)
                await self._connect(server)
                try:
                    return await self._run(server, turn, events)
                finally:
                    await server.cleanup()
        except TimeoutError as exc:
            if limit is None or not limit.cancelled_caught:
                # Raised inside the run (a model client's own timeout), not by the limit.
                raise AssistantTimedOut(
                    "The assistant's model took too long to answer; your message is saved."
                ) from exc
            raise AssistantTimedOut(
                f"The assistant did not finish within {self.limits.timeout_seconds:g} seconds; "
                "your message is saved, try again."
            ) from None

    async def _connect(self, server: ReplyConnection) -> None:
        try:
            await server.connect()
        except (Exception, BaseExceptionGroup) as exc:
            # A 401 arrives as an exception group around the MCP error, a server that is down
            # as a UserError: either way the tools are out of reach for this reply.
            await server.cleanup()
            raise ToolsUnavailable() from exc

    async def _run(self, server: ReplyConnection, turn: Turn, events: ChatEvents | None) -> Reply:
        agent = Agent(
            name=AGENT_NAME, instructions=instructions(turn), mcp_servers=[server], model=self.model
        )
        history: list[TResponseInputItem] = [{"role": role, "content": text} for role, text in turn.history]
        history.append({"role": "user", "content": turn.message})
        run_config = RunConfig(
            tracing_disabled=not self.limits.tracing,
            # A hallucinated tool name is told to the model, which can correct itself.
            tool_not_found_behavior="return_error_to_model",
        )
        try:
            if events is None:
                result: RunResult | RunResultStreaming = await Runner.run(
                    agent, history, max_turns=self.limits.max_turns, run_config=run_config
                )
            else:
                result = Runner.run_streamed(
                    agent, history, max_turns=self.limits.max_turns, run_config=run_config
                )
                await _relay(result, events)
        except MaxTurnsExceeded:
            raise AssistantFailed(
                f"The assistant did not finish within {self.limits.max_turns} steps; your message is saved, "
                "try asking more simply."
            ) from None
        except (openai.APITimeoutError, ModelTimeoutError) as exc:
            raise AssistantTimedOut(
                "The assistant's model took too long to answer; your message is saved."
            ) from exc
        except openai.APIConnectionError as exc:
            raise ModelUnavailable() from exc
        except openai.APIStatusError as exc:
            log.warning("the model server answered HTTP %d: %s", exc.status_code, exc.message)
            raise AssistantFailed(
                f"The assistant's model server refused the request (HTTP {exc.status_code}); your message "
                "is saved, try again."
            ) from exc
        except (ModelBehaviorError, UserError, openai.OpenAIError) as exc:
            raise AssistantFailed() from exc
        return Reply(text=_final_text(result), tool_calls=tool_calls_of(result.new_items))


async def _relay(result: RunResultStreaming, events: ChatEvents) -> None:
    """Pass the run's progress on as it happens: text as it is written, each tool call and its answer."""
    pending: dict[str, tuple[str, dict[str, Any] | str]] = {}
    streamed_text = False
    event: StreamEvent
    async for event in result.stream_events():
        if isinstance(event, RawResponsesStreamEvent):
            if event.data.type == "response.output_text.delta":
                streamed_text = True
                await events.text(event.data.delta)
            continue
        if not isinstance(event, RunItemStreamEvent):
            continue
        item = event.item
        if isinstance(item, ToolCallItem):
            name, arguments, call_id = _call_parts(item)
            pending[call_id] = (name, arguments)
            await events.tool_called(name, arguments)
        elif isinstance(item, ToolCallOutputItem):
            name, arguments = pending.pop(item.call_id or "", ("", {}))
            await events.tool_answered(
                ToolCall(name=name, arguments=arguments, result=envelope_of(item.output))
            )
        elif isinstance(item, MessageOutputItem):
            if not streamed_text:
                # A model that does not stream deltas (the offline one) says it all at once.
                await events.text(_message_text(item))
            streamed_text = False


def _call_parts(item: ToolCallItem) -> tuple[str, dict[str, Any] | str, str]:
    raw = item.raw_item
    name = str(getattr(raw, "name", "") or (raw.get("name", "") if isinstance(raw, dict) else ""))
    text = getattr(raw, "arguments", None)
    if text is None and isinstance(raw, dict):
        text = raw.get("arguments")
    call_id = str(getattr(raw, "call_id", "") or (raw.get("call_id", "") if isinstance(raw, dict) else ""))
    return name, arguments_of(text), call_id


def arguments_of(text: object) -> dict[str, Any] | str:
    """The arguments a model sent, as an object when they are one."""
    if not isinstance(text, str):
        return {} if text is None else str(text)
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return text
    return value if isinstance(value, dict) else text


def envelope_of(output: Any) -> dict[str, Any]:
    """What a tool call gave the model, as our envelope. The tools answer with one (as text);
    anything else was said by the agent SDK instead of a tool (an unknown tool name, a tool
    that timed out) and becomes an error envelope carrying the same words."""
    text = _output_text(output)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and value.get("status") in ("success", "error") and "data" in value:
        return value
    code = 404 if "not found" in text.lower() else 502
    return {"status": "error", "data": {"error_code": code}, "message": text}


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, dict):
        return str(output.get("text", ""))
    if isinstance(output, list):
        return "".join(_output_text(part) for part in output)
    return str(output)


def tool_calls_of(items: list[RunItem]) -> list[ToolCall]:
    """The run's tool calls in the order made, each with the answer it got."""
    calls: list[tuple[str, str, dict[str, Any] | str]] = []
    answers: dict[str, dict[str, Any]] = {}
    for item in items:
        if isinstance(item, ToolCallItem):
            name, arguments, call_id = _call_parts(item)
            calls.append((call_id, name, arguments))
        elif isinstance(item, ToolCallOutputItem):
            answers[item.call_id or ""] = envelope_of(item.output)
    no_answer = {"status": "error", "data": {"error_code": 502}, "message": "The tool gave no answer."}
    return [
        ToolCall(name=name, arguments=arguments, result=answers.get(call_id, no_answer))
        for call_id, name, arguments in calls
    ]


def _message_text(item: MessageOutputItem) -> str:
    return "".join(getattr(part, "text", "") for part in item.raw_item.content)


def _final_text(result: RunResult | RunResultStreaming) -> str:
    output = result.final_output
    if isinstance(output, str) and output.strip():
        return output
    return "I have no answer to that; try asking another way."
