"""POST /api/{user_id}/chat: talk to the assistant, in one answer or as server-sent events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from todo_mcp.api.deps import ERRORS, DatabaseDep, OwnerDep
from todo_mcp.api.schemas import ChatRequest, ChatResponse, ErrorBody, ToolCallPublic
from todo_mcp.api.strict_json import StrictJSONRoute
from todo_mcp.assistant.setup import AssistantSetup
from todo_mcp.db.engine import Database
from todo_mcp.mcp.runtime import new_error_id
from todo_mcp.services import chat
from todo_mcp.services.errors import DomainError

log = logging.getLogger("todo_mcp.api")

STREAM_DESCRIPTION = """\
With `Accept: text/event-stream` the answer streams as server-sent events, as they happen:
`conversation` ({conversation_id}) first, then `tool_call` ({name, arguments}) when the assistant
calls a tool, `tool_result` ({name, arguments, result}) when it answers, `text` ({delta}) as the
answer is written, and last `done` with the same object as the JSON answer, or `error`
({detail, error_id, status}) if the reply failed (the message stays stored).
"""

router = APIRouter(prefix="/api/{user_id}", tags=["assistant"], route_class=StrictJSONRoute)

FAILURES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    502: {"model": ErrorBody, "description": "The model gave no usable answer; the message is stored."},
    503: {"model": ErrorBody, "description": "The database, the model server or the tools are unreachable."},
    504: {"model": ErrorBody, "description": "The reply took longer than CHAT_TIMEOUT_SECONDS."},
}


def answer_body(answer: chat.ChatAnswer) -> ChatResponse:
    return ChatResponse(
        conversation_id=answer.conversation_id,
        response=answer.response,
        tool_calls=[ToolCallPublic.model_validate(call.as_json()) for call in answer.tool_calls],
    )


@router.post(
    "/chat",
    summary="Send the assistant a message; it works the to-do list through the MCP tools",
    description=STREAM_DESCRIPTION,
    # The JSON answer; a streamed one is returned as a response of its own.
    response_model=ChatResponse,
    responses={
        **FAILURES,
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    },
)
async def post_chat(
    owner: OwnerDep, db: DatabaseDep, body: ChatRequest, request: Request
) -> ChatResponse | Response:
    setup: AssistantSetup = request.app.state.assistant
    started = await chat.start_turn(
        db,
        user_id=owner,
        message=body.message,
        conversation_id=body.conversation_id,
        budget=setup.budget,
        clock=request.app.state.clock,
    )
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            _stream(db, setup, started, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    reply = await setup.assistant.reply(started.turn)
    return answer_body(await chat.finish_turn(db, started, reply))


class _Relay:
    """The assistant's progress, queued as events for the stream."""

    def __init__(self, queue: asyncio.Queue[tuple[str, Any] | None]) -> None:
        self.queue = queue

    async def tool_called(self, name: str, arguments: dict[str, Any] | str) -> None:
        await self.queue.put(("tool_call", {"name": name, "arguments": arguments}))

    async def tool_answered(self, call: chat.ToolCall) -> None:
        await self.queue.put(("tool_result", call.as_json()))

    async def text(self, delta: str) -> None:
        await self.queue.put(("text", {"delta": delta}))


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _stream(
    db: Database, setup: AssistantSetup, started: chat.StartedTurn, request: Request
) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            reply = await setup.assistant.reply(started.turn, _Relay(queue))
            answer = await chat.finish_turn(db, started, reply)
            await queue.put(("done", answer_body(answer).model_dump(mode="json")))
        except DomainError as exc:
            await queue.put(("error", _failure(request, exc, exc.code, exc.message)))
        except Exception as exc:
            message = "The server failed to handle this request; report the error id."
            await queue.put(("error", _failure(request, exc, 500, message)))
        finally:
            await queue.put(None)

    yield _event("conversation", {"conversation_id": started.conversation_id})
    task = asyncio.create_task(produce())
    try:
        while (item := await queue.get()) is not None:
            yield _event(*item)
    finally:
        # The client went away mid-reply: stop the run (its message is already stored).
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


def _failure(request: Request, exc: Exception, status: int, detail: str) -> dict[str, Any]:
    error_id = new_error_id()
    log.error(
        "%s %s error_id=%s streamed reply failed: %s",
        request.method,
        request.url.path,
        error_id,
        detail,
        exc_info=exc.__cause__ if isinstance(exc, DomainError) else exc,
    )
    return {"detail": detail, "error_id": error_id, "status": status}
