"""Users: the accounts that own tasks and conversations."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from todo_mcp.db.models import User
from todo_mcp.services.dates import DEFAULT_TIMEZONE, check_timezone
from todo_mcp.services.errors import Conflict, InvalidInput, UserNotFound
from todo_mcp.services.validation import check_user_id, clean_email, clean_name


async def create_user(
    session: AsyncSession,
    *,
    user_id: str,
    email: str,
    name: str | None = None,
    password_hash: str | None = None,
    timezone: str | None = None,
) -> User:
    user = User(
        id=check_user_id(user_id),
        email=clean_email(email),
        name=clean_name(name),
        password_hash=password_hash,
        timezone=check_timezone(timezone) if timezone is not None else DEFAULT_TIMEZONE,
    )
    # Checked first for a precise message; the unique constraints still decide under races.
    taken = await session.exec(
        select(User.id).where((col(User.id) == user.id) | (col(User.email) == user.email))
    )
    if taken.first() is not None:
        raise Conflict("A user with this id or email already exists.")
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("A user with this id or email already exists.") from exc
    return user


async def get_user(session: AsyncSession, *, user_id: str) -> User:
    user = await session.get(User, check_user_id(user_id))
    if user is None:
        raise UserNotFound(user_id)
    return user


async def require_user(session: AsyncSession, *, user_id: str) -> None:
    """Raise `UserNotFound` unless the user exists."""
    found = await session.exec(select(User.id).where(col(User.id) == user_id))
    if found.first() is None:
        raise UserNotFound(user_id)


async def update_profile(
    session: AsyncSession, *, user_id: str, name: str | None = None, timezone: str | None = None
) -> User:
    """Change the user's display name (an empty one clears it) and/or time zone."""
    if name is None and timezone is None:
        raise InvalidInput("Give a name, a timezone, or both; nothing was changed.")
    new_timezone = check_timezone(timezone) if timezone is not None else None
    new_name = clean_name(name) if name is not None else None
    user = await get_user(session, user_id=user_id)
    if name is not None:
        user.name = new_name
    if new_timezone is not None:
        user.timezone = new_timezone
    await session.flush()
    return user


async def list_users(session: AsyncSession) -> Sequence[User]:
    result = await session.exec(select(User).order_by(col(User.created_at), col(User.id)))
    return result.all()


async def delete_user(session: AsyncSession, *, user_id: str) -> None:
    """Delete the user; the database cascades to their tasks, conversations and messages."""
    user = await get_user(session, user_id=user_id)
    await session.delete(user)
    await session.flush()
