"""Typed domain errors. Each door maps them to its own shape in one place.

`code` is the HTTP-like status every door reports; `message` is safe to show a caller:
it says what was wrong and how to fix it, and never carries database or stack text.
"""

from __future__ import annotations


class DomainError(Exception):
    code: int = 500
    default_message = "The request failed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class InvalidInput(DomainError):
    code = 400
    default_message = "The input is invalid."


class Unauthenticated(DomainError):
    code = 401
    default_message = "No valid credentials were given; send a bearer token."


class Forbidden(DomainError):
    code = 403
    default_message = "These credentials do not allow acting for this user."


class NotFound(DomainError):
    code = 404
    default_message = "Not found."


def _shortened(value: str, limit: int = 64) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


class UserNotFound(NotFound):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"User '{_shortened(user_id)}' was not found; check the user_id.")


class TaskNotFound(NotFound):
    def __init__(self, task_id: int) -> None:
        super().__init__(
            f"Task {task_id} was not found for this user; call list_tasks to see the valid task ids."
        )


class ConversationNotFound(NotFound):
    def __init__(self, conversation_id: int) -> None:
        super().__init__(f"Conversation {conversation_id} was not found for this user.")


class Conflict(DomainError):
    code = 409
    default_message = "The request conflicts with the current state."


class TooManyAttempts(DomainError):
    code = 429

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"Too many failed log-ins for this account; try again in {retry_after_seconds} seconds."
        )


class TooManyCalls(DomainError):
    code = 429

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"Too many tool calls for this user right now; wait {retry_after_seconds} "
            f"second{'s' if retry_after_seconds != 1 else ''} and try again."
        )


class Unavailable(DomainError):
    code = 503
    default_message = "The service is unavailable right now; try again in a few seconds."


class DatabaseUnavailable(Unavailable):
    default_message = "The database is unavailable right now; try again in a few seconds."


class KeysUnavailable(Unavailable):
    default_message = "The keys to verify tokens cannot be fetched right now; try again in a few seconds."
