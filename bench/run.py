"""`make bench`: MCP tool calls under load, against the floor, on this machine.

For each database (PostgreSQL, SQLite), worker count (1, 2), call (add_task; list_tasks of a
user with 50 tasks; list_tasks_10k: a filtered page of 50 of a user with 10,000 tasks, pending,
labelled work, sorted by due date), protocol revision (2025-11-25, 2026-07-28) and concurrency
(1, 16, 64), wrk
drives `todo-mcp serve` on 127.0.0.1 for a fixed time; and the assistant (`todo-mcp api`, offline
model, a one-tool message) at concurrency 1 and 8. The floor is the same insert through the
same stack with the driver alone (bench/floor_app.py), measured right before and right after the
MCP cells of each concurrency; ratios are against the mean of the two. Also measured: server CPU
seconds per call and the resident size of a worker before and after 100,000 calls.

Writes bench/results/<UTC time>.json, latest.json, latest.md and latest.png, and the table in
README.md between the bench markers. Traffic goes to 127.0.0.1 only; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LUA = ROOT / "bench" / "wrk" / "call.lua"
TODO_MCP = Path(sys.executable).parent / "todo-mcp"
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROTOCOLS = ("2025-11-25", "2026-07-28")
CONCURRENCY = (1, 16, 64)
LIST_USER_TASKS = 50
PLANNER_TASKS = 10_000
PLANNER_QUERY = {"user_id": "planner", "status": "pending", "labels": ["work"], "sort": "due", "limit": 50}
# The assistant with its offline model: one message that makes one tool call (add_task), each in
# a new conversation (history load, two messages stored, an MCP connection in process).
CHAT_CONCURRENCY = (1, 8)
CHAT_REQUEST = {
    "BENCH_PATH": "/api/bench/chat",
    "BENCH_ACCEPT": "application/json",
    "BENCH_BODY": json.dumps({"message": "add benchmark chat task"}),
}
MEMORY_CALLS = 100_000
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


@dataclass
class Run:
    database: str
    workers: int
    target: str  # add_task, list_tasks, list_tasks_10k, chat, or floor
    protocol: str | None
    concurrency: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    responses: int
    errors: int
    server_cpu_seconds_per_call: float
    floor_ratio: float | None = None


@dataclass
class Pinning:
    cores: int
    server: str
    load: str
    note: str


@dataclass
class Report:
    started_at: str
    duration_seconds: float
    machine: dict[str, Any]
    pinning: dict[str, Pinning]
    runs: list[Run] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn's workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(children.get(current, []))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def taskset(cores: str | None) -> list[str]:
    return ["taskset", "-c", cores] if cores and shutil.which("taskset") else []


@contextmanager
def server_process(command: list[str], env: dict[str, str], cores: str | None, log: Path) -> Iterator[int]:
    """Start a server, wait until it answers HTTP, yield its pid; always stop it."""
    port = free_port()
    command = [*taskset(cores), *[part.replace("{port}", str(port)) for part in command]]
    with log.open("ab") as log_file:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited early; see {log}")
            with suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {log}")
            time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def tool_request(tool: str, arguments: dict[str, Any], protocol: str) -> dict[str, str]:
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    headers = {"BENCH_PROTOCOL": protocol, "BENCH_PATH": "/mcp"}
    if protocol == "2026-07-28":
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": protocol,
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        headers |= {"BENCH_MCP_METHOD": "tools/call", "BENCH_MCP_NAME": tool}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    return headers | {"BENCH_BODY": json.dumps(body, separators=(",", ":"))}


def run_wrk(
    port: int, request: dict[str, str], concurrency: int, seconds: float, cores: str | None
) -> dict[str, Any]:
    env = {**os.environ, **request}
    threads = 1 if concurrency < 16 else 2
    command = [
        *taskset(cores),
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
    ]
    output = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    result = re.search(r"BENCH_RESULT failures=(\d+) responses=(\d+)", output)
    latency = re.search(r"BENCH_LATENCY p50=(\d+) p99=(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    assert result, output
    assert latency, output
    errors = int(result.group(1)) + (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0)
    return {
        "requests_per_second": rps,
        "responses": int(result.group(2)),
        "errors": errors,
        "p50_ms": int(latency.group(1)) / 1000,
        "p99_ms": int(latency.group(2)) / 1000,
    }


def measure(
    server_pid: int,
    port: int,
    request: dict[str, str],
    concurrency: int,
    seconds: float,
    load_cores: str | None,
) -> dict[str, Any]:
    run_wrk(port, request, concurrency, 1, load_cores)  # warm-up, not recorded
    pids = process_tree(server_pid)
    cpu_before = cpu_seconds(pids)
    figures = run_wrk(port, request, concurrency, seconds, load_cores)
    cpu = cpu_seconds(pids) - cpu_before
    figures["server_cpu_seconds_per_call"] = cpu / max(figures["responses"], 1)
    return figures


async def admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def cli(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [str(TODO_MCP), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


BENCH_USERS = ("bench", "lister", "planner")


def prepare_database(env: dict[str, str]) -> dict[str, str]:
    """Schema, the users, the planner's long list, and the users' tokens."""
    cli(env, "db", "upgrade")
    for user in BENCH_USERS:
        cli(env, "users", "add", user, "--email", f"{user}@bench.invalid")
    asyncio.run(seed_planner(env["DATABASE_URL"]))
    return {user: cli(env, "token", user, "--ttl", "86400") for user in BENCH_USERS}


async def seed_planner(url: str) -> None:
    """10,000 tasks through the service itself: 7 in 10 pending, every 5th labelled work, due
    over two months from today or undated, of every priority."""
    from todo_mcp.config import Settings
    from todo_mcp.db.engine import Database
    from todo_mcp.services import tasks

    db = Database.from_settings(Settings(_env_file=None, database_url=url))
    today = datetime.now(UTC).date()
    try:
        async with db.connect() as conn, conn.transaction():
            for n in range(PLANNER_TASKS):
                due = None if n % 3 == 0 else (today + timedelta(days=n % 60 - 15)).isoformat()
                added = await tasks.add_task(
                    conn,
                    user_id="planner",
                    title=f"Planned task {n}",
                    due=due,
                    priority=("none", "low", "medium", "high")[n % 4],
                    labels=["work"] if n % 5 == 0 else None,
                )
                if n % 10 >= 7:
                    await tasks.complete_task(conn, user_id="planner", task_id=added.task.id)
    finally:
        await db.dispose()
    if url.startswith("postgresql"):
        # What autovacuum does soon after a bulk load: statistics, and the visibility map that
        # lets the list's page of ids come from an index-only scan.
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await connection.execute("VACUUM ANALYZE tasks, task_labels")
        finally:
            await connection.close()


def seed_list_user(port: int, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as http:
        for number in range(LIST_USER_TASKS):
            answer = http.post("/tools/add_task", json={"user_id": "lister", "title": f"Task {number}"})
            answer.raise_for_status()


def pinning_for(workers: int, cores: int) -> Pinning:
    if cores < 2:
        return Pinning(cores, "unpinned", "unpinned", "one core: server and load share it")
    if workers == 1:
        return Pinning(cores, "0", str(cores - 1), "server and wrk on separate cores; PostgreSQL unpinned")
    return Pinning(
        cores,
        f"0-{cores - 1}",
        str(cores - 1),
        "two workers need both cores, so wrk shares the last one; PostgreSQL unpinned",
    )


@dataclass(frozen=True)
class Selection:
    """Which cells to run: all of them for `make bench`, fewer while working on one figure."""

    workers: tuple[int, ...] = (1, 2)
    tools: tuple[str, ...] = ("add_task", "list_tasks", "list_tasks_10k", "chat")
    protocols: tuple[str, ...] = PROTOCOLS
    concurrency: tuple[int, ...] = CONCURRENCY
    floor: bool = True


FLOOR_REQUEST = {"BENCH_PATH": "/insert", "BENCH_BODY": json.dumps({"user_id": "bench", "title": "floor"})}


def measure_floor(
    report: Report,
    database: str,
    workers: int,
    pid: int,
    port: int,
    concurrency: int,
    seconds: float,
    load_cores: str | None,
) -> float:
    figures = measure(pid, port, FLOOR_REQUEST, concurrency, seconds, load_cores)
    report.runs.append(Run(database, workers, "floor", None, concurrency, **figures))
    print_run(report.runs[-1])
    return float(figures["requests_per_second"])


def bench_database(
    report: Report, database: str, url: str, seconds: float, workdir: Path, selection: Selection
) -> None:
    secret = secrets.token_urlsafe(32)
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": secret, "LOG_LEVEL": "INFO"}
    env.pop("CI", None)
    tokens = prepare_database(env)
    cores = os.cpu_count() or 1
    seeded = False
    for workers in selection.workers:
        pin = pinning_for(workers, cores)
        report.pinning[f"workers={workers}"] = pin
        server_cores = None if pin.server == "unpinned" else pin.server
        load_cores = None if pin.load == "unpinned" else pin.load
        floor = [sys.executable, "-m", "bench.floor_app", "--port", "{port}", "--workers", str(workers)]
        serve = [str(TODO_MCP), "serve", "--port", "{port}", "--workers", str(workers)]
        with (
            server_process(floor, env, server_cores, workdir / f"floor-{database}.log") as floor_pid,
            server_process(serve, env, server_cores, workdir / f"serve-{database}.log") as pid,
        ):
            floor_port, port = port_of(floor_pid), port_of(pid)
            if not seeded:
                seed_list_user(port, tokens["lister"])
                seeded = True
            for concurrency in selection.concurrency:
                # The floor right before and right after the MCP cells it is compared with: the
                # machine's speed drifts over minutes, and the ratio uses the mean of the two.
                floor_cell = partial(
                    measure_floor,
                    report,
                    database,
                    workers,
                    floor_pid,
                    floor_port,
                    concurrency,
                    seconds,
                    load_cores,
                )
                floor_before = floor_cell() if selection.floor else None
                mcp_runs: list[Run] = []
                for target, tool, user, arguments in (
                    ("add_task", "add_task", "bench", {"user_id": "bench", "title": "Benchmark task"}),
                    ("list_tasks", "list_tasks", "lister", {"user_id": "lister"}),
                    ("list_tasks_10k", "list_tasks", "planner", PLANNER_QUERY),
                ):
                    if target not in selection.tools:
                        continue
                    for protocol in selection.protocols:
                        request = tool_request(tool, arguments, protocol) | {"BENCH_TOKEN": tokens[user]}
                        figures = measure(pid, port, request, concurrency, seconds, load_cores)
                        mcp_runs.append(Run(database, workers, target, protocol, concurrency, **figures))
                        report.runs.append(mcp_runs[-1])
                        if floor_before is None:
                            print_run(mcp_runs[-1])
                if floor_before is None:
                    continue
                floor_rps = (floor_before + floor_cell()) / 2
                for run in mcp_runs:
                    if run.target == "add_task":
                        run.floor_ratio = run.requests_per_second / floor_rps
                    print_run(run)
    if "chat" in selection.tools:
        bench_chat(report, database, env, tokens["bench"], seconds, workdir)


def bench_chat(
    report: Report, database: str, env: dict[str, str], token: str, seconds: float, workdir: Path
) -> None:
    """POST /api/{user}/chat of `todo-mcp api`, one process, at concurrency 1 and 8."""
    pin = pinning_for(1, os.cpu_count() or 1)
    server_cores = None if pin.server == "unpinned" else pin.server
    load_cores = None if pin.load == "unpinned" else pin.load
    api = [str(TODO_MCP), "api", "--port", "{port}"]
    with server_process(api, env, server_cores, workdir / f"api-{database}.log") as pid:
        port = port_of(pid)
        for concurrency in CHAT_CONCURRENCY:
            request = CHAT_REQUEST | {"BENCH_TOKEN": token}
            figures = measure(pid, port, request, concurrency, seconds, load_cores)
            report.runs.append(Run(database, 1, "chat", None, concurrency, **figures))
            print_run(report.runs[-1])


def port_of(pid: int) -> int:
    """The port a server process listens on (read from its command line)."""
    arguments = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    return int(arguments[arguments.index("--port") + 1])


def bench_memory(report: Report, url: str, workdir: Path) -> None:
    """Resident size of one worker before and after 100,000 add_task calls."""
    secret = secrets.token_urlsafe(32)
    env = {**os.environ, "DATABASE_URL": url, "JWT_SECRET": secret}
    token = cli(env, "token", "bench", "--ttl", "86400")
    request = tool_request("add_task", {"user_id": "bench", "title": "Memory"}, "2026-07-28") | {
        "BENCH_TOKEN": token
    }
    serve = [str(TODO_MCP), "serve", "--port", "{port}"]
    with server_process(serve, env, "0", workdir / "memory.log") as pid:
        port = port_of(pid)
        run_wrk(port, request, 16, 2, None)
        before = rss_mb(pid)
        calls = 0
        while calls < MEMORY_CALLS:
            calls += run_wrk(port, request, 16, 10, None)["responses"]
        after = rss_mb(pid)
    report.memory = {
        "database": "postgresql",
        "calls": calls,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "growth_mb": round(after - before, 1),
    }
    print(f"memory: {before:.1f} MB -> {after:.1f} MB after {calls} calls", flush=True)


def print_run(run: Run) -> None:
    ratio = f" floor x{run.floor_ratio:.2f}" if run.floor_ratio else ""
    print(
        f"{run.database:10} w{run.workers} {run.target:10} {run.protocol or '-':10} c{run.concurrency:<3} "
        f"{run.requests_per_second:8.0f}/s p50 {run.p50_ms:6.1f} ms p99 {run.p99_ms:7.1f} ms "
        f"errors {run.errors} cpu/call {run.server_cpu_seconds_per_call * 1000:.2f} ms{ratio}",
        flush=True,
    )


def cpu_check_ms() -> float:
    """How long a fixed pure-Python loop takes here now (median of 5): this shared machine's speed
    moves by half within minutes, and a run's figures only compare with another's at equal speed."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        sum(number * number for number in range(1_000_000))
        timings.append((time.perf_counter() - started) * 1000)
    return round(sorted(timings)[2], 1)


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    packages = (
        "mcp",
        "sqlalchemy",
        "sqlmodel",
        "asyncpg",
        "aiosqlite",
        "uvicorn",
        "httptools",
        "uvloop",
        "starlette",
        "pydantic",
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_generator": wrk_version,
        "packages": {name: version(name) for name in packages},
    }


def markdown(report: Report) -> str:
    check = report.machine.get("cpu_check_ms", {})
    lines = [
        f"Measured {report.started_at} on {report.machine['cores']} cores ({report.machine['cpu']}), "
        f"Python {report.machine['python']}, mcp {report.machine['packages']['mcp']}; load from "
        f"{report.machine['load_generator'].split(' [')[0]}, {report.duration_seconds:g} s per cell. "
        "Server and wrk pinning: "
        + "; ".join(f"{k}: server {p.server}, wrk {p.load}" for k, p in report.pinning.items())
        + ". "
        f"Machine speed: a fixed Python loop took {check.get('start')} ms at the start and "
        f"{check.get('end')} ms at the end (lower is faster; runs compare only at similar figures).",
        "",
        "| database | workers | call | protocol | c | calls/s | p50 ms | p99 ms | errors "
        "| CPU ms/call | x floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report.runs:
        ratio = f"{run.floor_ratio:.2f}" if run.floor_ratio is not None else ""
        lines.append(
            f"| {run.database} | {run.workers} | {run.target} | {run.protocol or ''} | {run.concurrency} | "
            f"{run.requests_per_second:.0f} | {run.p50_ms:.1f} | {run.p99_ms:.1f} | {run.errors} | "
            f"{run.server_cpu_seconds_per_call * 1000:.2f} | {ratio} |"
        )
    if report.memory:
        memory = report.memory
        lines += [
            "",
            f"Memory, one worker on {memory['database']}: {memory['rss_before_mb']} MB before and "
            f"{memory['rss_after_mb']} MB after {memory['calls']:,} add_task calls.",
        ]
    return "\n".join(lines) + "\n"


def chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [run for run in report.runs if run.concurrency == 16]
    labels = [f"{r.database[:2]} w{r.workers} {r.target}\n{r.protocol or ''}" for r in cells]
    figure, axis = plt.subplots(figsize=(max(8, len(cells) * 0.7), 5))
    colours = [
        "#888888" if r.target == "floor" else "#1f77b4" if r.target == "add_task" else "#2ca02c"
        for r in cells
    ]
    axis.bar(range(len(cells)), [r.requests_per_second for r in cells], color=colours)
    axis.set_xticks(range(len(cells)), labels, rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("calls per second (concurrency 16)")
    axis.set_title("todo-mcp: MCP tools/call vs the driver-only floor (grey)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def update_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        _, tail = rest.split(README_END, 1)
        readme.write_text(f"{head}{README_START}\n{table}{README_END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="duration of each measured cell")
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--workers", help="e.g. 1 or 1,2 (a partial run prints and saves nothing)")
    parser.add_argument("--tools", help="e.g. add_task")
    parser.add_argument("--protocols", help="e.g. 2026-07-28")
    parser.add_argument("--concurrency", help="e.g. 16")
    parser.add_argument("--skip-floor", action="store_true")
    options = parser.parse_args()
    full = Selection()
    selection = Selection(
        workers=tuple(int(n) for n in options.workers.split(",")) if options.workers else full.workers,
        tools=tuple(options.tools.split(",")) if options.tools else full.tools,
        protocols=tuple(options.protocols.split(",")) if options.protocols else full.protocols,
        concurrency=tuple(int(n) for n in options.concurrency.split(","))
        if options.concurrency
        else full.concurrency,
        floor=not options.skip_floor,
    )
    partial = selection != full
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    report = Report(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), options.seconds, machine(), {})
    report.machine["cpu_check_ms"] = {"start": cpu_check_ms()}
    with tempfile.TemporaryDirectory(prefix="todo-bench-") as scratch:
        workdir = Path(scratch)
        name = f"todo_bench_{secrets.token_hex(4)}"
        pg_url = make_url(PG_ADMIN_URL).set(drivername="postgresql", database=name).render_as_string(False)
        if "postgresql" in options.databases:
            asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        try:
            for database in options.databases.split(","):
                url = pg_url if database == "postgresql" else f"sqlite:///{workdir / 'bench.db'}"
                bench_database(report, database, url, options.seconds, workdir, selection)
            if not partial and not options.skip_memory and "postgresql" in options.databases:
                bench_memory(report, pg_url, workdir)
        finally:
            if "postgresql" in options.databases:
                asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    report.machine["cpu_check_ms"]["end"] = cpu_check_ms()
    print(f"cpu check: {report.machine['cpu_check_ms']} ms", flush=True)
    if partial:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = report.started_at.replace(":", "")
    data = json.dumps(asdict(report), indent=2)
    (RESULTS / f"{stamp}.json").write_text(data)
    (RESULTS / "latest.json").write_text(data)
    table = markdown(report)
    (RESULTS / "latest.md").write_text(table)
    chart(report, RESULTS / "latest.png")
    update_readme(table)
    print(table)


if __name__ == "__main__":
    main()
