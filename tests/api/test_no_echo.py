"""Refused requests never echo what was sent: not in the answer, not in any log line.

Every REST route that takes a body (found from the app, so a new route is covered without
editing this file) gets bad bodies carrying secret-looking values in every field, in wrong
types, as the whole body and in broken JSON; the MCP tools get the same in their arguments.
Each answer is a 4xx in the door's error shape, and neither it nor anything logged (at DEBUG,
every logger) holds the secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.conftest import bearer
from tests.conftest import UserFactory
from tests.mcp.conftest import MODES, TOOL_NAMES, connect
from todo_mcp.db.engine import Database
from todo_mcp.services import conversations, tasks
from todo_mcp.services.tokens import TokenService

pytestmark = pytest.mark.anyio

SECRET = "sk-live-7Qz9XwB2mN4vL8pK"
# The forms in which a value might come back: as sent, JSON-escaped, or cut short in a message.
TRACES = (SECRET, json.dumps(SECRET)[1:-1], SECRET[:12])


def leaked(text: str) -> bool:
    return any(trace in text for trace in TRACES)


def carriers(fields: list[str]) -> Iterator[tuple[str, bytes]]:
    """(label, body) pairs that carry the secret and cannot be valid for a body of `fields`."""
    text = json.dumps(SECRET)
    for field in fields:
        others = {other: 7 for other in fields if other != field}  # every other field mistyped
        for shape, value in [
            ("in a list", f"[{text}]"),
            ("in an object", f'{{"value": {text}}}'),
            ("as text, others mistyped", text),
            ("with a lone surrogate", json.dumps(SECRET + "\ud800")),
            ("with NUL", json.dumps(SECRET + "\x00")),
            ("far too long", json.dumps(SECRET * 20_000)),
        ]:
            body = json.dumps(others)[:-1] + (", " if others else "") + f'"{field}": {value}}}'
            yield f"{field} {shape}", body.encode()
        yield f"{field} beside NaN", f'{{"{field}": {text}, "nan": NaN, "x": [NaN]}}'.encode()
    yield "whole body", text.encode()
    yield "truncated JSON", f'{{"password": {text}, "title": {text}'.encode()
    yield "nested too deep", b"[" * 5_000 + text.encode() + b"]" * 5_000
    yield "unknown field only", f'{{"{SECRET}": {text}}}'.encode()


def operations_with_bodies(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    """(method, path, body field names) of every operation the OpenAPI document gives a JSON body."""
    document = app.openapi()
    schemas = document["components"]["schemas"]
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            schema = content["schema"]
            # `CompletionChange | None`: the model inside the optional.
            refs = (
                [schema]
                if "$ref" in schema
                else [option for option in schema.get("anyOf", []) if "$ref" in option]
            )
            fields = [name for ref in refs for name in schemas[ref["$ref"].rsplit("/", 1)[1]]["properties"]]
            found.append((method.upper(), path, fields))
    return found


@pytest.fixture
async def owned(db: Database, user_factory: UserFactory) -> dict[str, str]:
    """Path values of resources that exist, so that a route gets as far as reading its body."""
    user = await user_factory()
    async with db.connect() as connection:
        task = (await tasks.add_task(connection, user_id=user, title="Buy milk", description=None)).task
    async with db.transaction() as session:
        conversation = await conversations.create_conversation(session, user_id=user)
    return {"user_id": user, "task_id": str(task.id), "conversation_id": str(conversation.id)}


# The test's own HTTP client logs each URL it requests; the server's lines are what count.
CLIENT_LOGGERS = ("httpx", "httpcore")


def log_text(records: list[logging.LogRecord]) -> str:
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    return "\n".join(handler.format(r) for r in records if not r.name.startswith(CLIENT_LOGGERS))


async def test_no_rest_route_echoes_a_value_of_a_refused_body(
    app: FastAPI,
    client: httpx.AsyncClient,
    owned: dict[str, str],
    tokens: TokenService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {
        **bearer(tokens.issue(owned["user_id"], timedelta(minutes=5))),
        "Content-Type": "application/json",
    }
    operations = operations_with_bodies(app)
    assert {path for _, path, _ in operations} >= {"/auth/signup", "/auth/login", "/api/{user_id}/tasks"}
    problems: list[str] = []
    sent = 0
    with caplog.at_level(logging.DEBUG):
        for method, template, fields in operations:
            path = template.format(**owned)
            for label, body in carriers(fields):
                response = await client.request(method, path, content=body, headers=headers)
                sent += 1
                where = f"{method} {template} ({label}): {response.status_code}"
                # Unknown fields are ignored, so a body of only one is valid where no field is required.
                refused = 400 <= response.status_code < 500
                if not refused and not (label == "unknown field only" and response.status_code < 300):
                    problems.append(f"{where} {response.text[:200]}")
                elif leaked(response.text):
                    problems.append(f"{where} echoed it: {response.text[:300]}")
                elif refused and set(response.json()) - {"detail", "error_id", "problems"}:
                    problems.append(f"{where} not the error shape: {response.text[:300]}")
    assert sent > 100
    assert problems == []
    assert not leaked(log_text(caplog.records)), [
        r.getMessage()[:200] for r in caplog.records if leaked(r.getMessage())
    ]


async def test_no_query_parameter_value_is_echoed(
    client: httpx.AsyncClient, owned: dict[str, str], tokens: TokenService, caplog: pytest.LogCaptureFixture
) -> None:
    headers = bearer(tokens.issue(owned["user_id"], timedelta(minutes=5)))
    user = owned["user_id"]
    with caplog.at_level(logging.DEBUG):
        for url in [
            f"/api/{user}/tasks?status={SECRET}",
            f"/api/{user}/conversations?limit={SECRET}",
            f"/api/{user}/conversations?offset={SECRET}",
            f"/api/{user}/conversations/{owned['conversation_id']}/messages?limit={SECRET}",
        ]:
            response = await client.get(url, headers=headers)
            assert response.status_code == 422, response.text
            assert not leaked(response.text), response.text
    assert not leaked(log_text(caplog.records)), log_text(caplog.records)[:2000]


def bad_arguments(user: str, task_id: int) -> Iterator[tuple[str, dict[str, Any]]]:
    base: dict[str, dict[str, Any]] = {
        "add_task": {"user_id": user, "title": "ok"},
        "list_tasks": {"user_id": user},
        "complete_task": {"user_id": user, "task_id": task_id},
        "delete_task": {"user_id": user, "task_id": 10**12},
        "update_task": {"user_id": user, "task_id": task_id, "title": "ok"},
    }
    fields = {
        "add_task": ["title", "description"],
        "list_tasks": ["status"],
        "complete_task": ["task_id"],
        "delete_task": ["task_id"],
        "update_task": ["task_id", "title", "description"],
    }
    # Invalid for every field whatever its type: a container, unstorable text, text too long.
    everywhere: list[Any] = [[SECRET], {"value": SECRET}, SECRET + "\x00", SECRET + "\ud800", SECRET * 20_000]
    for tool in TOOL_NAMES:
        for field in fields[tool]:
            # Plain text is a valid title or description, but no valid id or status.
            plain = [SECRET] if field in ("task_id", "status") else []
            for value in [*everywhere, *plain]:
                yield tool, {**base[tool], field: value}
        yield tool, {**base[tool], "unexpected": SECRET}


@pytest.mark.parametrize("mode", MODES)
async def test_no_tool_echoes_a_value_of_refused_arguments(
    db: Database, user_factory: UserFactory, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    user = await user_factory()
    async with db.connect() as connection:
        task = (await tasks.add_task(connection, user_id=user, title="Buy milk", description=None)).task
    problems: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with connect(db, mode=mode) as tools:
            for tool, arguments in bad_arguments(user, task.id):
                envelope = await tools.call(tool, arguments)
                where = f"{tool}({sorted(arguments)}): {envelope['data']}"
                if envelope["status"] != "error" or envelope["data"]["error_code"] != 400:
                    problems.append(f"{where} {envelope['message'][:200]}")
                elif leaked(json.dumps(envelope)):
                    problems.append(f"{where} echoed it: {envelope['message'][:300]}")
    assert problems == []
    assert not leaked(log_text(caplog.records)), [
        r.getMessage()[:200] for r in caplog.records if leaked(r.getMessage())
    ]
