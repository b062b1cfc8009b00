"""The OpenAPI description the app serves, and a schemathesis run over it.

The run sends generated requests, valid and invalid, to every operation with a valid bearer token
of an existing user (the path's user_id fixed to that user), and requires that no response is a
5xx and that each one matches what the schema documents (status code, content type, body).

It runs on SQLite only. Schemathesis drives an ASGI app from an event loop of its own, in another
thread, so the database is migrated and seeded before (in a loop that then ends, with an engine
that is then disposed), and the app gets a fresh engine whose connections are all opened in
schemathesis's loop; the app's lifespan disposes it there at the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import BASE_URL, JWT_SECRET
from tests.conftest import UserFactory, make_settings
from todo_mcp.api.app import build_api_app
from todo_mcp.db import migrate
from todo_mcp.db.engine import Database
from todo_mcp.services import conversations, tasks, users
from todo_mcp.services.tokens import TokenService

FUZZ_USER: Final = "fuzz-user"
# Paths every client of this API relies on, with their methods.
DOCUMENTED: Final = {
    "/auth/signup": {"post"},
    "/auth/login": {"post"},
    "/api/me": {"get", "patch"},
    "/api/me/connections": {"get"},
    "/api/me/connections/{connection_id}": {"delete"},
    "/api/{user_id}/tasks": {"get", "post"},
    "/api/{user_id}/tasks/{task_id}": {"get", "put", "delete"},
    "/api/{user_id}/tasks/{task_id}/complete": {"patch"},
    "/api/{user_id}/conversations": {"get", "post"},
    "/api/{user_id}/conversations/{conversation_id}": {"get"},
    "/api/{user_id}/conversations/{conversation_id}/messages": {"get", "post"},
    "/api/{user_id}/chat": {"post"},
}
# Every operation of the app, as schemathesis labels it.
OPERATIONS: Final = [
    *(f"{method.upper()} {path}" for path, methods in DOCUMENTED.items() for method in sorted(methods)),
    "GET /health",
    "GET /ready",
]
# Generated requests per operation (there are 17): with deadline=None, about 15 s in all.
MAX_EXAMPLES: Final = 25
CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def openapi_app(sqlite_url: str) -> FastAPI:
    """An app over an empty SQLite database, for reading its OpenAPI description."""
    settings = make_settings(sqlite_url, jwt_secret=JWT_SECRET)
    return build_api_app(settings, Database.from_settings(settings))


async def fetch(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
        return await client.get(path)


@pytest.mark.anyio
async def test_openapi_json_documents_every_route_with_its_methods(openapi_app: FastAPI) -> None:
    response = await fetch(openapi_app, "/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = {path: set(methods) for path, methods in document["paths"].items()}
    for path, methods in DOCUMENTED.items():
        assert path in paths, f"{path} is not documented"
        assert methods <= paths[path], f"{path} documents {paths[path]}, not {methods}"


@pytest.mark.anyio
async def test_openapi_json_shows_examples_on_the_task_schemas(openapi_app: FastAPI) -> None:
    schemas = (await fetch(openapi_app, "/openapi.json")).json()["components"]["schemas"]

    for name in ("TaskCreate", "TaskUpdate", "TaskPublic"):
        examples = schemas[name].get("examples")
        assert examples, f"{name} has no examples"
        assert set(examples[0]) <= set(schemas[name]["properties"]), f"{name}'s example has unknown fields"
    assert schemas["TaskCreate"]["examples"][0]["title"]


@pytest.mark.anyio
async def test_openapi_json_declares_bearer_auth_on_the_protected_routes(openapi_app: FastAPI) -> None:
    document = (await fetch(openapi_app, "/openapi.json")).json()

    schemes = document["components"]["securitySchemes"]
    assert [scheme["scheme"].lower() for scheme in schemes.values()] == ["bearer"]
    for path, operations in document["paths"].items():
        protected = path.startswith("/api/")
        for method, operation in operations.items():
            assert bool(operation.get("security")) is protected, f"{method.upper()} {path}"


@pytest.mark.anyio
async def test_docs_page_answers_with_html(openapi_app: FastAPI) -> None:
    response = await fetch(openapi_app, "/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


# Every operation that takes a JSON body, with the path to send it to.
BODY_OPERATIONS: Final = {
    "POST /auth/signup": "/auth/signup",
    "POST /auth/login": "/auth/login",
    "POST /api/{user_id}/tasks": "/api/{user}/tasks",
    "PUT /api/{user_id}/tasks/{task_id}": "/api/{user}/tasks/1",
    "PATCH /api/{user_id}/tasks/{task_id}/complete": "/api/{user}/tasks/1/complete",
    "POST /api/{user_id}/conversations/{conversation_id}/messages": "/api/{user}/conversations/1/messages",
    "POST /api/{user_id}/chat": "/api/{user}/chat",
}


@pytest.mark.anyio
@pytest.mark.parametrize("label", list(BODY_OPERATIONS))
async def test_a_body_that_is_not_utf8_gets_a_documented_client_error(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    auth_for: Callable[[str], dict[str, str]],
    label: str,
) -> None:
    """What the schemathesis run below found on login, pinned for every operation with a body."""
    user = await user_factory()
    document = (await client.get("/openapi.json")).json()
    method, path = label.split(" ", 1)
    documented = set(document["paths"][path][method.lower()]["responses"])

    response = await client.request(
        method,
        BODY_OPERATIONS[label].format(user=user),
        content=b'L\xbf\xfe)0"\xff',
        headers={**auth_for(user), "Content-Type": "application/json"},
    )

    assert 400 <= response.status_code < 500, response.text
    assert str(response.status_code) in documented, (
        f"{label} answered {response.status_code} {response.text}, but documents only {sorted(documented)}"
    )
    assert isinstance(response.json()["detail"], str | list)


# --- the schemathesis run ---------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzTarget:
    schema: BaseSchema
    # A valid bearer token of the fuzz user, sent with every generated request.
    headers: dict[str, str]
    # Path parameters naming the fuzz user's seeded rows, so valid requests also reach success paths.
    seeded: dict[str, Any]


async def seed(database_url: str) -> dict[str, Any]:
    """Migrate the database and create the fuzz user with a task and a conversation."""
    db = Database.from_settings(make_settings(database_url))
    try:
        await migrate.upgrade(db)
        async with db.transaction() as session:
            await users.create_user(session, user_id=FUZZ_USER, email="fuzz@example.com")
            conversation = await conversations.create_conversation(session, user_id=FUZZ_USER)
        async with db.connect() as conn:
            task = (await tasks.add_task(conn, user_id=FUZZ_USER, title="Seeded task")).task
        return {"user_id": FUZZ_USER, "task_id": task.id, "conversation_id": conversation.id}
    finally:
        await db.dispose()


@pytest.fixture
def fuzz_target(tmp_path: Path) -> Iterator[FuzzTarget]:
    """The app's schema, loaded from the app, over a seeded SQLite database of this test's own."""
    database_url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    seeded = asyncio.run(seed(database_url))
    app_settings = make_settings(database_url, jwt_secret=JWT_SECRET)
    token = TokenService(app_settings).issue(FUZZ_USER, timedelta(hours=1))
    # A fresh engine: it opens its connections in schemathesis's event loop, never in this one.
    app = build_api_app(app_settings, Database.from_settings(app_settings), dispose_on_shutdown=True)
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        yield FuzzTarget(schema=schema, headers={"Authorization": f"Bearer {token}"}, seeded=seeded)
    finally:
        # Runs the app's lifespan shutdown (which disposes its engine) in schemathesis's loop.
        shutdown_lifespans()


def test_the_fuzzed_operations_are_all_the_operations_the_schema_documents(fuzz_target: FuzzTarget) -> None:
    loaded = list(fuzz_target.schema.get_all_operations())

    assert [result for result in loaded if not isinstance(result, Ok)] == []
    assert {result.ok().label for result in loaded if isinstance(result, Ok)} == set(OPERATIONS)


# Schemathesis's own pytest integration (`schema.parametrize()`) fails under pytest 9 ("'Function'
# object has no attribute '_nodeid'"), so each operation runs as a plain Hypothesis test instead.
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_generated_request_gets_a_server_error_or_an_undocumented_response(
    fuzz_target: FuzzTarget, label: str
) -> None:
    operation = fuzz_target.schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the schema"
    names = [name for name in fuzz_target.seeded if f"{{{name}}}" in label]
    user_only = {"user_id": FUZZ_USER} if "user_id" in names else None
    seeded_rows = {name: fuzz_target.seeded[name] for name in names} or None
    # Valid and invalid requests on generated ids, and valid ones on the seeded rows.
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=user_only),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=user_only),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=seeded_rows),
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=fuzz_target.headers, checks=CHECKS)

    check()
