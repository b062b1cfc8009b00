"""Conversations and messages: scoped to their user like tasks (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.conftest import UserFactory
from todo_mcp.db.engine import Database
from todo_mcp.db.models import Conversation, Message
from todo_mcp.services import conversations
from todo_mcp.services.errors import ConversationNotFound, DomainError, InvalidInput, UserNotFound

pytestmark = pytest.mark.anyio

ConversationOperation = Callable[[AsyncSession, str, int], Awaitable[object]]

# Every operation that names one conversation.
CONVERSATION_OPERATIONS: dict[str, ConversationOperation] = {
    "get": lambda s, u, c: conversations.get_conversation(s, user_id=u, conversation_id=c),
    "append": lambda s, u, c: conversations.append_message(
        s, user_id=u, conversation_id=c, role="user", content="hello"
    ),
    "list_messages": lambda s, u, c: conversations.list_messages(s, user_id=u, conversation_id=c),
}

# Every operation, for a user that does not exist.
USER_OPERATIONS: dict[str, ConversationOperation] = {
    "create": lambda s, u, _: conversations.create_conversation(s, user_id=u),
    "list_conversations": lambda s, u, _: conversations.list_conversations(s, user_id=u),
    **CONVERSATION_OPERATIONS,
}


async def new_conversation(db: Database, user_id: str) -> int:
    async with db.transaction() as session:
        conversation = await conversations.create_conversation(session, user_id=user_id)
    assert conversation.id is not None
    return conversation.id


async def say(db: Database, user_id: str, conversation_id: int, content: str, role: str = "user") -> Message:
    async with db.transaction() as session:
        return await conversations.append_message(
            session, user_id=user_id, conversation_id=conversation_id, role=role, content=content
        )


async def contents(
    db: Database, user_id: str, conversation_id: int, limit: int = 100, offset: int = 0
) -> list[str]:
    async with db.transaction() as session:
        listed = await conversations.list_messages(
            session, user_id=user_id, conversation_id=conversation_id, limit=limit, offset=offset
        )
    return [message.content for message in listed]


async def conversation_ids(db: Database, user_id: str, limit: int = 50, offset: int = 0) -> list[int | None]:
    async with db.transaction() as session:
        listed = await conversations.list_conversations(session, user_id=user_id, limit=limit, offset=offset)
    return [conversation.id for conversation in listed]


async def fetch(db: Database, user_id: str, conversation_id: int) -> Conversation:
    async with db.transaction() as session:
        return await conversations.get_conversation(session, user_id=user_id, conversation_id=conversation_id)


async def outcome(db: Database, operation: ConversationOperation, user_id: str, conversation_id: int) -> str:
    """The domain error an operation raises, by name and message, or "no error"."""
    try:
        async with db.transaction() as session:
            await operation(session, user_id, conversation_id)
    except DomainError as exc:
        return f"{type(exc).__name__}: {exc.message}"
    return "no error"


async def test_created_conversation_belongs_to_its_user_and_is_empty(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()

    conversation_id = await new_conversation(db, user)

    stored = await fetch(db, user, conversation_id)
    assert stored.user_id == user
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.updated_at.utcoffset() == timedelta(0)
    assert await contents(db, user, conversation_id) == []


async def test_messages_are_listed_in_the_order_they_were_written(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)

    await say(db, user, conversation_id, "What is on my list?", role="user")
    await say(db, user, conversation_id, "You have 2 tasks.", role="assistant")
    await say(db, user, conversation_id, "  Thanks!  ", role="user")

    async with db.transaction() as session:
        listed = await conversations.list_messages(session, user_id=user, conversation_id=conversation_id)
    assert [(m.role, m.content, m.user_id, m.conversation_id) for m in listed] == [
        ("user", "What is on my list?", user, conversation_id),
        ("assistant", "You have 2 tasks.", user, conversation_id),
        # Content is kept verbatim, whitespace included.
        ("user", "  Thanks!  ", user, conversation_id),
    ]
    assert all(m.created_at.utcoffset() == timedelta(0) for m in listed)
    assert [m.created_at for m in listed] == sorted(m.created_at for m in listed)


async def test_message_content_is_stored_verbatim(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)
    content = "Robert'); DROP TABLE messages;-- 🧑\u200d💻 日本語\nsecond line\ttab"

    await say(db, user, conversation_id, content)

    assert await contents(db, user, conversation_id) == [content]


async def test_messages_page_with_limit_and_offset(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)
    for number in range(5):
        await say(db, user, conversation_id, f"m{number}")

    assert await contents(db, user, conversation_id, limit=2) == ["m0", "m1"]
    assert await contents(db, user, conversation_id, limit=2, offset=2) == ["m2", "m3"]
    assert await contents(db, user, conversation_id, limit=2, offset=4) == ["m4"]
    assert await contents(db, user, conversation_id, limit=2, offset=5) == []


async def test_messages_of_one_conversation_do_not_appear_in_another(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    first = await new_conversation(db, user)
    second = await new_conversation(db, user)

    await say(db, user, first, "in first")
    await say(db, user, second, "in second")

    assert await contents(db, user, first) == ["in first"]
    assert await contents(db, user, second) == ["in second"]


async def test_appending_a_message_moves_the_conversations_updated_at_to_it(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)
    before = await fetch(db, user, conversation_id)

    message = await say(db, user, conversation_id, "hello")

    after = await fetch(db, user, conversation_id)
    assert after.updated_at == message.created_at
    assert after.updated_at >= before.updated_at
    assert after.created_at == before.created_at


async def test_conversations_are_listed_most_recently_active_first(
    db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    oldest = await new_conversation(db, user)
    middle = await new_conversation(db, user)
    newest = await new_conversation(db, user)
    assert await conversation_ids(db, user) == [newest, middle, oldest]

    await say(db, user, oldest, "back to the first one")

    assert await conversation_ids(db, user) == [oldest, newest, middle]
    assert await conversation_ids(db, user, limit=2) == [oldest, newest]
    assert await conversation_ids(db, user, limit=2, offset=2) == [middle]


async def test_conversations_list_shows_only_the_users_own(db: Database, user_factory: UserFactory) -> None:
    alice = await user_factory()
    bob = await user_factory()
    alices = await new_conversation(db, alice)
    bobs = await new_conversation(db, bob)

    assert await conversation_ids(db, alice) == [alices]
    assert await conversation_ids(db, bob) == [bobs]


@pytest.mark.parametrize("role", ["system", "tool", "User", "ASSISTANT", "", " user"])
async def test_role_other_than_user_or_assistant_is_invalid_and_nothing_is_stored(
    db: Database, user_factory: UserFactory, role: str
) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)

    with pytest.raises(InvalidInput, match="role must be 'user' or 'assistant'"):
        await say(db, user, conversation_id, "hello", role=role)

    assert await contents(db, user, conversation_id) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "must not be empty"),
        (" \n\t ", "must not be empty"),
        ("x" * 32_001, "32001 characters; the limit is 32000"),
        ("nul\x00byte", "NUL"),
        ("lone \ud83d surrogate", "surrogate"),
    ],
    ids=["empty", "blank", "too-long", "nul", "surrogate"],
)
async def test_bad_message_content_is_invalid_and_nothing_is_stored(
    db: Database, user_factory: UserFactory, content: str, reason: str
) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)

    with pytest.raises(InvalidInput, match=reason):
        await say(db, user, conversation_id, content)

    assert await contents(db, user, conversation_id) == []


async def test_message_of_32000_characters_is_accepted(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)
    content = "x" * 32_000

    await say(db, user, conversation_id, content)

    assert await contents(db, user, conversation_id) == [content]


@pytest.mark.parametrize(
    "operation", list(CONVERSATION_OPERATIONS.values()), ids=list(CONVERSATION_OPERATIONS)
)
async def test_another_users_conversation_is_reported_exactly_like_a_missing_one(
    db: Database, user_factory: UserFactory, operation: ConversationOperation
) -> None:
    owner = await user_factory()
    intruder = await user_factory()
    theirs = await new_conversation(db, owner)
    await say(db, owner, theirs, "private")
    missing_id = theirs + 1000

    async with db.transaction() as session:
        with pytest.raises(ConversationNotFound) as for_theirs:
            await operation(session, intruder, theirs)
    async with db.transaction() as session:
        with pytest.raises(ConversationNotFound) as for_missing:
            await operation(session, intruder, missing_id)

    assert for_theirs.value.code == for_missing.value.code == 404
    assert for_theirs.value.message == for_missing.value.message.replace(str(missing_id), str(theirs))
    assert await contents(db, owner, theirs) == ["private"]
    assert await conversation_ids(db, intruder) == []


async def test_unknown_user_is_user_not_found_for_every_conversation_operation(
    db: Database, user_factory: UserFactory
) -> None:
    owner = await user_factory()
    existing = await new_conversation(db, owner)

    outcomes = {name: await outcome(db, op, "ghost", existing) for name, op in USER_OPERATIONS.items()}

    assert outcomes == dict.fromkeys(USER_OPERATIONS, f"UserNotFound: {UserNotFound('ghost').message}")
    assert await contents(db, owner, existing) == []


@pytest.mark.parametrize("conversation_id", [0, -1, 2**63], ids=["0", "-1", "2^63"])
async def test_conversation_id_that_cannot_name_a_row_is_invalid_input_for_every_operation(
    db: Database, user_factory: UserFactory, conversation_id: int
) -> None:
    user = await user_factory()

    outcomes = {
        name: await outcome(db, op, user, conversation_id) for name, op in CONVERSATION_OPERATIONS.items()
    }

    expected = (
        "InvalidInput: conversation_id must be a positive integer, as returned when the item was created."
    )
    assert outcomes == dict.fromkeys(CONVERSATION_OPERATIONS, expected)


@pytest.mark.parametrize("conversation_id", [2**31, 2**63 - 1], ids=["2^31", "2^63-1"])
async def test_large_conversation_id_without_a_conversation_is_not_found_or_invalid_never_a_crash(
    db: Database, user_factory: UserFactory, conversation_id: int
) -> None:
    user = await user_factory()

    async with db.transaction() as session:
        with pytest.raises((ConversationNotFound, InvalidInput)):
            await conversations.get_conversation(session, user_id=user, conversation_id=conversation_id)


@pytest.mark.parametrize(
    ("limit", "offset"),
    [(0, 0), (-1, 0), (201, 0), (10, -1), (10, 2**63)],
    ids=["limit-0", "limit-negative", "limit-201", "offset-negative", "offset-2^63"],
)
async def test_page_outside_the_bounds_is_invalid_input(
    db: Database, user_factory: UserFactory, limit: int, offset: int
) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)

    async with db.transaction() as session:
        with pytest.raises(InvalidInput, match=r"limit|offset"):
            await conversations.list_messages(
                session, user_id=user, conversation_id=conversation_id, limit=limit, offset=offset
            )
        with pytest.raises(InvalidInput, match=r"limit|offset"):
            await conversations.list_conversations(session, user_id=user, limit=limit, offset=offset)


async def test_page_at_the_bounds_is_accepted(db: Database, user_factory: UserFactory) -> None:
    user = await user_factory()
    conversation_id = await new_conversation(db, user)
    await say(db, user, conversation_id, "only")

    assert await contents(db, user, conversation_id, limit=200) == ["only"]
    assert await contents(db, user, conversation_id, limit=1, offset=0) == ["only"]
    assert await conversation_ids(db, user, limit=200) == [conversation_id]
    assert await conversation_ids(db, user, limit=1, offset=1) == []
