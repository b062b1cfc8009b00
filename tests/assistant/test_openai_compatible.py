"""CHAT_MODEL + CHAT_BASE_URL: the assistant on an OpenAI-compatible chat-completions server.

The server is a small fake on 127.0.0.1 that records what it receives and answers as a model
would: a tool call when asked to remember something, text otherwise (streamed when asked to
stream). The checks are on what reached it: the system prompt with the user's local date, the
history in order, the tools listed, the key.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.assistant.conftest import chat_app
from tests.conftest import UserFactory, make_settings

from todo_mcp.db.engine import Database

pytestmark = pytest.mark.anyio

API_KEY = "sk-test-not-a-real-key"


class FakeModelServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])

    async def completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        self.authorizations.append(request.headers.get("authorization"))
        messages = body["messages"]
        if messages[-1]["role"] == "tool":
            reply: dict[str, Any] = {
                "role": "assistant",
                "content": "Added \u201cCall the dentist\u201d for tomorrow.",
            }
        elif "remind me" in str(messages[-1].get("content", "")):
            user_id = json.loads(re.search(r'user_id is ("[^"]+")', messages[0]["content"]).group(1))  # type: ignore[union-attr]
            arguments = {"user_id": user_id, "title": "Call the dentist", "due": "tomorrow"}
            reply = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "add_task", "arguments": json.dumps(arguments)},
                    }
                ],
            }
        else:
            reply = {"role": "assistant", "content": "You're welcome, anything else?"}
        finish = "tool_calls" if reply.get("tool_calls") else "stop"
        if body.get("stream"):
            return StreamingResponse(
                self._chunks(body["model"], reply, finish), media_type="text/event-stream"
            )
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    async def _chunks(self, model: str, reply: dict[str, Any], finish: str) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            data = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        yield chunk({"role": "assistant", "content": ""})
        if reply.get("tool_calls"):
            call = reply["tool_calls"][0]
            yield chunk({"tool_calls": [{"index": 0, **call}]})
        else:
            for word in re.findall(r"\S+\s*", reply["content"]):
                yield chunk({"content": word})
                await asyncio.sleep(0.01)
        yield chunk({}, finish)
        yield b"data: [DONE]\n\n"


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


async def test_an_openai_compatible_server_gets_the_prompt_history_and_tools_and_drives_the_tools(
    database_url: str, db: Database, user_factory: UserFactory
) -> None:
    fake = FakeModelServer()
    user = await user_factory("ada")
    async with serving(fake.app()) as base:
        settings = make_settings(
            database_url,
            jwt_secret="x" * 40,
            chat_model="fake-model",
            chat_base_url=f"{base}/v1",
            chat_api_key=API_KEY,
        )
        async with chat_app(settings, db) as chat:
            changed = await chat.client.patch(
                "/api/me", json={"timezone": "America/New_York"}, headers=chat.auth(user)
            )
            assert changed.status_code == 200
            first = await chat.say(user, "remind me to call the dentist tomorrow")
            assert first.status_code == 200, first.text
            conversation = first.json()["conversation_id"]
            second = await chat.say(user, "thanks", conversation)
            assert second.status_code == 200, second.text
            listed = await chat.tasks(user)

    assert first.json()["response"] == "Added \u201cCall the dentist\u201d for tomorrow."
    (call,) = first.json()["tool_calls"]
    assert call["name"] == "add_task"
    assert call["result"]["status"] == "success"
    assert [(task["title"], task["due_label"]) for task in listed] == [("Call the dentist", "tomorrow")]

    assert all(auth == f"Bearer {API_KEY}" for auth in fake.authorizations)
    assert all(body["model"] == "fake-model" for body in fake.requests)
    opening = fake.requests[0]
    system = opening["messages"][0]
    today = datetime.now(ZoneInfo("America/New_York")).date().isoformat()
    assert system["role"] == "system"
    assert f"local date {today}" in system["content"]
    assert "America/New_York" in system["content"]
    assert f'user_id is "{user}"' in system["content"]
    tools = {tool["function"]["name"]: tool["function"] for tool in opening["tools"]}
    assert set(tools) == {"add_task", "list_tasks", "complete_task", "update_task", "delete_task"}
    assert "user_id" in tools["add_task"]["parameters"]["properties"]
    # The tool's answer went back to the model before its final text.
    tool_message = fake.requests[1]["messages"][-1]
    content = tool_message["content"]
    text = content if isinstance(content, str) else "".join(part["text"] for part in content)
    assert tool_message["role"] == "tool"
    assert json.loads(text)["status"] == "success"
    # The next message carries the stored history, in order, after the system prompt.
    assert [(m["role"], m.get("content")) for m in fake.requests[2]["messages"][1:]] == [
        ("user", "remind me to call the dentist tomorrow"),
        ("assistant", "Added \u201cCall the dentist\u201d for tomorrow."),
        ("user", "thanks"),
    ]


async def test_a_streamed_reply_from_a_real_model_arrives_as_text_deltas(
    database_url: str, db: Database, user_factory: UserFactory
) -> None:
    fake = FakeModelServer()
    user = await user_factory("ada")
    async with serving(fake.app()) as base:
        settings = make_settings(
            database_url, jwt_secret="x" * 40, chat_model="fake-model", chat_base_url=f"{base}/v1"
        )
        async with chat_app(settings, db, over_tcp=True) as chat:
            response = await chat.client.post(
                f"/api/{user}/chat",
                json={"message": "thanks"},
                headers={**chat.auth(user), "Accept": "text/event-stream"},
            )

    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ", 1)[1]))
        for block in response.text.split("\n\n")
        if block.strip()
    ]
    deltas = [data["delta"] for name, data in events if name == "text"]
    assert len(deltas) > 1
    assert "".join(deltas) == events[-1][1]["response"] == "You're welcome, anything else?"
    assert fake.requests[0]["stream"] is True
    # No key configured for a local server: a placeholder is sent, as local servers expect.
    assert fake.authorizations[0] == "Bearer not-needed"


async def test_a_model_server_that_is_down_is_a_503_and_the_message_is_kept(
    database_url: str, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    settings = make_settings(
        database_url, jwt_secret="x" * 40, chat_model="fake-model", chat_base_url="http://127.0.0.1:9/v1"
    )
    async with chat_app(settings, db) as chat:
        conversation = (await chat.client.post(f"/api/{user}/conversations", headers=chat.auth(user))).json()[
            "id"
        ]
        response = await chat.say(user, "hello", conversation)
        stored = await chat.messages(user, conversation)

    assert response.status_code == 503, response.text
    assert "model server" in response.json()["detail"]
    assert response.json()["error_id"]
    assert [m["content"] for m in stored] == ["hello"]
