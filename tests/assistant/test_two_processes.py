"""Two `todo-mcp api` processes on one PostgreSQL database take turns answering one
conversation, as two processes behind a load balancer would: each loads the history the other
wrote, so the conversation is whole and in order, and the offline model's "which one?" asked
by one process is answered by the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.transports.processes import (
    ServerProcess,
    issue_token,
    run_cli,
    server_env,
    spawn_command,
    stop,
    wait_healthy,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def two_apis(empty_postgres_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    env = server_env(empty_postgres_url)
    for args in (["db", "upgrade"], ["users", "add", "ada", "--email", "ada@example.com"]):
        done = run_cli(args, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    servers = [spawn_command(tmp_path, env, f"api{index}", ["api"]) for index in range(2)]
    try:
        wait_healthy(*(server.base_url for server in servers), processes=servers)
        yield servers
    finally:
        for server in servers:
            stop(server)


def test_alternate_messages_of_one_conversation_on_two_processes_keep_the_history_whole(
    two_apis: list[ServerProcess],
) -> None:
    headers = {"Authorization": f"Bearer {issue_token('ada')}"}
    said = [
        "add call the dentist tomorrow",
        "add dentist invoice",
        "complete the dentist task",
        "the second one",
        "what have I done?",
    ]
    answers = []
    conversation = None
    with httpx.Client(timeout=30, headers=headers) as http:
        for turn, message in enumerate(said):
            server = two_apis[turn % 2]
            body = {"message": message, **({"conversation_id": conversation} if conversation else {})}
            response = http.post(f"{server.base_url}/api/ada/chat", json=body)
            assert response.status_code == 200, f"{response.text}\n{server.log()}"
            conversation = response.json()["conversation_id"]
            answers.append(response.json())
        stored = http.get(f"{two_apis[0].base_url}/api/ada/conversations/{conversation}/messages").json()

    # Asked by the first process, answered through the second.
    assert "Which one should I complete?" in answers[2]["response"]
    assert [call["name"] for call in answers[3]["tool_calls"]] == ["complete_task"]
    assert "Dentist invoice" in answers[4]["response"]
    pairs = [(message["role"], message["content"]) for message in stored["items"]]
    expected = []
    for message, answer in zip(said, answers, strict=True):
        expected += [("user", message), ("assistant", answer["response"])]
    assert pairs == expected
    assert stored["items"][7]["tool_calls"] == answers[3]["tool_calls"]
