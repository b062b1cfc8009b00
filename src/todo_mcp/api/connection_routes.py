"""Connected apps: the OAuth clients holding access to the signed-in user's tasks.

Revoking one here stops its refresh token at once and its access tokens within seconds in every
MCP process (each re-checks a grant at most every few seconds).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from todo_mcp.api.deps import CallerDep, DatabaseDep
from todo_mcp.api.schemas import ConnectionPublic, ErrorBody
from todo_mcp.api.strict_json import StrictJSONRoute
from todo_mcp.db.types import utcnow
from todo_mcp.services.errors import Unauthenticated
from todo_mcp.services.identity import Caller
from todo_mcp.services.oauth import grants

router = APIRouter(prefix="/api/me/connections", tags=["accounts"], route_class=StrictJSONRoute)

NO_TOKEN: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody, "description": "No valid token."}}


def _signed_in(caller: Caller) -> str:
    if caller.user_id is None:
        raise Unauthenticated("Development mode has no signed-in user; set JWT_SECRET and log in.")
    return caller.user_id


@router.get("", summary="The apps connected to your tasks", responses=NO_TOKEN)
async def list_connections(caller: CallerDep, db: DatabaseDep) -> list[ConnectionPublic]:
    user_id = _signed_in(caller)
    async with db.transaction() as session:
        connections = await grants.list_connections(session, user_id, utcnow())
    return [ConnectionPublic.of(connection) for connection in connections]


@router.delete(
    "/{connection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disconnect an app",
    responses={**NO_TOKEN, 404: {"model": ErrorBody, "description": "No such connection of yours."}},
)
async def revoke_connection(connection_id: int, caller: CallerDep, db: DatabaseDep) -> Response:
    user_id = _signed_in(caller)
    async with db.transaction() as session:
        await grants.revoke_connection(session, user_id, connection_id, utcnow())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
