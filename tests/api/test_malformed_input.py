"""Malformed input on every REST route, on SQLite and PostgreSQL: never a 5xx, always the API's
error shape, and nothing written by a request that was refused.

The families are in `tests/malformed.py`: nesting depth, number size and form, NaN and
infinities, lone surrogates, NUL, control characters, wrong types, huge strings, broken
encodings, put in each field of each body, in keys, and as the whole body; and the same spirit
for query and path parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import bearer
from tests.conftest import UserFactory
from tests.malformed import BODIES, HOLE, VALUES, Fragment, fill, snapshot
from todo_mcp.db.engine import Database
from todo_mcp.services import accounts, conversations, tasks
from todo_mcp.services.tokens import TokenService

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Place:
    method: str
    path: str
    template: bytes
    # Families that are valid here: a password is opaque, so control characters may be in it.
    valid: frozenset[str] = frozenset()


OPAQUE = frozenset({"control characters"})


@dataclass
class World:
    user: str
    task: int
    conversation: int
    headers: dict[str, str]

    def places(self) -> list[Place]:
        tasks = f"/api/{self.user}/tasks"
        messages = f"/api/{self.user}/conversations/{self.conversation}/messages"
        return [
            Place("POST", tasks, b'{"title": ' + HOLE + b"}"),
            Place("POST", tasks, b'{"title": "ok", "description": ' + HOLE + b"}"),
            Place("POST", tasks, HOLE),
            Place("PUT", f"{tasks}/{self.task}", b'{"title": ' + HOLE + b"}"),
            Place("PUT", f"{tasks}/{self.task}", b'{"description": ' + HOLE + b"}"),
            Place("PUT", f"{tasks}/{self.task}", b'{"completed": ' + HOLE + b"}"),
            Place("PUT", f"{tasks}/{self.task}", HOLE),
            Place("PATCH", f"{tasks}/{self.task}/complete", b'{"completed": ' + HOLE + b"}"),
            Place("PATCH", f"{tasks}/{self.task}/complete", HOLE),
            Place("POST", "/auth/signup", b'{"email": "new@example.com", "password": ' + HOLE + b"}", OPAQUE),
            Place("POST", "/auth/signup", b'{"email": ' + HOLE + b', "password": "correct horse battery"}'),
            Place(
                "POST",
                "/auth/signup",
                b'{"email": "named@example.com", "password": "correct horse battery", "name": ' + HOLE + b"}",
            ),
            Place("POST", "/auth/signup", HOLE),
            # An address no account has: a refused log-in then counts no failure anywhere.
            Place(
                "POST", "/auth/login", b'{"email": "nobody@example.com", "password": ' + HOLE + b"}", OPAQUE
            ),
            Place("POST", "/auth/login", b'{"email": ' + HOLE + b', "password": "correct horse battery"}'),
            Place("POST", "/auth/login", HOLE),
            Place("POST", messages, b'{"role": "user", "content": ' + HOLE + b"}"),
            Place("POST", messages, b'{"role": ' + HOLE + b', "content": "hi"}'),
            Place("POST", messages, HOLE),
        ]


@pytest.fixture
async def world(db: Database, user_factory: UserFactory, tokens: TokenService) -> World:
    user = await user_factory()
    async with db.connect() as connection:
        task = (await tasks.add_task(connection, user_id=user, title="Buy milk", description=None)).task
    async with db.transaction() as session:
        conversation = await conversations.create_conversation(session, user_id=user)
        await accounts.sign_up(session, email="taken@example.com", password=PASSWORD)
    assert conversation.id is not None
    return World(
        user=user,
        task=task.id,
        conversation=conversation.id,
        headers={**bearer(tokens.issue(user, timedelta(minutes=10))), "Content-Type": "application/json"},
    )


def shape_problems(response: httpx.Response) -> list[str]:
    """Why the answer is not the API's error shape (empty when it is)."""
    try:
        body: Any = response.json()
    except ValueError:
        return [f"not JSON: {response.text[:200]!r}"]
    if not isinstance(body, dict) or not isinstance(body.get("detail"), str) or "error_id" not in body:
        return [f"not the error shape: {response.text[:300]}"]
    if response.status_code == 422 and not (isinstance(body.get("problems"), list) and body["problems"]):
        return [f"a 422 without problems: {response.text[:300]}"]
    return []


async def check(
    client: httpx.AsyncClient, db: Database, world: World, method: str, url: str, body: bytes, must_fail: bool
) -> list[str]:
    before = await snapshot(db)
    response = await client.request(method, url, content=body, headers=world.headers)
    where = f"{method} {url} {body[:80]!r}: {response.status_code}"
    if response.status_code >= 500:
        return [f"{where} {response.text[:300]}"]
    if response.status_code < 400:
        if must_fail:
            return [f"{where} succeeded"]
        return []
    problems = [f"{where} {problem}" for problem in shape_problems(response)]
    if await snapshot(db) != before:
        problems.append(f"{where} wrote although it was refused")
    return problems


@pytest.mark.parametrize("fragment", VALUES, ids=lambda fragment: fragment.id)
async def test_malformed_field_values_are_refused_in_the_error_shape_and_write_nothing(
    client: httpx.AsyncClient, db: Database, world: World, fragment: Fragment
) -> None:
    problems: list[str] = []
    for place in world.places():
        if place.template == HOLE:
            continue
        must_fail = fragment.must_fail and fragment.family not in place.valid
        problems += await check(
            client, db, world, place.method, place.path, fill(place.template, fragment), must_fail
        )
    assert problems == []


@pytest.mark.parametrize("fragment", BODIES, ids=lambda fragment: fragment.id)
async def test_malformed_whole_bodies_are_refused_in_the_error_shape_and_write_nothing(
    client: httpx.AsyncClient, db: Database, world: World, fragment: Fragment
) -> None:
    problems: list[str] = []
    for place in world.places():
        if place.template != HOLE:
            continue
        # No body at all is PATCH .../complete's documented toggle.
        must_fail = fragment.must_fail and not (place.method == "PATCH" and not fragment.json.strip())
        problems += await check(client, db, world, place.method, place.path, fragment.json, must_fail)
    assert problems == []


# Query and path parameters arrive as text: the same families, percent-encoded.
PARAMETER_TEXTS = {
    "NUL": "%00",
    "lone surrogate as UTF-8 bytes": "%ED%A0%80",
    "invalid UTF-8": "%FF%FE",
    "control character": "%1B%5B2J",
    "5,000 digits": "9" * 5_000,
    "2^63": "9223372036854775808",
    "1e999999": "1e999999",
    "NaN": "NaN",
    "-Infinity": "-Infinity",
    "1.5": "1.5",
    "negative": "-1",
    "huge text": "a" * 20_000,
    "empty": "",
}


@pytest.mark.parametrize("value", list(PARAMETER_TEXTS.values()), ids=list(PARAMETER_TEXTS))
async def test_malformed_query_and_path_parameters_are_refused_and_write_nothing(
    client: httpx.AsyncClient, db: Database, world: World, value: str
) -> None:
    tasks = f"/api/{world.user}/tasks"
    conversations_ = f"/api/{world.user}/conversations"
    requests = [
        ("GET", f"{tasks}?status={value}", b""),
        ("GET", f"{tasks}/{value}", b""),
        ("PUT", f"{tasks}/{value}", b'{"title": "renamed"}'),
        ("DELETE", f"{tasks}/{value}", b""),
        ("PATCH", f"{tasks}/{value}/complete", b""),
        ("GET", f"{conversations_}?limit={value}", b""),
        ("GET", f"{conversations_}?offset={value}", b""),
        ("GET", f"{conversations_}/{value}/messages", b""),
        ("POST", f"{conversations_}/{value}/messages", b'{"role": "user", "content": "hi"}'),
        ("GET", f"/api/{value}/tasks", b""),
        ("POST", f"/api/{value}/tasks", b'{"title": "x"}'),
    ]
    problems: list[str] = []
    for method, url, body in requests:
        # "-1" and "" can be valid nowhere here but "" for a path segment means another route.
        problems += await check(client, db, world, method, url, body, must_fail=value != "")
    assert problems == []
