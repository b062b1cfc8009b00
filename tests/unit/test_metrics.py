"""GET /metrics, read with Prometheus's own text parser: the counters move by exactly the calls
made, the histograms count them, and the endpoint is closed to those without METRICS_TOKEN.
In process on both apps; `serve --workers 2` for the multiprocess mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.asgi import running
from tests.conftest import UserFactory, make_settings
from tests.transports.processes import issue_token, run_cli, server_env, spawn_command, stop, wait_healthy
from todo_mcp import metrics
from todo_mcp.api.app import build_api_app
from todo_mcp.db.engine import Database
from todo_mcp.mcp.http_app import build_http_app

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_tool_calls_are_counted_by_tool_and_outcome_exactly(
    database_url: str, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    app = build_http_app(make_settings(database_url), db, host="127.0.0.1", dispose_on_shutdown=False)
    async with running(app) as client:
        before = await scrape(client)
        for arguments in (
            {"user_id": user, "title": "one"},
            {"user_id": user, "title": "two"},
            {"user_id": user, "title": ""},
        ):
            await client.post("/tools/add_task", json=arguments)
        await client.post("/tools/complete_task", json={"user_id": user, "task_id": 987654})
        after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("todo_mcp_tool_calls_total", tool="add_task", outcome="ok") == 2
    assert moved("todo_mcp_tool_calls_total", tool="add_task", outcome="400") == 1
    assert moved("todo_mcp_tool_calls_total", tool="complete_task", outcome="404") == 1
    assert moved("todo_mcp_tool_calls_total", tool="list_tasks", outcome="ok") == 0
    assert moved("todo_mcp_tool_call_seconds_count", tool="add_task") == 3
    assert moved("todo_mcp_tool_call_seconds_bucket", tool="add_task", le="+Inf") == 3
    assert value(after, "todo_mcp_build_info", version="0.1.0", python=_python(), mcp="2.3.0") == 1
    assert ("todo_mcp_db_pool_in_use", frozenset()) in after
    assert ("todo_mcp_db_pool_waiting", frozenset()) in after


def _python() -> str:
    import platform

    return platform.python_version()


async def test_rest_requests_are_counted_by_route_template_and_status(
    database_url: str, db: Database, user_factory: UserFactory
) -> None:
    user = await user_factory()
    app = build_api_app(make_settings(database_url), db, dispose_on_shutdown=False)
    async with running(app) as client:
        before = await scrape(client)
        for _ in range(2):
            assert (await client.get(f"/api/{user}/tasks")).status_code == 200
        assert (await client.get(f"/api/{user}/tasks/987654")).status_code == 404
        after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert (
        moved("todo_mcp_http_requests_total", method="GET", route="/api/{user_id}/tasks", status="200") == 2
    )
    assert (
        moved(
            "todo_mcp_http_requests_total", method="GET", route="/api/{user_id}/tasks/{task_id}", status="404"
        )
        == 1
    )
    assert moved("todo_mcp_http_request_seconds_count", method="GET", route="/api/{user_id}/tasks") == 2
    # Scrapes are not counted, and no series is made per user or per id.
    assert not any(
        route == "/metrics" or user in route
        for (_, labels) in after
        for key, route in labels
        if key == "route"
    )


async def test_with_tokens_metrics_need_metrics_token_and_are_off_without_one(
    sqlite_url: str, db: Database
) -> None:
    closed = make_settings(sqlite_url, jwt_secret="x" * 40)
    guarded = make_settings(sqlite_url, jwt_secret="x" * 40, metrics_token="scrape-secret-123")
    async with running(build_http_app(closed, db, host="127.0.0.1", dispose_on_shutdown=False)) as client:
        off = await client.get("/metrics")
    async with running(build_api_app(guarded, db, dispose_on_shutdown=False)) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        good = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})

    assert off.status_code == 404
    assert "METRICS_TOKEN" in off.json()["detail"]
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert "todo_mcp_tool_calls" not in missing.text
    assert good.status_code == 200
    assert "todo_mcp_build_info" in good.text


# Durations around every bucket bound (a call of exactly a bound's length is counted in it).
DURATIONS = st.one_of(
    st.sampled_from(metrics.BUCKETS),
    st.floats(min_value=0, max_value=60, allow_nan=False),
)
CALLS = st.lists(
    st.tuples(st.sampled_from(["add_task", "list_tasks"]), st.sampled_from(["ok", 400, 404, 503]), DURATIONS),
    max_size=40,
)


@given(calls=CALLS)
def test_the_tally_gives_the_samples_prometheus_clients_own_metrics_would(
    calls: list[tuple[str, str | int, float]],
) -> None:
    """One process's tool calls are counted in plain Python (`ToolCallTally`), for speed; a
    scrape must read exactly what prometheus-client's Counter and Histogram make of the same
    calls (what `--workers` uses), bucket bounds and label spellings included."""
    tallied = CollectorRegistry()
    tally = metrics.ToolCallTally()
    tallied.register(tally)
    reference = CollectorRegistry()
    counter = Counter(
        metrics.TOOL_CALLS_NAME, metrics.TOOL_CALLS_HELP, ["tool", "outcome"], registry=reference
    )
    histogram = Histogram(
        metrics.TOOL_SECONDS_NAME,
        metrics.TOOL_SECONDS_HELP,
        ["tool"],
        buckets=metrics.BUCKETS,
        registry=reference,
    )
    for tool, outcome, seconds in calls:
        tally.record(tool, outcome, seconds)
        counter.labels(tool, str(outcome)).inc()
        histogram.labels(tool).observe(seconds)

    def without_created(registry: CollectorRegistry) -> Samples:
        scraped = samples(generate_latest(registry).decode())
        return {key: number for key, number in scraped.items() if not key[0].endswith("_created")}

    expected = without_created(reference)
    got = without_created(tallied)
    assert got.keys() == expected.keys()
    for key, number in expected.items():
        assert got[key] == pytest.approx(number, rel=1e-12), key
    created = samples(generate_latest(tallied).decode())
    assert {key for key in created if key[0] == "todo_mcp_tool_calls_created"} == {
        ("todo_mcp_tool_calls_created", frozenset({("tool", tool), ("outcome", str(outcome))}))
        for tool, outcome, _ in calls
    }


@pytest.mark.slow
def test_with_two_workers_a_scrape_of_either_counts_the_calls_of_both(
    empty_postgres_url: str, tmp_path: Path
) -> None:
    env = server_env(empty_postgres_url, {"METRICS_TOKEN": "scrape-secret-123"})
    for args in (["db", "upgrade"], ["users", "add", "ada", "--email", "ada@example.com"]):
        assert run_cli(args, cwd=tmp_path, env=env).returncode == 0
    server = spawn_command(tmp_path, env, "workers", ["serve", "--workers", "2"])
    scrape_headers = {"Authorization": "Bearer scrape-secret-123"}
    try:
        wait_healthy(server.base_url, processes=[server])
        calls = 40
        # A fresh connection per call, so the kernel spreads them over both workers.
        for number in range(calls):
            with httpx.Client(
                base_url=server.base_url, headers={"Authorization": f"Bearer {issue_token('ada')}"}
            ) as http:
                assert (
                    http.post("/tools/add_task", json={"user_id": "ada", "title": f"t{number}"}).status_code
                    == 200
                )
        # Each worker writes its calls to the shared files within the pool sampler's second.
        time.sleep(metrics.SAMPLE_SECONDS + 0.5)
        totals = set()
        for _ in range(6):
            with httpx.Client(base_url=server.base_url) as http:
                scraped = samples(http.get("/metrics", headers=scrape_headers).text)
            totals.add(value(scraped, "todo_mcp_tool_calls_total", tool="add_task", outcome="ok"))
    finally:
        stop(server)
    assert totals == {calls}, server.log()


# Run in a process of its own with PROMETHEUS_MULTIPROC_DIR set: the calls on stdin go through
# the module's tally (argv[1] == "tally") or straight into prometheus-client's own metrics.
SHARED_FILES_RUN = """
import json, sys
from prometheus_client import Counter, Histogram
from todo_mcp import metrics
calls = json.load(sys.stdin)
if sys.argv[1] == "tally":
    for tool, outcome, seconds in calls:
        metrics.tool_call(tool, outcome, seconds)
    metrics.publish_tool_calls()
else:
    counter = Counter("direct_calls", "", ["tool", "outcome"])
    histogram = Histogram("direct_seconds", "", ["tool"], buckets=metrics.BUCKETS)
    for tool, outcome, seconds in calls:
        counter.labels(tool, str(outcome)).inc()
        histogram.labels(tool).observe(seconds)
print(metrics.exposition()[0].decode())
"""


def test_under_workers_the_batches_written_read_as_prometheus_clients_own_metrics(tmp_path: Path) -> None:
    """Under `--workers` the tallied calls go into prometheus-client's shared files in batches,
    through the values its Histogram keeps: a scrape must read what observing each call would
    have written (the layout is the library's, so a new release that changes it fails here)."""
    calls = [["add_task", "ok", bound] for bound in metrics.BUCKETS] + [
        ["add_task", 400, 0.0004],
        ["list_tasks", "ok", 0.0031],
        ["add_task", "ok", 45.0],
    ] * 3

    def scraped(mode: str) -> Samples:
        directory = tmp_path / mode
        directory.mkdir()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
        done = subprocess.run(
            [sys.executable, "-c", SHARED_FILES_RUN, mode],
            input=json.dumps(calls),
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        )
        return samples(done.stdout)

    tallied, direct = scraped("tally"), scraped("direct")
    renamed = {
        (
            name.replace("direct_calls", "todo_mcp_tool_calls").replace(
                "direct_seconds", "todo_mcp_tool_call_seconds"
            ),
            labels,
        ): number
        for (name, labels), number in direct.items()
        if name.startswith("direct_")
    }
    ours = {key: number for key, number in tallied.items() if key[0].startswith("todo_mcp_tool_call")}
    assert ours.keys() == renamed.keys()
    for key, number in renamed.items():
        assert ours[key] == pytest.approx(number, rel=1e-12), key
    assert value(ours, "todo_mcp_tool_call_seconds_count", tool="add_task") == len(metrics.BUCKETS) + 6


def test_a_dead_workers_pool_gauges_are_not_added_to_the_live_ones(tmp_path: Path) -> None:
    """A worker that died (and that uvicorn replaced without telling prometheus-client) leaves its
    gauge files behind; a scrape counts only the workers alive."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    dead = "from todo_mcp import metrics; metrics.sample_pool(5, 3)"
    subprocess.run([sys.executable, "-c", dead], env=env, check=True, timeout=60)
    assert list(tmp_path.glob("gauge_livesum_*.db")), "the dead worker wrote no gauge file"
    alive = "from todo_mcp import metrics; metrics.sample_pool(1, 0); print(metrics.exposition()[0].decode())"
    scraped = subprocess.run(
        [sys.executable, "-c", alive], env=env, check=True, timeout=60, capture_output=True, text=True
    )
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(scraped.stdout)
        for sample in family.samples
        if sample.name in ("todo_mcp_db_pool_in_use", "todo_mcp_db_pool_waiting")
    }
    assert values == {"todo_mcp_db_pool_in_use": 1.0, "todo_mcp_db_pool_waiting": 0.0}
