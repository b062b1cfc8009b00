"""A chat request: what it loads, what it stores, and what it asks of the assistant.

Stateless: the conversation lives in the database, so any process can serve any message of it.
The user's message is committed before the assistant runs, so a failing model or tool loses
nothing the user said, and the conversation goes on from there; the assistant's answer is
stored, with the tool calls behind it, only once it exists. No transaction is held while the
assistant works (seconds, with a real model).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from todo_mcp.db.engine import Database
from todo_mcp.services import conversations, users
from todo_mcp.services.dates import SYSTEM_CLOCK, Clock, LocalNow
from todo_mcp.services.errors import Unavailable
from todo_mcp.services.validation import check_user_id, scrubbed_text

log = logging.getLogger("todo_mcp.chat")

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call of a reply: what the model sent and what it got back (an envelope)."""

    name: str
    arguments: dict[str, Any] | str
    result: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, "result": self.result}


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    tool_calls: Sequence[ToolCall] = ()


@dataclass(frozen=True, slots=True)
class Turn:
    """Everything the assistant is given for one reply."""

    user_id: str
    user_name: str | None
    now: LocalNow
    # The earlier messages that fit the budget, oldest first.
    history: Sequence[tuple[Role, str]]
    message: str


class ChatEvents(Protocol):
    """What a streaming door hears while the assistant works, as it happens."""

    async def tool_called(self, name: str, arguments: dict[str, Any] | str) -> None: ...

    async def tool_answered(self, call: ToolCall) -> None: ...

    async def text(self, delta: str) -> None: ...


class Assistant(Protocol):
    async def reply(self, turn: Turn, events: ChatEvents | None = None) -> Reply:
        """The answer to `turn`; raises a `DomainError` (502, 503, 504) when it cannot give one."""
        ...


class AssistantFailed(Unavailable):
    code = 502
    default_message = "The assistant's model did not give a usable answer; your message is saved, try again."


class AssistantTimedOut(Unavailable):
    code = 504
    default_message = "The assistant took too long to answer; your message is saved, try again."


class ToolsUnavailable(Unavailable):
    default_message = "The assistant cannot reach the task tools right now; your message is saved, try again."


@dataclass(frozen=True, slots=True)
class HistoryBudget:
    messages: int = 40
    characters: int = 16_000


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    conversation_id: int
    response: str
    tool_calls: Sequence[ToolCall] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class StartedTurn:
    """A turn whose user message is stored: what the assistant answers next."""

    conversation_id: int
    turn: Turn


async def start_turn(
    db: Database,
    *,
    user_id: str,
    message: str,
    conversation_id: int | None = None,
    budget: HistoryBudget = HistoryBudget(),
    clock: Clock = SYSTEM_CLOCK,
) -> StartedTurn:
    """Check the message, load the history that fits the budget, and store the message (a new
    conversation when none is given): 400, 404 and 503 come from here, before any model runs."""
    check_user_id(user_id)
    conversations.check_content(message, "message")
    async with db.transaction() as session:
        user = await users.get_user(session, user_id=user_id)
        if conversation_id is None:
            conversation = await conversations.create_conversation(session, user_id=user_id)
            assert conversation.id is not None
            conversation_id = conversation.id
            history = conversations.History(messages=(), cut=False)
        else:
            history = await conversations.recent_history(
                session,
                user_id=user_id,
                conversation_id=conversation_id,
                max_messages=budget.messages,
                max_characters=budget.characters,
            )
        await conversations.append_message(
            session, user_id=user_id, conversation_id=conversation_id, role="user", content=message
        )
        turn = Turn(
            user_id=user_id,
            user_name=user.name,
            now=LocalNow.of(user.timezone, clock),
            history=[(_role(item.role), item.content) for item in history.messages],
            message=message,
        )
    if history.cut:
        log.info(
            "conversation=%d history cut to the last %d messages (%d characters; budget %d messages, "
            "%d characters): older ones are not sent to the model",
            conversation_id,
            len(history.messages),
            history.characters,
            budget.messages,
            budget.characters,
        )
    return StartedTurn(conversation_id=conversation_id, turn=turn)


async def finish_turn(db: Database, started: StartedTurn, reply: Reply) -> ChatAnswer:
    """Store the assistant's answer with the tool calls behind it."""
    async with db.transaction() as session:
        await conversations.append_message(
            session,
            user_id=started.turn.user_id,
            conversation_id=started.conversation_id,
            role="assistant",
            content=_storable_reply(reply.text),
            tool_calls=[call.as_json() for call in reply.tool_calls],
        )
    return ChatAnswer(
        conversation_id=started.conversation_id, response=reply.text, tool_calls=tuple(reply.tool_calls)
    )


def _role(role: str) -> Role:
    return "user" if role == "user" else "assistant"


def _storable_reply(text: str) -> str:
    """A model's answer as a message can hold it: never empty, never past the limit."""
    text = scrubbed_text(text).strip() or "(no answer)"
    if len(text) > conversations.MESSAGE_MAX:
        text = text[: conversations.MESSAGE_MAX - 1] + "…"
    return text
