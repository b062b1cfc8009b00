"""What the service counts, for `GET /metrics` in the Prometheus text format.

Tool calls and REST requests by name and outcome with their latency, database errors by kind,
the connection pool's use, and the build. With `serve --workers N` every worker writes its
values to files in `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's multiprocess mode, which
the command line sets up) and a scrape of any worker reads them all.

Cheap on the hot path: a tool call is counted in plain Python (`ToolCallTally`; under
`--workers` written to the shared files in batches), and the pool is sampled once a second, not
on every borrow.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import platform
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from itertools import accumulate
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import todo_mcp
from todo_mcp.config import Settings

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# Tool calls take a millisecond or two; a chat reply with a real model, seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "todo_mcp_http_requests",
    "REST API requests, by method, route and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "todo_mcp_http_request_seconds", "REST API request duration.", ["method", "route"], buckets=BUCKETS
)
DATABASE_ERRORS = Counter(
    "todo_mcp_database_errors",
    "Database failures answered as 503, by kind: lost (connection dropped), connect (could not open "
    "one), too_many_connections (the server refused one), pool_timeout (every connection busy).",
    ["kind"],
)
POOL_IN_USE = Gauge(
    "todo_mcp_db_pool_in_use", "Database connections lent out now.", multiprocess_mode="livesum"
)
POOL_WAITING = Gauge(
    "todo_mcp_db_pool_waiting", "Calls waiting for a database connection now.", multiprocess_mode="livesum"
)
BUILD_INFO = Gauge(
    "todo_mcp_build_info", "The running build.", ["version", "python", "mcp"], multiprocess_mode="max"
)
BUILD_INFO.labels(todo_mcp.__version__, platform.python_version(), version("mcp")).set(1)

# Each bucket's "le" label as prometheus-client's Histogram writes it.
BUCKET_LABELS = [*(floatToGoString(bound) for bound in BUCKETS), "+Inf"]  # type: ignore[no-untyped-call]
TOOL_CALLS_NAME = "todo_mcp_tool_calls"
TOOL_CALLS_HELP = "MCP tool calls, by tool and outcome (ok or the error code)."
TOOL_SECONDS_NAME = "todo_mcp_tool_call_seconds"
TOOL_SECONDS_HELP = "MCP tool call duration."


class ToolCallTally(Collector):
    """One process's tool calls, counted in plain Python and turned into samples when scraped.

    The same series as a prometheus-client Counter and Histogram would give, for a fraction of
    their cost on every call: their labelled children take a lock per increment and the
    histogram finds its bucket in a Python loop (under `--workers`, each increment is also a
    write to a shared file); here a call is two dict lookups, a bisect and three additions, all
    on the event loop's thread.
    """

    def __init__(self) -> None:
        # (tool, outcome) -> [calls, created]; tool -> per-bucket counts, then the sum.
        self._calls: dict[tuple[str, str | int], list[float]] = {}
        self._durations: dict[str, list[float]] = {}

    def record(self, tool: str, outcome: str | int, seconds: float) -> None:
        calls = self._calls.get((tool, outcome))
        if calls is None:
            calls = self._calls[(tool, outcome)] = [0, time.time()]
        calls[0] += 1
        durations = self._durations.get(tool)
        if durations is None:
            durations = self._durations[tool] = [0.0] * (len(BUCKETS) + 2)
        # bisect_left: the first bound >= seconds, as Prometheus's "le"; past the last, +Inf.
        durations[bisect_left(BUCKETS, seconds)] += 1
        durations[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(TOOL_CALLS_NAME, TOOL_CALLS_HELP, labels=["tool", "outcome"])
        for (tool, outcome), (count, created) in list(self._calls.items()):
            calls.add_metric([tool, str(outcome)], count, created=created)
        yield calls
        durations = HistogramMetricFamily(TOOL_SECONDS_NAME, TOOL_SECONDS_HELP, labels=["tool"])
        for tool, counts in list(self._durations.items()):
            cumulative = list(accumulate(counts[:-1]))
            durations.add_metric([tool], list(zip(BUCKET_LABELS, cumulative, strict=True)), counts[-1])
        yield durations


# How long, at most, a worker's tool calls wait before they are written to the shared files
# while calls keep coming; once they stop, the pool sampler writes the rest within a second.
PUBLISH_SECONDS = 0.05


class SharedToolCallTally(ToolCallTally):
    """Under `--workers`: the calls tallied as in one process, and what was added since written
    to prometheus-client's Counter and Histogram (whose values are in the files every worker's
    scrape reads) at most every `PUBLISH_SECONDS`, once a second by the pool sampler, before this
    worker answers a scrape and when it stops. A scrape may miss another worker's last second of
    calls, and a worker killed with SIGKILL loses at most that much."""

    def __init__(self) -> None:
        super().__init__()
        self._counter = Counter(TOOL_CALLS_NAME, TOOL_CALLS_HELP, ["tool", "outcome"])
        self._histogram = Histogram(TOOL_SECONDS_NAME, TOOL_SECONDS_HELP, ["tool"], buckets=BUCKETS)
        self._next_publish = 0.0
        self._counters: dict[tuple[str, str | int], Counter] = {}
        self._histograms: dict[str, Histogram] = {}

    def record(self, tool: str, outcome: str | int, seconds: float) -> None:
        super().record(tool, outcome, seconds)
        if time.monotonic() >= self._next_publish:
            self.publish()

    def publish(self) -> None:
        self._next_publish = time.monotonic() + PUBLISH_SECONDS
        calls, self._calls = self._calls, {}
        durations, self._durations = self._durations, {}
        for key, (count, _) in calls.items():
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self._counter.labels(key[0], str(key[1]))
            counter.inc(count)
        for tool, counts in durations.items():
            child = self._histograms.get(tool)
            if child is None:
                child = self._histograms[tool] = self._histogram.labels(tool)
            # Histogram.observe adds one observation; a batch goes into the values it keeps
            # (a per-bound count and the sum: prometheus-client's own layout, which
            # tests/unit/test_metrics.py holds to observe's results).
            for bucket, count in zip(child._buckets, counts[:-1], strict=True):
                if count:
                    bucket.inc(count)
            child._sum.inc(counts[-1])

    def collect(self) -> Iterator[Metric]:
        return iter(())  # the shared files hold the values


def _tally() -> ToolCallTally:
    if MULTIPROCESS:
        return SharedToolCallTally()
    tally = ToolCallTally()
    REGISTRY.register(tally)
    return tally


TOOL_CALLS = _tally()
# Called once per tool call, with the call's tool, outcome and duration in seconds.
tool_call = TOOL_CALLS.record


def publish_tool_calls() -> None:
    """Write the tool calls tallied so far to the shared files (`--workers` only)."""
    if isinstance(TOOL_CALLS, SharedToolCallTally):
        TOOL_CALLS.publish()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_SECONDS.labels(method, route).observe(seconds)


def database_error(kind: str) -> None:
    DATABASE_ERRORS.labels(kind).inc()


def sample_pool(in_use: int, waiting: int) -> None:
    POOL_IN_USE.set(in_use)
    POOL_WAITING.set(waiting)


def forget_dead_workers(directory: str) -> None:
    """Drop the live gauges of workers that are gone: uvicorn's supervisor restarts a dead worker
    without telling prometheus-client, whose livesum would otherwise keep adding its last values."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exposition() -> tuple[bytes, str]:
    """The scrape's body and content type: this process's values, or every worker's."""
    if MULTIPROCESS:
        publish_tool_calls()
        forget_dead_workers(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


SAMPLE_SECONDS = 1.0


@asynccontextmanager
async def sampling_pool(usage: Callable[[], tuple[int, int]]) -> AsyncIterator[None]:
    """Sample the pool's use once a second for as long as an app runs (and, under `--workers`,
    write the tool calls tallied since the last batch)."""

    async def sample() -> None:
        while True:
            sample_pool(*usage())
            publish_tool_calls()
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        publish_tool_calls()


def endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    """GET /metrics, protected by `METRICS_TOKEN`; without one, open in development mode only
    (which listens on loopback alone) and off otherwise."""
    token = settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None

    async def metrics(request: Request) -> Response:
        if token is None and settings.auth_enabled:
            return JSONResponse(
                {"detail": "Metrics are off: set METRICS_TOKEN and scrape with it as a bearer token."},
                status_code=404,
            )
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token):
                return JSONResponse(
                    {"detail": "Scraping the metrics needs the bearer token METRICS_TOKEN."},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="todo-mcp metrics"'},
                )
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return metrics
