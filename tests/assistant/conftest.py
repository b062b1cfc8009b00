"""The REST app with its assistant, lifespan and all (the assistant's own MCP server runs in it),
over the `db` fixture's database, with the model a test gives (scripted) or the offline one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from agents.models.interface import Model
from agents.testing import ModelCall
from tests.api.conftest import BASE_URL, JWT_SECRET, bearer
from tests.conftest import make_settings

from todo_mcp.api.app import build_api_app
from todo_mcp.assistant.setup import build_assistant
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database
from todo_mcp.services.dates import SYSTEM_CLOCK, Clock
from todo_mcp.services.tokens import TokenService

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, jwt_secret=JWT_SECRET)


class Chat:
    """A client of the chat endpoint, acting for whichever user a call names."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.client = client
        self.tokens = TokenService(settings) if settings.auth_enabled else None

    def auth(self, user_id: str) -> dict[str, str]:
        return bearer(self.tokens.issue(user_id, timedelta(minutes=5))) if self.tokens else {}

    async def say(
        self, user_id: str, message: str, conversation_id: int | None = None, **headers: str
    ) -> httpx.Response:
        body: dict[str, Any] = {"message": message}
        if conversation_id is not None:
            body["conversation_id"] = conversation_id
        return await self.client.post(
            f"/api/{user_id}/chat", json=body, headers={**self.auth(user_id), **headers}
        )

    async def messages(self, user_id: str, conversation_id: int) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/{user_id}/conversations/{conversation_id}/messages", headers=self.auth(user_id)
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def tasks(self, user_id: str, **query: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/{user_id}/tasks", params={"limit": "100", **query}, headers=self.auth(user_id)
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["tasks"]
        return found


@asynccontextmanager
async def chat_app(
    settings: Settings,
    db: Database,
    model: Model | None = None,
    clock: Clock = SYSTEM_CLOCK,
    *,
    over_tcp: bool = False,
) -> AsyncIterator[Chat]:
    """The app, called in process, or `over_tcp` served by uvicorn on 127.0.0.1 in this event
    loop (httpx's ASGI transport hands over a response only once it is complete, so streaming
    is seen only over a socket)."""
    assistant = build_assistant(settings, db, model=model, clock=clock)
    app = build_api_app(settings, db, dispose_on_shutdown=False, clock=clock, assistant=assistant)
    if not over_tcp:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=BASE_URL
            ) as client,
        ):
            yield Chat(client, settings)
        return
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn stopped while starting"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield Chat(client, settings)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)


def tool_outputs(call: ModelCall) -> list[dict[str, Any]]:
    """The envelopes of the tool answers in a model call's input, in order."""
    found = []
    for item in call.input:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else "".join(part.get("text", "") for part in output)
            found.append(json.loads(text) if text.startswith("{") else {"raw": text})
    return found


def messages_sent(call: ModelCall) -> list[tuple[str, str]]:
    """The (role, text) messages of a model call's input, in order."""
    sent = []
    for item in call.input:
        if isinstance(item, dict) and item.get("role") in ("user", "assistant") and "content" in item:
            content = item["content"]
            text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
            sent.append((str(item["role"]), text))
    return sent
