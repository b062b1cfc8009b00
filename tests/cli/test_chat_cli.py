"""`todo-mcp chat` against a real `serve --demo --with-api` process (what `make run` starts), in
development mode like a first run: tool calls shown as they happen, a conversation resumed by a
second chat process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.transports.processes import (
    CLI_DEADLINE_SECONDS,
    ServerProcess,
    clean_env,
    free_port,
    spawn_command,
    stop,
    todo_mcp_executable,
    wait_healthy,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    env = clean_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'todo.db'}"})
    port, api_port = free_port(), free_port()
    server = spawn_command(
        tmp_path,
        env,
        "make-run",
        [
            "serve",
            "--demo",
            "--with-api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--api-port",
            str(api_port),
        ],
        port=port,
    )
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_healthy(server.base_url, api, processes=[server])
        yield server, api
    finally:
        stop(server)


def chat(api: str, lines: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(todo_mcp_executable()), "chat", "--user", "demo", "--url", api, *args],
        input="".join(f"{line}\n" for line in lines),
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=CLI_DEADLINE_SECONDS,
        check=False,
    )


def test_chat_shows_each_tool_call_and_a_second_process_resumes_the_conversation(
    make_run: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    server, api = make_run
    first = chat(
        api,
        ["add call the dentist tomorrow at 9am", "add dentist invoice", "complete the dentist task"],
        cwd=tmp_path,
    )

    assert first.returncode == 0, first.stderr + first.stdout
    out = first.stdout
    assert '\u2192 add_task(title="Call the dentist", due="tomorrow 09:00")' in out
    assert "\u2190 Task 1 'Call the dentist' was added, due tomorrow" in out
    assert "\u2192 list_tasks(" in out
    assert "Which one should I complete?" in out
    assert "todo-mcp chat --user demo --conversation 1" in out
    assert "HTTP Request" not in first.stderr

    # Another process, the same conversation: the answer "2" only makes sense with its history.
    resumed = chat(api, ["2"], "--conversation", "1", cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "\u2192 complete_task(task_id=2)" in resumed.stdout
    assert "Dentist invoice" in resumed.stdout
    assert "completed" in resumed.stdout
    assert "HTTP Request" not in server.log()
    # What make run prints says how to reach the assistant.
    assert "todo-mcp chat --user demo (built-in offline model)" in server.log()


def test_chat_without_a_running_api_says_how_to_start_one(tmp_path: Path) -> None:
    result = chat(f"http://127.0.0.1:{free_port()}", ["hello"], cwd=tmp_path)

    assert result.returncode == 1
    assert "cannot reach the REST API" in result.stdout
    assert "make run" in result.stdout
    assert "Traceback" not in result.stderr
