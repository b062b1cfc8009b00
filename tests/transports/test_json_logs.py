"""`LOG_FORMAT=json` for real: everything a server process writes is one JSON object per line
(the help for a person at a terminal is left out), so log tools can read the whole output, and
a request's lines carry the id the proxy gave it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.transports.processes import (
    free_port,
    issue_token,
    run_cli,
    server_env,
    spawn_command,
    stop,
    wait_healthy,
)

pytestmark = pytest.mark.slow


def test_json_logs_are_only_json_lines_and_a_requests_lines_carry_its_id(tmp_path: Path) -> None:
    api_port = free_port()
    env = server_env(f"sqlite:///{tmp_path / 'todo.db'}", {"LOG_FORMAT": "json", "API_PORT": str(api_port)})
    added_user = run_cli(["users", "add", "ada", "--email", "ada@example.com"], cwd=tmp_path, env=env)
    assert added_user.returncode == 0, added_user.stderr
    server = spawn_command(tmp_path, env, "serve", ["serve", "--with-api"])
    try:
        wait_healthy(server.base_url, f"http://127.0.0.1:{api_port}", processes=[server])
        headers = {"Authorization": f"Bearer {issue_token('ada')}"}
        with httpx.Client(headers=headers, timeout=10) as http:
            added = http.post(
                f"{server.base_url}/tools/add_task",
                json={"user_id": "ada", "title": "read the logs"},
                headers={"X-Request-Id": "proxy-id-1"},
            )
            refused = http.post(
                f"{server.base_url}/tools/list_tasks",
                json={"user_id": "grace"},
                headers={"X-Request-Id": "proxy-id-2"},
            )
            rest = http.get(
                f"http://127.0.0.1:{api_port}/api/ada/tasks", headers={"X-Request-Id": "proxy-id-3"}
            )
    finally:
        stop(server)
    assert (added.status_code, refused.status_code, rest.status_code) == (200, 403, 200)
    assert [r.headers["x-request-id"] for r in (added, refused, rest)] == [
        "proxy-id-1",
        "proxy-id-2",
        "proxy-id-3",
    ]

    lines = [line for line in server.log().splitlines() if line.strip()]
    entries = []
    for line in lines:
        entry = json.loads(line)  # fails on any line that is not JSON
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    calls = {entry["request_id"]: entry for entry in entries if "outcome" in entry}
    assert {key: calls["proxy-id-1"][key] for key in ("tool", "user", "outcome")} == {
        "tool": "add_task",
        "user": "ada",
        "outcome": "ok",
    }
    assert isinstance(calls["proxy-id-1"]["duration_ms"], float)
    assert (calls["proxy-id-2"]["tool"], calls["proxy-id-2"]["outcome"]) == ("list_tasks", 403)
    requests = {entry["request_id"]: entry for entry in entries if "route" in entry}
    assert {key: requests["proxy-id-3"][key] for key in ("method", "route", "status")} == {
        "method": "GET",
        "route": "/api/{user_id}/tasks",
        "status": 200,
    }
    assert any("serving MCP on" in entry["message"] for entry in entries), "no line says where it serves"
