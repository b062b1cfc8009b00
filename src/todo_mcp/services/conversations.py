"""Conversations and their messages: the history a stateless chat service keeps in the database.

Scoped to their user exactly like tasks: another user's conversation is reported as missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from todo_mcp.db.models import Conversation, Message
from todo_mcp.db.types import utcnow
from todo_mcp.services.errors import ConversationNotFound, InvalidInput, UserNotFound
from todo_mcp.services.users import require_user
from todo_mcp.services.validation import check_page, check_row_id, check_user_id, storable_text

Role = Literal["user", "assistant"]
MESSAGE_MAX = 32_000
PAGE_MAX = 200


async def create_conversation(session: AsyncSession, *, user_id: str) -> Conversation:
    now = utcnow()
    conversation = Conversation(user_id=check_user_id(user_id), created_at=now, updated_at=now)
    session.add(conversation)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise UserNotFound(user_id) from exc
    return conversation


async def get_conversation(session: AsyncSession, *, user_id: str, conversation_id: int) -> Conversation:
    check_user_id(user_id)
    check_row_id(conversation_id, "conversation_id")
    result = await session.exec(
        select(Conversation).where(
            col(Conversation.id) == conversation_id, col(Conversation.user_id) == user_id
        )
    )
    conversation = result.first()
    if conversation is None:
        await require_user(session, user_id=user_id)
        raise ConversationNotFound(conversation_id)
    return conversation


async def list_conversations(
    session: AsyncSession, *, user_id: str, limit: int = 50, offset: int = 0
) -> Sequence[Conversation]:
    """The user's conversations, most recently active first."""
    check_user_id(user_id)
    check_page(limit, offset, max_limit=PAGE_MAX)
    await require_user(session, user_id=user_id)
    result = await session.exec(
        select(Conversation)
        .where(col(Conversation.user_id) == user_id)
        .order_by(col(Conversation.updated_at).desc(), col(Conversation.id).desc())
        .limit(limit)
        .offset(offset)
    )
    return result.all()


def check_content(content: str, field: str = "content") -> str:
    if not storable_text(content, field).strip():
        raise InvalidInput(f"{field} must not be empty.")
    if len(content) > MESSAGE_MAX:
        raise InvalidInput(f"{field} is {len(content)} characters; the limit is {MESSAGE_MAX}.")
    return content


async def append_message(
    session: AsyncSession,
    *,
    user_id: str,
    conversation_id: int,
    role: str,
    content: str,
    tool_calls: list[dict[str, Any]] | None = None,
) -> Message:
    if role not in get_args(Role):
        raise InvalidInput("role must be 'user' or 'assistant'.")
    check_content(content)
    conversation = await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    now = utcnow()
    message = Message(
        conversation_id=conversation_id,
        user_id=user_id,
        role=role,
        content=content,
        created_at=now,
        tool_calls=tool_calls or None,
    )
    conversation.updated_at = now
    session.add(message)
    try:
        await session.flush()
    except IntegrityError as exc:
        # The conversation (or its user) was deleted by a concurrent request.
        raise ConversationNotFound(conversation_id) from exc
    return message


async def list_messages(
    session: AsyncSession, *, user_id: str, conversation_id: int, limit: int = 100, offset: int = 0
) -> Sequence[Message]:
    """The conversation's messages in the order they were written."""
    check_page(limit, offset, max_limit=PAGE_MAX)
    await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    result = await session.exec(
        select(Message)
        .where(col(Message.conversation_id) == conversation_id)
        .order_by(col(Message.created_at), col(Message.id))
        .limit(limit)
        .offset(offset)
    )
    return result.all()


@dataclass(frozen=True, slots=True)
class History:
    """The newest messages of a conversation that fit a budget, oldest first."""

    messages: Sequence[Message]
    # True when older messages exist that were left out.
    cut: bool

    @property
    def characters(self) -> int:
        return sum(len(message.content) for message in self.messages)


async def recent_history(
    session: AsyncSession, *, user_id: str, conversation_id: int, max_messages: int, max_characters: int
) -> History:
    """The conversation's most recent messages, at most `max_messages` and together at most
    `max_characters` long; the oldest are dropped first, and never one from the middle."""
    await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    result = await session.exec(
        select(Message)
        .where(col(Message.conversation_id) == conversation_id)
        .order_by(col(Message.id).desc())
        .limit(max_messages + 1)
    )
    newest_first = result.all()
    kept: list[Message] = []
    used = 0
    for message in newest_first[:max_messages]:
        used += len(message.content)
        if used > max_characters:
            break
        kept.append(message)
    kept.reverse()
    return History(messages=kept, cut=len(kept) < len(newest_first))
