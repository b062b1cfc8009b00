"""What `GET /ready` answers on every door: whether this process's database answers now.

Load balancers and process managers read it to take a process out of rotation; the log line
says why, once per check, so an operator sees the cause next to the 503.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from todo_mcp.db.engine import Database
from todo_mcp.services.errors import DomainError

log = logging.getLogger(__name__)


async def readiness(db: Database) -> JSONResponse:
    try:
        await db.ping()
    except DomainError as err:
        log.warning("readiness check failed: %s", err.__cause__ or err)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})
