"""The tables, as SQLModel classes. The migrations in `migrations/` build exactly these."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, MetaData, String, Text, false
from sqlmodel import Field, SQLModel

from todo_mcp.db.types import RowId, UTCDateTime, utcnow

TITLE_MAX = 200
DESCRIPTION_MAX = 1000
USER_ID_MAX = 255
EMAIL_MAX = 320
NAME_MAX = 255
MESSAGE_ROLES = ("user", "assistant")

# Named constraints, so a migration can refer to them on every backend.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=USER_ID_MAX)
    email: str = Field(max_length=EMAIL_MAX, unique=True)
    name: str | None = Field(default=None, max_length=NAME_MAX)
    # None for users who sign in through an outside provider.
    password_hash: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # Consecutive failed password log-ins, and until when the next one is refused.
    failed_logins: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})
    login_locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    # AUTOINCREMENT on SQLite: a deleted task's id is never handed to a new task, so an agent
    # holding an old id cannot act on the wrong task.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True, sa_type=RowId)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=USER_ID_MAX)
    title: str = Field(sa_type=String(TITLE_MAX), nullable=False)
    description: str | None = Field(default=None, sa_type=String(DESCRIPTION_MAX))
    completed: bool = Field(
        default=False, sa_type=Boolean, nullable=False, sa_column_kwargs={"server_default": false()}
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True, sa_type=RowId)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=USER_ID_MAX)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant')", name="role"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=RowId)
    conversation_id: int = Field(
        foreign_key="conversations.id", ondelete="CASCADE", index=True, sa_type=RowId
    )
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=USER_ID_MAX)
    role: str = Field(sa_type=String(20), nullable=False)
    content: str = Field(sa_type=Text, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
