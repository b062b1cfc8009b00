"""Request and response bodies of the REST API, with the examples OpenAPI shows."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from todo_mcp.db.models import Conversation, Message, User
from todo_mcp.services.oauth.grants import Connection
from todo_mcp.services.tasks import TaskPage, TaskRecord

EXAMPLE_TIME = "2026-11-24T10:00:00Z"


class ErrorBody(BaseModel):
    detail: str = Field(examples=["Task 7 was not found for this user."])
    error_id: str | None = Field(
        default=None, description="Quote it when reporting a 5xx; the server log has the details under it."
    )


class Problem(BaseModel):
    field: str = Field(
        description="Where the problem is: `body`, `body.<name>`, `query.<name>` or `path.<name>`.",
        examples=["body.password"],
    )
    message: str = Field(description="What is wrong; never the value sent.", examples=["Field required"])


class ValidationErrorBody(BaseModel):
    """A request that does not match the schema. No submitted value is ever echoed back."""

    detail: str = Field(examples=["The request is invalid: body.password: Field required."])
    error_id: str = Field(description="Also in the server log, with the same list of problems.")
    problems: list[Problem]


class SignupRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}]
        }
    )

    email: str
    password: str = Field(description="8-256 characters.")
    name: str | None = None
    timezone: str | None = Field(
        default=None, description="IANA time zone, such as Europe/Lisbon; UTC when omitted."
    )


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"timezone": "America/New_York"}]})

    name: str | None = Field(default=None, description="Display name; an empty string clears it.")
    timezone: str | None = Field(default=None, description="IANA time zone, such as Europe/Lisbon.")


class LoginRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ada@example.com", "password": "correct horse battery"}]}
    )

    email: str
    password: str


class UserPublic(BaseModel):
    id: str
    email: str
    name: str | None
    timezone: str = Field(description="IANA time zone; every today, tomorrow and overdue is computed in it.")
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            id=user.id, email=user.email, name=user.name, timezone=user.timezone, created_at=user.created_at
        )


class TokenResponse(BaseModel):
    access_token: str = Field(
        description="A JWT; send it as `Authorization: Bearer <token>` to REST and MCP."
    )
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_in: int = Field(description="Seconds until the token expires.", examples=[3600])
    user: UserPublic


class ConnectionPublic(BaseModel):
    """An app connected through OAuth (a remote MCP client the user allowed)."""

    id: int
    client_id: str = Field(description="The app's client id: a registration's id or its metadata URL.")
    client_name: str | None = Field(description="The name the app gave; not verified for registered apps.")
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime = Field(description="When it last got tokens (log-in or refresh).")

    @classmethod
    def of(cls, connection: Connection) -> ConnectionPublic:
        return cls(
            id=connection.id,
            client_id=connection.client_id,
            client_name=connection.client_name,
            scopes=connection.scopes,
            created_at=connection.created_at,
            last_used_at=connection.last_used_at,
        )


DUE_FIELD = (
    "When it is due, in the user's time zone: YYYY-MM-DD, YYYY-MM-DDTHH:MM (local), an ISO 8601 "
    "date-time with an offset, or today, tomorrow, a weekday name, next week, in N days (each may be "
    "followed by a 24-hour time: tomorrow 09:30)."
)
Priority = Literal["none", "low", "medium", "high"]


class TaskCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"title": "Buy milk", "description": "2 litres"},
                {
                    "title": "Call the dentist",
                    "due": "tomorrow 09:00",
                    "priority": "high",
                    "labels": ["health"],
                    "client_request_id": "2b7c0b4e-6a51-4f7e-9d0e-1f2a3b4c5d6e",
                },
            ]
        }
    )

    title: str = Field(description="1-200 characters after trimming.")
    description: str | None = Field(default=None, description="Up to 1000 characters.")
    due: str | None = Field(default=None, description=DUE_FIELD)
    priority: Priority | None = Field(default=None, description="none (the default), low, medium or high.")
    labels: list[str] | None = Field(default=None, description="Up to 10 labels of 1-40 characters.")
    client_request_id: str | None = Field(
        default=None,
        description="Up to 64 characters; a retry with the same id within 24 hours returns the task made "
        "the first time (200 with `deduplicated: true`) instead of adding another.",
    )


class TaskUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"title": "Buy oat milk", "description": ""},
                {"due": "friday", "priority": "medium", "labels": ["errands", "home"]},
                {"completed": False},
            ]
        }
    )

    title: str | None = Field(default=None, description="New title; omit to keep it.")
    description: str | None = Field(default=None, description="New description; an empty string clears it.")
    due: str | None = Field(default=None, description=DUE_FIELD + " An empty string clears it.")
    priority: Priority | None = Field(default=None, description="New priority; omit to keep it.")
    labels: list[str] | None = Field(default=None, description="The new set of labels; [] clears them.")
    completed: bool | None = Field(
        default=None, description="New completion state (false reopens the task); omit to keep it."
    )


class CompletionChange(BaseModel):
    completed: bool | None = Field(
        default=None, description="The state to set; omit it (or send no body) to toggle."
    )


class TaskPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "user_id": "u_3f9c",
                    "title": "Call the dentist",
                    "description": None,
                    "completed": False,
                    "due_date": "2026-11-25",
                    "due_time": "09:00",
                    "due_label": "tomorrow",
                    "priority": "high",
                    "labels": ["health"],
                    "completed_at": None,
                    "created_at": EXAMPLE_TIME,
                    "updated_at": EXAMPLE_TIME,
                }
            ]
        }
    )

    id: int = Field(description="The task id; the same id the MCP tools call task_id.")
    user_id: str
    title: str
    description: str | None
    completed: bool
    due_date: date | None = Field(description="The user's local calendar date.")
    due_time: str | None = Field(description="The user's local wall-clock time, HH:MM; null for all day.")
    due_label: Literal["overdue", "today", "tomorrow"] | None = Field(
        description="Worked out in the user's time zone at the time of the answer."
    )
    priority: Priority
    labels: list[str]
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, task: TaskRecord) -> TaskPublic:
        return cls(
            id=task.id,
            user_id=task.user_id,
            title=task.title,
            description=task.description,
            completed=task.completed,
            due_date=task.due_date,
            due_time=task.due_time,
            due_label=task.due_label,
            priority=task.priority,
            labels=list(task.labels),
            completed_at=task.completed_at,
            created_at=task.created_at,
            updated_at=task.updated_at,
        )


class AddedTaskPublic(TaskPublic):
    deduplicated: bool = Field(
        default=False, description="True when client_request_id found the task an earlier request made."
    )


class TaskPagePublic(BaseModel):
    tasks: list[TaskPublic]
    count: int = Field(description="Tasks in this page.")
    total: int = Field(description="Tasks matching the filters, over all pages.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (same filters) for the next page; null on the last."
    )
    today: date = Field(description="The user's local date.")
    timezone: str = Field(description="The user's IANA time zone.")

    @classmethod
    def of(cls, page: TaskPage) -> TaskPagePublic:
        return cls(
            tasks=[TaskPublic.of(task) for task in page.tasks],
            count=page.count,
            total=page.total,
            next_cursor=page.next_cursor,
            today=page.today,
            timezone=page.timezone,
        )


class ConversationPublic(BaseModel):
    id: int
    user_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationPublic:
        assert conversation.id is not None
        return cls(
            id=conversation.id,
            user_id=conversation.user_id,
            created_at=conversation.created_at,
            updated_at=conversation.updated_at,
        )


class MessageCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "user", "content": "What is on my list?"}]}
    )

    role: Literal["user", "assistant"]
    content: str = Field(description="1-32000 characters.")


class ToolCallPublic(BaseModel):
    """One tool call the assistant made, as it made it and as the tool answered."""

    name: str = Field(examples=["add_task"])
    arguments: dict[str, Any] | str = Field(
        description="The arguments the model sent, as a JSON object (as raw text when they were not one).",
        examples=[{"user_id": "u_3f9c", "title": "Call the dentist", "due": "tomorrow 09:00"}],
    )
    result: dict[str, Any] = Field(
        description="The tool's result envelope {status, data, message}; for a call that never reached "
        "a tool (an unknown tool name, arguments that are not JSON) an error envelope saying so."
    )


class MessagePublic(BaseModel):
    id: int
    conversation_id: int
    role: Literal["user", "assistant"]
    content: str
    tool_calls: list[ToolCallPublic] = Field(
        default_factory=list, description="The tools the assistant called for this reply, in order."
    )
    created_at: datetime

    @classmethod
    def of(cls, message: Message) -> MessagePublic:
        assert message.id is not None
        role: Literal["user", "assistant"] = "user" if message.role == "user" else "assistant"
        return cls(
            id=message.id,
            conversation_id=message.conversation_id,
            role=role,
            content=message.content,
            tool_calls=[ToolCallPublic.model_validate(call) for call in message.tool_calls or ()],
            created_at=message.created_at,
        )


class ConversationPage(BaseModel):
    items: list[ConversationPublic]
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page.")


class MessagePage(BaseModel):
    items: list[MessagePublic]
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page.")


class ChatRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"message": "Remind me to call the dentist tomorrow at 9"},
                {"conversation_id": 12, "message": "What's due today?"},
            ]
        }
    )

    conversation_id: int | None = Field(
        default=None, description="The conversation to continue; omit it to start a new one."
    )
    message: str = Field(description="What the user says, 1-32000 characters.")


class ChatResponse(BaseModel):
    conversation_id: int = Field(description="Send it with the next message to continue the conversation.")
    response: str = Field(
        description="The assistant's answer.", examples=["Added 'Call the dentist', due tomorrow at 09:00."]
    )
    tool_calls: list[ToolCallPublic] = Field(description="The tools the assistant called, in order.")
