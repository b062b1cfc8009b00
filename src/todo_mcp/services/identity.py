"""Who is calling, and what they may do: the one authorization rule every door applies."""

from __future__ import annotations

from dataclasses import dataclass

from todo_mcp.services.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified identity behind a request.

    `user_id` is the token's subject over HTTP, or the user a stdio process was started for.
    None means development mode without tokens, where any user_id is accepted.
    """

    user_id: str | None

    @property
    def label(self) -> str:
        return self.user_id if self.user_id is not None else "(unauthenticated)"


UNRESTRICTED = Caller(user_id=None)


def authorize(caller: Caller, user_id: str) -> None:
    """Raise `Forbidden` unless the caller may act for `user_id`."""
    if caller.user_id is not None and caller.user_id != user_id:
        raise Forbidden("This token is for a different user; use your own user_id (the token's subject).")
