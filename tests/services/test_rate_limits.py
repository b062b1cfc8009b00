"""Per-user limits on tool calls: the bucket's arithmetic with a stopped clock, the buckets shared
through a real Redis (6379) by two limiters as two processes would, the fall-back when Redis is
down, and the doors' answers (429 envelope, Retry-After) over the MCP HTTP app."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.asgi import running
from tests.conftest import UserFactory, make_settings
from tests.transports.processes import free_port
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app
from todo_mcp.services import tasks
from todo_mcp.services.errors import TooManyCalls
from todo_mcp.services.rate_limits import LocalLimiter, RedisLimiter, limiter_for

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_bucket_admits_its_burst_then_refills_at_the_rate_per_user() -> None:
    clock = Clock()
    limiter = LocalLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        await limiter.admit("ada")
    with pytest.raises(TooManyCalls) as refused:
        await limiter.admit("ada")
    assert refused.value.retry_after_seconds == 1
    assert refused.value.code == 429
    await limiter.admit("bob")  # another user's bucket is full

    clock.now += 0.5  # one token back at 2 a second
    await limiter.admit("ada")
    with pytest.raises(TooManyCalls):
        await limiter.admit("ada")
    clock.now += 60  # never more than the burst
    for _ in range(3):
        await limiter.admit("ada")
    with pytest.raises(TooManyCalls):
        await limiter.admit("ada")


async def test_unset_means_unlimited_and_the_burst_defaults_to_a_seconds_worth() -> None:
    assert limiter_for(None, None, None) is None
    local = limiter_for(5.0, None, None)
    assert isinstance(local, LocalLimiter)
    assert (local.rate, local.burst) == (5.0, 5)


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, socket_timeout=1)
    try:
        await client.ping()
    except Exception as exc:
        client_error = f"Redis is not reachable at {REDIS_URL}: {exc}"
        await client.aclose()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(client_error)
        pytest.skip(client_error)
    try:
        yield client
    finally:
        await client.aclose()


async def test_two_processes_share_one_bucket_through_redis(redis_client: Redis) -> None:
    prefix = f"todo_mcp_test:{secrets.token_hex(4)}:"
    first = RedisLimiter(Redis.from_url(REDIS_URL), rate=1.0, burst=4, prefix=prefix)
    second = RedisLimiter(Redis.from_url(REDIS_URL), rate=1.0, burst=4, prefix=prefix)
    try:
        admitted = 0
        refused = []
        for limiter in (first, second, first, second, first, second):
            try:
                await limiter.admit("ada")
                admitted += 1
            except TooManyCalls as exc:
                refused.append(exc.retry_after_seconds)
        await second.admit("bob")
    finally:
        await redis_client.delete(prefix + "ada", prefix + "bob")
        await first.close()
        await second.close()

    # Four in all, not four each; a bucket left idle expires from Redis by itself.
    assert admitted == 4
    assert refused == [1, 1]


async def test_with_redis_down_each_process_limits_on_its_own_and_keeps_serving() -> None:
    limiter = RedisLimiter(
        Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5), rate=1.0, burst=2
    )
    try:
        await limiter.admit("ada")
        await limiter.admit("ada")
        with pytest.raises(TooManyCalls):
            await limiter.admit("ada")
    finally:
        await limiter.close()


async def test_the_doors_answer_429_with_retry_after_and_the_tool_does_nothing(
    database_url: str, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    settings = make_settings(database_url, tool_calls_per_second=0.5, tool_calls_burst=2)
    app = build_http_app(settings, db, host="127.0.0.1", dispose_on_shutdown=False)
    async with running(app) as http:
        answers = [
            await http.post("/tools/add_task", json={"user_id": user, "title": f"t{n}"}) for n in range(3)
        ]
        listed = await http.post("/tools/list_tasks", json={"user_id": user})

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["Retry-After"] == "2"
    assert refused.json()["data"] == {"error_code": 429, "retry_after_seconds": 2}
    assert "wait 2 seconds" in refused.json()["message"]
    assert listed.status_code == 429
    async with db.connect() as conn:
        stored = (await tasks.list_tasks(conn, user_id=user)).tasks
    assert [task.title for task in stored] == ["t0", "t1"]
