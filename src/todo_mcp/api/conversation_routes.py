"""Conversation routes: the chat history a stateless chat service reads and writes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from todo_mcp.api.deps import ERRORS, DatabaseDep, OwnerDep
from todo_mcp.api.schemas import (
    ConversationPage,
    ConversationPublic,
    MessageCreate,
    MessagePage,
    MessagePublic,
)
from todo_mcp.api.strict_json import StrictJSONRoute
from todo_mcp.services import conversations

router = APIRouter(
    prefix="/api/{user_id}/conversations",
    tags=["conversations"],
    responses=ERRORS,
    route_class=StrictJSONRoute,
)

Limit = Annotated[int, Query(description=f"Page size, 1-{conversations.PAGE_MAX}.")]
Offset = Annotated[int, Query(description="How many items to skip; use next_offset from the last page.")]


def next_offset(offset: int, limit: int, returned: int) -> int | None:
    return offset + returned if returned == limit else None


@router.post("", status_code=status.HTTP_201_CREATED, summary="Start a conversation")
async def create_conversation(owner: OwnerDep, db: DatabaseDep) -> ConversationPublic:
    async with db.transaction() as session:
        conversation = await conversations.create_conversation(session, user_id=owner)
    return ConversationPublic.of(conversation)


@router.get("", summary="List the user's conversations, most recently active first")
async def list_conversations(
    owner: OwnerDep, db: DatabaseDep, limit: Limit = 50, offset: Offset = 0
) -> ConversationPage:
    async with db.transaction() as session:
        found = await conversations.list_conversations(session, user_id=owner, limit=limit, offset=offset)
    return ConversationPage(
        items=[ConversationPublic.of(item) for item in found],
        next_offset=next_offset(offset, limit, len(found)),
    )


@router.get("/{conversation_id}", summary="Get one conversation")
async def get_conversation(owner: OwnerDep, db: DatabaseDep, conversation_id: int) -> ConversationPublic:
    async with db.transaction() as session:
        conversation = await conversations.get_conversation(
            session, user_id=owner, conversation_id=conversation_id
        )
    return ConversationPublic.of(conversation)


@router.get("/{conversation_id}/messages", summary="Read a conversation's messages in order")
async def list_messages(
    owner: OwnerDep, db: DatabaseDep, conversation_id: int, limit: Limit = 100, offset: Offset = 0
) -> MessagePage:
    async with db.transaction() as session:
        found = await conversations.list_messages(
            session, user_id=owner, conversation_id=conversation_id, limit=limit, offset=offset
        )
    return MessagePage(
        items=[MessagePublic.of(item) for item in found],
        next_offset=next_offset(offset, limit, len(found)),
    )


@router.post("/{conversation_id}/messages", status_code=status.HTTP_201_CREATED, summary="Append a message")
async def append_message(
    owner: OwnerDep, db: DatabaseDep, conversation_id: int, body: MessageCreate
) -> MessagePublic:
    async with db.transaction() as session:
        message = await conversations.append_message(
            session, user_id=owner, conversation_id=conversation_id, role=body.role, content=body.content
        )
    return MessagePublic.of(message)
