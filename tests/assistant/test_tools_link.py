"""What the assistant's MCP connection sends: a token for the reply's user on every request, and
the tool listing once per process (not once per reply) while it is fresh."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
import pytest
from agents.testing import ScriptedModel, assistant_message, function_call
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import UserFactory

from todo_mcp.assistant.agent import AgentAssistant
from todo_mcp.assistant.tools_link import ToolsLink, process_token_service
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.services.chat import Turn
from todo_mcp.services.dates import LocalNow

pytestmark = pytest.mark.anyio


class Recorder:
    """Passes requests to the MCP app, noting each JSON-RPC method and Authorization header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        if body:
            self.seen.append((json.loads(body).get("method", ""), authorization))

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@asynccontextmanager
async def assistant_with(
    settings: Settings, db: Database, model: ScriptedModel, ttl_seconds: float | None = None
) -> AsyncIterator[tuple[AgentAssistant, Recorder]]:
    tokens = process_token_service(settings)
    tools_app = build_http_app(settings, db, host="127.0.0.1", tokens=tokens, dispose_on_shutdown=False)
    recorder = Recorder(tools_app)
    link = ToolsLink.in_process(recorder, tokens, settings)
    if ttl_seconds is not None:
        link._listing.ttl_seconds = ttl_seconds
    async with tools_app.router.lifespan_context(tools_app):
        try:
            yield AgentAssistant(model, link), recorder
        finally:
            await link.close()


def turn(user_id: str, message: str) -> Turn:
    return Turn(user_id=user_id, user_name=None, now=LocalNow.of("UTC"), history=(), message=message)


def adding(user: str, title: str, call_id: str) -> list[Any]:
    return [
        [function_call("add_task", {"user_id": user, "title": title}, call_id=call_id)],
        [assistant_message("ok")],
    ]


async def test_the_tools_are_listed_once_for_many_replies_and_every_request_carries_the_users_token(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    ada, bob = await user_factory("ada"), await user_factory("bob")
    model = ScriptedModel([*adding(ada, "one", "a"), *adding(bob, "two", "b"), *adding(ada, "three", "c")])
    async with assistant_with(settings, db, model) as (assistant, recorder):
        for user, message in ((ada, "one"), (bob, "two"), (ada, "three")):
            reply = await assistant.reply(turn(user, message))
            assert [call.result["status"] for call in reply.tool_calls] == ["success"]

    methods = [method for method, _ in recorder.seen]
    assert methods.count("tools/list") == 1
    assert methods.count("tools/call") == 3
    subjects = [
        jwt.decode(auth.removeprefix("Bearer "), options={"verify_signature": False})["sub"]
        for _, auth in recorder.seen
    ]
    calls = [
        subject
        for (method, _), subject in zip(recorder.seen, subjects, strict=True)
        if method == "tools/call"
    ]
    assert calls == [ada, bob, ada]


async def test_a_stale_listing_is_listed_again(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    ada = await user_factory("ada")
    model = ScriptedModel([*adding(ada, "one", "a"), *adding(ada, "two", "b")])
    async with assistant_with(settings, db, model, ttl_seconds=0) as (assistant, recorder):
        for message in ("one", "two"):
            await assistant.reply(turn(ada, message))

    assert [method for method, _ in recorder.seen].count("tools/list") >= 2
