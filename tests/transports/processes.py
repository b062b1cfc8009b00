"""Real `todo-mcp` processes for tests: the console script, a clean environment, servers.

Shared by the transport and CLI tests. Everything here is bounded in time: servers are polled
on /health against a deadline, and every process is stopped (terminate, then kill) in a finally.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from tests.conftest import make_settings
from todo_mcp.config import Settings
from todo_mcp.services.tokens import TokenService

# 40 characters: above the 32-byte minimum, so the server logs no weak-secret warning.
JWT_SECRET = "transport-tests-secret-0123456789abcdefg"
assert len(JWT_SECRET) == 40

STARTUP_DEADLINE_SECONDS = 20.0
STOP_DEADLINE_SECONDS = 10.0
CLI_DEADLINE_SECONDS = 60.0

# Every variable the server reads, so a developer's shell cannot change what a test sees.
_SETTINGS_VARIABLES = frozenset(
    {name.upper() for name in Settings.model_fields} | {"JWT_SECRET", "BETTER_AUTH_SECRET"}
)


def todo_mcp_executable() -> Path:
    """The console script installed next to the interpreter that runs the tests."""
    executable = Path(sys.executable).parent / "todo-mcp"
    assert executable.exists(), f"the todo-mcp console script is missing at {executable}"
    return executable


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any todo-mcp setting, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key.upper() not in _SETTINGS_VARIABLES}
    # Rich would wrap long lines at 80 columns; tests match messages, so give it room.
    env["COLUMNS"] = "200"
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float = CLI_DEADLINE_SECONDS
) -> subprocess.CompletedProcess[str]:
    """Run `todo-mcp ARGS` to completion (bounded) and return its exit status and output."""
    return subprocess.run(
        [str(todo_mcp_executable()), *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def issue_token(user_id: str, *, secret: str = JWT_SECRET, ttl: timedelta = timedelta(minutes=10)) -> str:
    """A bearer token for `user_id`, made the way `todo-mcp token` makes them."""
    return TokenService(make_settings("sqlite://", jwt_secret=secret)).issue(user_id, ttl)


def server_env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return clean_env({"DATABASE_URL": database_url, "JWT_SECRET": JWT_SECRET, **(extra or {})})


@dataclass
class ServerProcess:
    """One `todo-mcp serve` process listening on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def is_running(self) -> bool:
        return self.process.poll() is None


def _spawn(workdir: Path, env: Mapping[str, str], name: str) -> ServerProcess:
    port = free_port()
    log_path = workdir / f"{name}-{port}.log"
    with log_path.open("wb") as log_file:
        # The child keeps its own copy of the descriptor; stdout and stderr share one file so
        # the banner and the log lines appear in order when a test shows them.
        process = subprocess.Popen(
            [str(todo_mcp_executable()), "serve", "--port", str(port), "--host", "127.0.0.1"],
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(process=process, port=port, log_path=log_path)


def spawn_command(
    workdir: Path, env: Mapping[str, str], name: str, args: Sequence[str], *, port: int | None = None
) -> ServerProcess:
    """Start `todo-mcp ARGS` (a server command) on 127.0.0.1 and a free port (or `port`, when
    ARGS already name it), its output in `workdir/NAME.log`; nothing waits for it yet."""
    chosen = port or free_port()
    address = [] if port is not None else ["--host", "127.0.0.1", "--port", str(chosen)]
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(todo_mcp_executable()), *args, *address],
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(process=process, port=chosen, log_path=log_path)


def wait_healthy(*base_urls: str, processes: Sequence[ServerProcess]) -> None:
    """Poll each URL's /health until it answers 200, failing with the logs if a process exits
    or the start-up deadline passes."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    with httpx.Client(timeout=2.0) as http:
        for url in base_urls:
            while True:
                for server in processes:
                    assert server.is_running(), f"todo-mcp exited:\n{server.log()}"
                try:
                    if http.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass  # not listening yet
                assert time.monotonic() < deadline, "\n".join(server.log() for server in processes)
                with suppress(subprocess.TimeoutExpired):
                    processes[0].process.wait(timeout=0.05)


def stop(server: ServerProcess) -> None:
    """Terminate the process and wait for it, killing it if it does not stop in time."""
    if server.process.poll() is not None:
        return
    server.process.terminate()
    try:
        server.process.wait(timeout=STOP_DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=STOP_DEADLINE_SECONDS)


def _wait_until_healthy(servers: Sequence[ServerProcess]) -> list[ServerProcess]:
    """Poll /health of each server until it answers 200; return the ones that exited instead."""
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    pending = list(servers)
    exited: list[ServerProcess] = []
    with httpx.Client(timeout=2.0) as http:
        while pending:
            for server in list(pending):
                if not server.is_running():
                    pending.remove(server)
                    exited.append(server)
                    continue
                try:
                    if http.get(f"{server.base_url}/health").status_code == 200:
                        pending.remove(server)
                except httpx.TransportError:
                    pass  # not listening yet
            if not pending:
                break
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {s.log_path.name}\n{s.log()}" for s in pending)
                raise AssertionError(
                    f"todo-mcp serve did not become healthy within {STARTUP_DEADLINE_SECONDS} s:\n{logs}"
                )
            # Waiting on the first pending process doubles as the pause between polls, and
            # notices at once if it dies.
            with suppress(subprocess.TimeoutExpired):
                pending[0].process.wait(timeout=0.05)
    return exited


@contextmanager
def running_servers(
    count: int, *, database_url: str, workdir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[list[ServerProcess]]:
    """Start `count` servers on one database at once and yield them once all are healthy."""
    env = server_env(database_url, extra_env)
    with ExitStack() as cleanup:
        servers: list[ServerProcess] = []
        for index in range(count):
            server = _spawn(workdir, env, f"server{index}")
            cleanup.callback(stop, server)
            servers.append(server)
        for _attempt in range(3):
            exited = _wait_until_healthy(servers)
            if not exited:
                break
            # Another process may have taken the port between free_port() and the bind: retry
            # on a new port; any other early exit is a failure.
            for server in exited:
                if "address already in use" not in server.log().lower():
                    raise AssertionError(
                        f"todo-mcp serve exited with status {server.process.returncode}:\n{server.log()}"
                    )
                replacement = _spawn(workdir, env, f"server{servers.index(server)}")
                cleanup.callback(stop, replacement)
                servers[servers.index(server)] = replacement
        else:
            raise AssertionError("todo-mcp serve could not find a free port in three attempts")
        yield servers


# The `launch_servers` fixture: launch(count, database_url=..., extra_env=...) -> healthy servers.
LaunchServers = Callable[..., list[ServerProcess]]
