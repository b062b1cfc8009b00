"""Conversations and their messages: the history a stateless chat service keeps in the database.

Scoped to their user exactly like tasks: another user's conversation is reported as missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

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


async def append_message(
    session: AsyncSession, *, user_id: str, conversation_id: int, role: str, content: str
) -> Message:
    if role not in get_args(Role):
        raise InvalidInput("role must be 'user' or 'assistant'.")
    if not storable_text(content, "content").strip():
        raise InvalidInput("content must not be empty.")
    if len(content) > MESSAGE_MAX:
        raise InvalidInput(f"content is {len(content)} characters; the limit is {MESSAGE_MAX}.")
    conversation = await get_conversation(session, user_id=user_id, conversation_id=conversation_id)
    now = utcnow()
    message = Message(
        conversation_id=conversation_id, user_id=user_id, role=role, content=content, created_at=now
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
