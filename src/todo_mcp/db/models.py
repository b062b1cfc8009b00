"""The tables, as SQLModel classes. The migrations in `migrations/` build exactly these."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    Index,
    MetaData,
    SmallInteger,
    String,
    Text,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from todo_mcp.db.types import RowId, UTCDateTime, utcnow

TITLE_MAX = 200
DESCRIPTION_MAX = 1000
USER_ID_MAX = 255
EMAIL_MAX = 320
NAME_MAX = 255
MESSAGE_ROLES = ("user", "assistant")
TIMEZONE_MAX = 64
LABEL_MAX = 40
# A label's key is its casefold, which can be up to three times as long ("ß" -> "ss").
LABEL_KEY_MAX = 3 * LABEL_MAX
CLIENT_REQUEST_ID_MAX = 64
# sort=due: dated tasks by date and time (an untimed task first on its day), undated ones last.
# The list queries write exactly these expressions, so that PostgreSQL uses the index on them.
# Not 9999-12-31: asyncpg sends date.max as 'infinity', which would sort after the stand-in
# in a page cursor. Due dates stop before the year 3000 (services/dates.py).
DUE_DATE_ORDER = "COALESCE(due_date, '9999-12-30')"
DUE_TIME_ORDER = "COALESCE(due_time, '')"

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
    # IANA name; every "today" of this user's is computed in it.
    timezone: str = Field(
        default="UTC", max_length=TIMEZONE_MAX, nullable=False, sa_column_kwargs={"server_default": "UTC"}
    )


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint("priority_rank BETWEEN 0 AND 3", name="priority_rank"),
        # The list orders: created (by id) and due, each per user and completion.
        Index("ix_tasks_user_id_id", "user_id", "id"),
        Index(
            "ix_tasks_due_order",
            "user_id",
            "completed",
            text(DUE_DATE_ORDER),
            text(DUE_TIME_ORDER),
            "priority_rank",
            "id",
            # PostgreSQL reads a page's ids from this index alone (an index-only scan) only when
            # the columns inside the expressions are in it too.
            postgresql_include=["due_date", "due_time"],
        ),
        # A retried add_task with the same client_request_id finds the task made the first time.
        Index(
            "uq_tasks_client_request",
            "user_id",
            "client_request_id",
            unique=True,
            postgresql_where=text("client_request_id IS NOT NULL"),
            sqlite_where=text("client_request_id IS NOT NULL"),
        ),
        # AUTOINCREMENT on SQLite: a deleted task's id is never handed to a new task, so an agent
        # holding an old id cannot act on the wrong task.
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=RowId)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", max_length=USER_ID_MAX)
    title: str = Field(sa_type=String(TITLE_MAX), nullable=False)
    description: str | None = Field(default=None, sa_type=String(DESCRIPTION_MAX))
    completed: bool = Field(
        default=False, sa_type=Boolean, nullable=False, sa_column_kwargs={"server_default": false()}
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # A calendar date and a local wall-clock time ("HH:MM") of the user's, never an instant.
    due_date: date | None = Field(default=None, sa_type=Date)
    due_time: str | None = Field(default=None, sa_type=String(5))
    # 0 high, 1 medium, 2 low, 3 none: ascending is most urgent first. The doors speak words.
    priority_rank: int = Field(
        default=3, sa_type=SmallInteger, nullable=False, sa_column_kwargs={"server_default": "3"}
    )
    # The labels as given, a JSON array; `task_labels` holds their keys for filtering.
    labels: str = Field(default="[]", sa_type=Text, nullable=False, sa_column_kwargs={"server_default": "[]"})
    # Casefolded title and description: one folding for the text search on every database.
    search_text: str = Field(
        default="", sa_type=Text, nullable=False, sa_column_kwargs={"server_default": ""}
    )
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    client_request_id: str | None = Field(default=None, max_length=CLIENT_REQUEST_ID_MAX)


class TaskLabel(SQLModel, table=True):
    """One label of a task, by its casefolded key: "tasks labelled X" is an indexed lookup.

    The task's completion, due date and priority are repeated here so that the commonest filtered
    list ("pending tasks labelled X, by due date") takes its page and its total from this index
    alone: 51 entries for a page of 50, where walking the tasks in due order and probing each for
    the label read 550 of them, and 0.5 ms for a total of 2,000 against 2.7 ms joined to tasks.
    """

    __tablename__ = "task_labels"
    __table_args__ = (
        # A label's tasks in the order of sort=due: a filtered page is the first entries.
        Index(
            "ix_task_labels_user_id_label_key",
            "user_id",
            "label_key",
            "completed",
            text(DUE_DATE_ORDER),
            text(DUE_TIME_ORDER),
            "priority_rank",
            "task_id",
            postgresql_include=["due_date", "due_time"],
        ),
    )

    task_id: int = Field(foreign_key="tasks.id", ondelete="CASCADE", primary_key=True, sa_type=RowId)
    label_key: str = Field(primary_key=True, max_length=LABEL_KEY_MAX)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", max_length=USER_ID_MAX)
    # The task's own values, kept equal to them by every write (services/tasks.py).
    completed: bool = Field(
        default=False, sa_type=Boolean, nullable=False, sa_column_kwargs={"server_default": false()}
    )
    due_date: date | None = Field(default=None, sa_type=Date)
    due_time: str | None = Field(default=None, sa_type=String(5))
    priority_rank: int = Field(
        default=3, sa_type=SmallInteger, nullable=False, sa_column_kwargs={"server_default": "3"}
    )


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
        # A conversation's newest messages first, for the history an assistant reply loads.
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=RowId)
    conversation_id: int = Field(foreign_key="conversations.id", ondelete="CASCADE", sa_type=RowId)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=USER_ID_MAX)
    role: str = Field(sa_type=String(20), nullable=False)
    content: str = Field(sa_type=Text, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    # An assistant message's tool calls, in order: [{name, arguments, result}], result being the
    # envelope the tool answered. None for user messages and for replies that called no tool.
    tool_calls: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)


# OAuth (services/oauth). A client id is a registration's random id or, for a client that
# publishes a metadata document, that document's HTTPS URL.
CLIENT_ID_MAX = 2048
SCOPES_MAX = 255
TOKEN_HASH_LENGTH = 64


class OAuthClient(SQLModel, table=True):
    """A client that may ask for access: registered here, or known by its metadata document."""

    __tablename__ = "oauth_clients"

    id: str = Field(primary_key=True, max_length=CLIENT_ID_MAX)
    name: str | None = Field(default=None, max_length=NAME_MAX)
    # The client's metadata as RFC 7591 names it (redirect_uris, grant_types, ...), no secret.
    client_metadata: dict[str, Any] = Field(sa_type=JSON, nullable=False)
    # The client secret is derived from JWT_SECRET and this salt, never stored (keys.py).
    secret_salt: str | None = Field(default=None, max_length=64)
    from_document: bool = Field(default=False, sa_type=Boolean, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # A metadata document is fetched again after this; None for registered clients.
    refresh_after: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Registrations nobody completes a log-in with are removed after a while.
    last_used_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class OAuthGrant(SQLModel, table=True):
    """One connection: a client's access to a user's tasks, and the family of its refresh tokens."""

    __tablename__ = "oauth_grants"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True, sa_type=RowId)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", index=True, max_length=USER_ID_MAX)
    client_id: str = Field(
        foreign_key="oauth_clients.id", ondelete="CASCADE", index=True, max_length=CLIENT_ID_MAX
    )
    scopes: str = Field(max_length=SCOPES_MAX)
    resource: str = Field(sa_type=Text, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    # When its newest refresh token expires; a revoked or expired grant is cleaned up.
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OAuthCode(SQLModel, table=True):
    """An authorization code, by its SHA-256: single use, minutes long."""

    __tablename__ = "oauth_codes"

    code_hash: str = Field(primary_key=True, max_length=TOKEN_HASH_LENGTH)
    client_id: str = Field(foreign_key="oauth_clients.id", ondelete="CASCADE", max_length=CLIENT_ID_MAX)
    user_id: str = Field(foreign_key="users.id", ondelete="CASCADE", max_length=USER_ID_MAX)
    redirect_uri: str = Field(sa_type=Text, nullable=False)
    redirect_uri_explicit: bool = Field(sa_type=Boolean, nullable=False)
    code_challenge: str = Field(max_length=128)
    scopes: str = Field(max_length=SCOPES_MAX)
    resource: str = Field(sa_type=Text, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # Set by the exchange; a second exchange finds it and revokes the grant the first one made.
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    grant_id: int | None = Field(
        default=None, foreign_key="oauth_grants.id", ondelete="CASCADE", sa_type=RowId
    )


class OAuthRefreshToken(SQLModel, table=True):
    """A refresh token, by its SHA-256. Used once: the exchange marks it and issues the next."""

    __tablename__ = "oauth_refresh_tokens"

    token_hash: str = Field(primary_key=True, max_length=TOKEN_HASH_LENGTH)
    grant_id: int = Field(foreign_key="oauth_grants.id", ondelete="CASCADE", index=True, sa_type=RowId)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
