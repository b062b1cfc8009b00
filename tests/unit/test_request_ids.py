"""Request ids: taken from a proxy's X-Request-Id when usable, echoed in the answer, on every log
line of the request (text and JSON), and the error id of its failures; JSON tool-call lines carry
their tool, user, outcome and duration as fields. Over both HTTP apps, in process."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
from starlette.applications import Starlette

from tests.asgi import running
from tests.conftest import UserFactory, make_settings
from todo_mcp.api.app import build_api_app
from todo_mcp.config import Settings
from todo_mcp.db.engine import Database
from todo_mcp.logs import BatchedStreamHandler, JsonFormatter, Structured, TextFormatter
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.services import tasks

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@contextmanager
def captured(formatter: logging.Formatter) -> Iterator[io.StringIO]:
    """The lines our own handler writes for the todo_mcp loggers, as the server would write them."""
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(formatter)
    structured = Structured.fields
    Structured.fields = isinstance(formatter, JsonFormatter)
    logger = logging.getLogger("todo_mcp")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        Structured.fields = structured
        handler.close()
        logger.removeHandler(handler)
        logger.setLevel(level)


def mcp_app(settings: Settings, db: Database) -> Starlette:
    return build_http_app(settings, db, host="127.0.0.1", dispose_on_shutdown=False)


async def test_a_proxys_request_id_is_echoed_and_on_the_json_tool_line_with_its_fields(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    with captured(JsonFormatter()) as stream:
        async with running(mcp_app(settings, db)) as client:
            response = await client.post(
                "/tools/add_task",
                json={"user_id": user, "title": "Traced"},
                headers={"X-Request-Id": "edge-42.a:b"},
            )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "edge-42.a:b"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [call] = [line for line in lines if line.get("tool") == "add_task"]
    assert call["request_id"] == "edge-42.a:b"
    assert (call["user"], call["outcome"]) == (user, "ok")
    assert isinstance(call["duration_ms"], float)
    assert call["logger"] == "todo_mcp.tools"


@pytest.mark.parametrize(
    "given",
    [None, "", "has space", "x" * 129, "new\nline", 'quote"d'],
    ids=["none", "empty", "space", "long", "newline", "quote"],
)
async def test_a_missing_or_unusable_request_id_is_replaced_by_a_new_one(
    given: str | None, settings: Settings, db: Database
) -> None:
    headers = {} if given is None else {"X-Request-Id": given}
    async with running(mcp_app(settings, db)) as client:
        first = await client.get("/health", headers=headers)
        second = await client.get("/health", headers=headers)

    assert re.fullmatch(r"[0-9a-f]{16}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_every_rest_line_of_a_request_carries_its_id_and_a_failure_quotes_it(
    settings: Settings, db: Database, user_factory: UserFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await user_factory("ada")

    async def fail(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError("boom")

    monkeypatch.setattr(tasks, "add_task", fail)
    app = build_api_app(settings, db, dispose_on_shutdown=False)
    with captured(TextFormatter()) as stream:
        async with running(app) as client:
            response = await client.post(
                f"/api/{user}/tasks", json={"title": "x"}, headers={"X-Request-Id": "r-1"}
            )

    assert response.status_code == 500
    assert response.headers["x-request-id"] == "r-1"
    assert response.json()["error_id"] == "r-1"
    lines = [line for line in stream.getvalue().splitlines() if line[:4].isdigit()]
    assert lines, stream.getvalue()
    assert all(line.endswith(" request_id=r-1") for line in lines), lines
    assert any("unexpected error" in line for line in lines)


async def test_the_tool_calls_of_a_chat_reply_log_under_the_chat_requests_id(
    settings: Settings, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory("ada")
    app = build_api_app(settings, db, dispose_on_shutdown=False)
    with captured(JsonFormatter()) as stream:
        async with running(app) as client:
            response = await client.post(
                f"/api/{user}/chat", json={"message": "add buy milk"}, headers={"X-Request-Id": "chat-7"}
            )
    assert response.status_code == 200, response.text
    lines: list[dict[str, Any]] = [json.loads(line) for line in stream.getvalue().splitlines()]
    [call] = [line for line in lines if line.get("tool") == "add_task"]
    assert call["request_id"] == "chat-7"
    assert {line.get("request_id") for line in lines if line["logger"].startswith("todo_mcp")} == {"chat-7"}


def test_lines_outside_a_request_have_no_request_id(tmp_path: Path) -> None:
    with captured(JsonFormatter()) as stream:
        logging.getLogger("todo_mcp.test").info("started")
    [line] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert "request_id" not in line
