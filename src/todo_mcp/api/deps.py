"""Dependencies every route shares: the database, the token service, and the verified caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from todo_mcp.api.schemas import ErrorBody
from todo_mcp.db.engine import Database
from todo_mcp.services.errors import Unauthenticated
from todo_mcp.services.identity import UNRESTRICTED, Caller, authorize
from todo_mcp.services.tokens import TokenService

# auto_error=False: a missing token is our Unauthenticated (401 with a challenge), not FastAPI's 403.
bearer = HTTPBearer(auto_error=False, description="A JWT from POST /auth/login (or your auth provider).")


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_tokens(request: Request) -> TokenService | None:
    tokens: TokenService | None = request.app.state.tokens
    return tokens


DatabaseDep = Annotated[Database, Depends(get_database)]
TokensDep = Annotated[TokenService | None, Depends(get_tokens)]


async def get_caller(
    tokens: TokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The token's subject; without a token service (development mode) anyone, unverified."""
    if tokens is None:
        return UNRESTRICTED
    if credentials is None or not credentials.credentials.strip():
        raise Unauthenticated()
    verified = await tokens.verify_async(credentials.credentials.strip())
    return Caller(user_id=verified.subject)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def path_owner(user_id: str, caller: CallerDep) -> str:
    """The `user_id` of the path, once the caller is allowed to act for it (403 otherwise)."""
    authorize(caller, user_id)
    return user_id


OwnerDep = Annotated[str, Depends(path_owner)]

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody, "description": description}
    for code, description in {
        400: "Invalid input (lengths, empty title, nothing to change).",
        401: "No token, or an expired, forged or malformed one.",
        403: "The token is for a different user than the path's user_id.",
        404: "No such user, or no such item for this user (another user's is reported the same way).",
        503: "The database is unavailable; try again.",
    }.items()
}
