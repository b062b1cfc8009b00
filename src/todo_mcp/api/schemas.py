"""Request and response bodies of the REST API, with the examples OpenAPI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from todo_mcp.db.models import Conversation, Message, User
from todo_mcp.services.tasks import TaskRecord

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
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(id=user.id, email=user.email, name=user.name, created_at=user.created_at)


class TokenResponse(BaseModel):
    access_token: str = Field(
        description="A JWT; send it as `Authorization: Bearer <token>` to REST and MCP."
    )
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_in: int = Field(description="Seconds until the token expires.", examples=[3600])
    user: UserPublic


class TaskCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"title": "Buy milk", "description": "2 litres"}]}
    )

    title: str = Field(description="1-200 characters after trimming.")
    description: str | None = Field(default=None, description="Up to 1000 characters.")


class TaskUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Buy oat milk", "description": ""}]})

    title: str | None = Field(default=None, description="New title; omit to keep it.")
    description: str | None = Field(default=None, description="New description; an empty string clears it.")
    completed: bool | None = Field(default=None, description="New completion state; omit to keep it.")


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
                    "title": "Buy milk",
                    "description": "2 litres",
                    "completed": False,
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
            created_at=task.created_at,
            updated_at=task.updated_at,
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


class MessagePublic(BaseModel):
    id: int
    conversation_id: int
    role: Literal["user", "assistant"]
    content: str
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
            created_at=message.created_at,
        )


class ConversationPage(BaseModel):
    items: list[ConversationPublic]
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page.")


class MessagePage(BaseModel):
    items: list[MessagePublic]
    next_offset: int | None = Field(description="Pass as offset for the next page; null on the last page.")
