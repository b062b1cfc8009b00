"""Users: creation rules, uniqueness, and what deleting a user removes (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from tests.conftest import UserFactory
from todo_mcp.db.engine import Database
from todo_mcp.db.models import Conversation, Message, Task, User
from todo_mcp.services import conversations, tasks, users
from todo_mcp.services.errors import Conflict, InvalidInput, UserNotFound

pytestmark = pytest.mark.anyio


async def create(
    db: Database, user_id: str, email: str, name: str | None = None, password_hash: str | None = None
) -> User:
    async with db.transaction() as session:
        return await users.create_user(
            session, user_id=user_id, email=email, name=name, password_hash=password_hash
        )


async def user_ids(db: Database) -> list[str]:
    async with db.transaction() as session:
        return [user.id for user in await users.list_users(session)]


async def test_created_user_is_stored_with_a_normalised_email_and_name(db: Database) -> None:
    created = await create(db, "auth0|ada", "  Ada@Example.COM ", name="  Ada Lovelace ", password_hash="h")

    async with db.transaction() as session:
        stored = await users.get_user(session, user_id="auth0|ada")

    assert (created.id, created.email, created.name) == ("auth0|ada", "ada@example.com", "Ada Lovelace")
    assert (stored.id, stored.email, stored.name, stored.password_hash) == (
        "auth0|ada",
        "ada@example.com",
        "Ada Lovelace",
        "h",
    )
    assert stored.created_at.utcoffset() == timedelta(0)
    assert stored.created_at == created.created_at


async def test_user_from_an_outside_provider_has_no_password_hash_or_name(db: Database) -> None:
    await create(db, "google-123", "g@example.com", name="   ")

    async with db.transaction() as session:
        stored = await users.get_user(session, user_id="google-123")

    assert (stored.name, stored.password_hash) == (None, None)


async def test_duplicate_user_id_is_a_conflict(db: Database) -> None:
    await create(db, "ada", "ada@example.com")

    with pytest.raises(Conflict, match="already exists") as raised:
        await create(db, "ada", "other@example.com")

    assert raised.value.code == 409
    assert await user_ids(db) == ["ada"]


@pytest.mark.parametrize("email", ["ada@example.com", "ADA@EXAMPLE.COM", " Ada@Example.com "])
async def test_duplicate_email_in_any_case_is_a_conflict(db: Database, email: str) -> None:
    await create(db, "ada", "ada@example.com")

    with pytest.raises(Conflict):
        await create(db, "imposter", email)

    assert await user_ids(db) == ["ada"]


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "not-an-email",
        "ada@",
        "@example.com",
        "ada@example",
        "ada lovelace@example.com",
        "a\x00@b.co",
        "a" * 310 + "@example.com",
    ],
    ids=["empty", "blank", "no-at", "no-domain", "no-local", "no-dot", "space", "nul", "too-long"],
)
async def test_bad_email_is_invalid_input(db: Database, email: str) -> None:
    with pytest.raises(InvalidInput, match="email"):
        await create(db, "ada", email)

    assert await user_ids(db) == []


@pytest.mark.parametrize(
    "user_id", ["", "   ", "x" * 256, "nul\x00"], ids=["empty", "blank", "too-long", "nul"]
)
async def test_bad_user_id_is_invalid_input(db: Database, user_id: str) -> None:
    with pytest.raises(InvalidInput, match="user_id"):
        await create(db, user_id, "ada@example.com")

    assert await user_ids(db) == []


async def test_name_longer_than_255_characters_is_invalid_input(db: Database) -> None:
    with pytest.raises(InvalidInput, match="name"):
        await create(db, "ada", "ada@example.com", name="n" * 256)


async def test_users_are_listed_oldest_first(db: Database, user_factory: UserFactory) -> None:
    first = await user_factory("zed")
    second = await user_factory("amy")

    assert await user_ids(db) == [first, second]


async def test_getting_an_unknown_user_is_user_not_found(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(UserNotFound, match="'nobody'"):
            await users.get_user(session, user_id="nobody")


async def test_deleting_an_unknown_user_is_user_not_found(db: Database) -> None:
    async with db.transaction() as session:
        with pytest.raises(UserNotFound):
            await users.delete_user(session, user_id="nobody")


async def _populate(db: Database, user_id: str) -> None:
    """Two tasks, and a conversation with two messages."""
    async with db.connect() as conn:
        await tasks.add_task(conn, user_id=user_id, title=f"{user_id} one")
        await tasks.add_task(conn, user_id=user_id, title=f"{user_id} two")
    async with db.transaction() as session:
        conversation = await conversations.create_conversation(session, user_id=user_id)
        for role in ("user", "assistant"):
            await conversations.append_message(
                session, user_id=user_id, conversation_id=conversation.id or 0, role=role, content="hi"
            )


async def _row_counts(db: Database, user_id: str) -> tuple[int, int, int, int]:
    """How many users, tasks, conversations and messages rows belong to the user."""
    async with db.transaction() as session:
        return (
            (await session.exec(select(func.count()).where(col(User.id) == user_id))).one(),
            (await session.exec(select(func.count()).where(col(Task.user_id) == user_id))).one(),
            (await session.exec(select(func.count()).where(col(Conversation.user_id) == user_id))).one(),
            (await session.exec(select(func.count()).where(col(Message.user_id) == user_id))).one(),
        )


async def test_deleting_a_user_removes_their_tasks_conversations_and_messages_only(
    db: Database, user_factory: UserFactory
) -> None:
    alice = await user_factory()
    bob = await user_factory()
    await _populate(db, alice)
    await _populate(db, bob)
    assert await _row_counts(db, alice) == (1, 2, 1, 2)

    async with db.transaction() as session:
        await users.delete_user(session, user_id=alice)

    assert await _row_counts(db, alice) == (0, 0, 0, 0)
    assert await _row_counts(db, bob) == (1, 2, 1, 2)
    assert await user_ids(db) == [bob]
    async with db.connect() as conn:
        with pytest.raises(UserNotFound):
            await tasks.list_tasks(conn, user_id=alice)
        bobs = (await tasks.list_tasks(conn, user_id=bob)).tasks
    assert [task.title for task in bobs] == [f"{bob} one", f"{bob} two"]


async def test_a_deleted_users_id_and_email_can_be_used_again(db: Database) -> None:
    await create(db, "ada", "ada@example.com")
    async with db.transaction() as session:
        await users.delete_user(session, user_id="ada")

    again = await create(db, "ada", "ada@example.com")

    assert again.id == "ada"
    async with db.connect() as conn:
        assert (await tasks.list_tasks(conn, user_id="ada")).tasks == []
