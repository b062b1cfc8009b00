"""A per-user limit on tool calls, against runaway agents: a token bucket of `rate` calls a
second with room for `burst` at once. Off unless `TOOL_CALLS_PER_SECOND` is set.

Without Redis each process keeps its own buckets: N processes let a user make up to N times the
rate. With `REDIS_URL` every process and machine draws from the same bucket, kept in Redis and
updated by one atomic script (Redis's clock, so the machines' clocks do not matter). If Redis
cannot be reached the process falls back to its own buckets, logs it, and tries Redis again a
few seconds later: a limit that is briefly per process beats refusing every call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from todo_mcp.services.errors import TooManyCalls

log = logging.getLogger("todo_mcp.rate_limits")

REDIS_RETRY_SECONDS = 5.0
# Buckets of users not seen for this long are dropped from a process's memory.
LOCAL_FORGET_SECONDS = 300.0


class Limiter(Protocol):
    async def admit(self, user_id: str) -> None:
        """Return if the user may make a call now; raise `TooManyCalls` otherwise."""
        ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class LocalLimiter:
    """Buckets in this process's memory."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._swept_at = clock()

    async def admit(self, user_id: str) -> None:
        self.take(user_id)

    def take(self, user_id: str) -> None:
        now = self._clock()
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = _Bucket(tokens=float(self.burst), at=now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens < 1.0:
            raise TooManyCalls(retry_after_seconds=_seconds_until_one(bucket.tokens, self.rate))
        bucket.tokens -= 1.0
        if now - self._swept_at > LOCAL_FORGET_SECONDS:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        for user_id in [
            user for user, bucket in self._buckets.items() if now - bucket.at > LOCAL_FORGET_SECONDS
        ]:
            del self._buckets[user_id]


def _seconds_until_one(tokens: float, rate: float) -> int:
    return max(1, math.ceil((1.0 - tokens) / rate))


# KEYS[1] the user's bucket; ARGV rate, burst. Returns {admitted (1 or 0), tokens left as text}.
# The bucket (tokens, time in microseconds) lives as a hash that expires once it would be full.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + (now - at) / 1000000 * rate)
end
local admitted = 0
if tokens >= 1 then
  tokens = tokens - 1
  admitted = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {admitted, tostring(tokens)}
"""


class RedisLimiter:
    """Buckets in Redis, shared by every process that uses the same `prefix`."""

    def __init__(self, redis: Any, rate: float, burst: int, *, prefix: str = "todo_mcp:calls:") -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE)
        self.rate = rate
        self.burst = burst
        self._prefix = prefix
        self._fallback = LocalLimiter(rate, burst)
        self._redis_down_until = 0.0

    async def admit(self, user_id: str) -> None:
        if time.monotonic() < self._redis_down_until:
            self._fallback.take(user_id)
            return
        try:
            admitted, tokens = await self._take(keys=[self._prefix + user_id], args=[self.rate, self.burst])
        except Exception as exc:  # any failure of Redis: connection, timeout, script
            self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
            log.warning(
                "rate limits: Redis is unreachable (%s); limiting per process for %.0f s",
                type(exc).__name__,
                REDIS_RETRY_SECONDS,
            )
            self._fallback.take(user_id)
            return
        if int(admitted) != 1:
            raise TooManyCalls(retry_after_seconds=_seconds_until_one(float(tokens), self.rate))

    async def close(self) -> None:
        await self._redis.aclose()


def limiter_for(
    rate: float | None, burst: int | None, redis_url: str | None, *, prefix: str = "todo_mcp:calls:"
) -> LocalLimiter | RedisLimiter | None:
    """The limiter the settings describe, or None when tool calls are not limited."""
    if rate is None:
        return None
    room = burst if burst is not None else max(1, math.ceil(rate))
    if redis_url is None:
        return LocalLimiter(rate, room)
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return RedisLimiter(client, rate, room, prefix=prefix)
