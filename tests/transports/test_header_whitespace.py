"""Header values with spaces or tabs around them mean the trimmed value (RFC 9110, section 5.5).

The 2026-07-28 revision routes a request on `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and
`Mcp-Param-*`, and the SDK compares them byte for byte; the HTTP parser (httptools) used to hand
over trailing whitespace, so `Mcp-Name: list_tasks ` was refused with -32020. Sent here over a
raw socket (HTTP clients refuse to send such values), to real processes started as `make run`
starts one, with `--workers 2`, and as `todo-mcp api`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.transports.processes import (
    ServerProcess,
    clean_env,
    free_port,
    issue_token,
    spawn_command,
    stop,
    wait_healthy,
)

pytestmark = pytest.mark.slow

MODERN = "2026-07-28"
# Around the value: trailing, leading, both, spaces and tabs.
PADDINGS = [("", " "), ("", "\t"), ("", " \t  "), (" ", ""), ("\t", ""), (" \t", "\t ")]
ROUTING_HEADERS = ["MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"]
SOCKET_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RawAnswer:
    status: int
    body: Any


def raw_post(
    port: int, path: str, body: bytes, headers: list[tuple[str, str]], *, method: str = "POST"
) -> RawAnswer:
    """One HTTP/1.1 request written byte for byte as given, read until the server closes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_SECONDS) as connection:
        connection.sendall(request)
        received = bytearray()
        while chunk := connection.recv(65536):
            received += chunk
    head, _, content = bytes(received).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return RawAnswer(status=status, body=json.loads(content) if content else None)


def modern_list_call(user: str, headers: dict[str, str]) -> tuple[bytes, list[tuple[str, str]]]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "list_tasks",
            "arguments": {"user_id": user},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    base = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": "list_tasks",
        **headers,
    }
    return json.dumps(body).encode(), list(base.items())


@pytest.fixture(scope="module")
def make_run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    """`todo-mcp serve --demo --with-api` on the embedded SQLite default, as `make run` runs it."""
    workdir = tmp_path_factory.mktemp("make-run")
    api_port = free_port()
    server = spawn_command(
        workdir, clean_env({"API_PORT": str(api_port)}), "make-run", ["serve", "--demo", "--with-api"]
    )
    try:
        wait_healthy(server.base_url, f"http://127.0.0.1:{api_port}", processes=[server])
        yield server, api_port
    finally:
        stop(server)


@pytest.fixture(scope="module")
def workers_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("workers")
    server = spawn_command(workdir, clean_env(), "workers", ["serve", "--demo", "--workers", "2"])
    try:
        wait_healthy(server.base_url, processes=[server])
        yield server
    finally:
        stop(server)


def assert_padded_routing_headers_are_accepted(port: int) -> None:
    for name in ROUTING_HEADERS:
        for before, after in PADDINGS:
            body, headers = modern_list_call("demo", {})
            value = dict(headers)[name]
            padded = [(n, f"{before}{v}{after}" if n == name else v) for n, v in headers]
            answer = raw_post(port, "/mcp", body, padded)
            assert answer.status == 200, (name, repr(before + value + after), answer.body)
            assert answer.body["result"]["structuredContent"]["status"] == "success", answer.body


def test_padded_routing_headers_mean_their_trimmed_values_under_make_run(
    make_run_server: tuple[ServerProcess, int],
) -> None:
    server, _ = make_run_server
    assert_padded_routing_headers_are_accepted(server.port)


def test_padded_routing_headers_mean_their_trimmed_values_with_two_workers(
    workers_server: ServerProcess,
) -> None:
    # Each request on its own connection: the two workers share the port, so both answer some.
    for _ in range(2):
        assert_padded_routing_headers_are_accepted(workers_server.port)


def test_a_padded_header_value_still_differs_from_a_wrong_one(
    make_run_server: tuple[ServerProcess, int],
) -> None:
    server, _ = make_run_server
    body, headers = modern_list_call("demo", {"Mcp-Name": " add_task\t"})
    answer = raw_post(server.port, "/mcp", body, headers)
    assert answer.status == 400
    assert answer.body["error"]["code"] == -32020


def test_padded_content_type_and_authorization_reach_the_rest_api_trimmed(tmp_path: Path) -> None:
    secret = "header-tests-secret-0123456789abcdefghij"
    port = free_port()
    env = clean_env(
        {"JWT_SECRET": secret, "API_PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp_path / 'api.db'}"}
    )
    server = spawn_command(tmp_path, env, "api", ["api", "--port", str(port)], port=port)
    try:
        wait_healthy(server.base_url, processes=[server])
        token = issue_token("nobody", secret=secret)
        answer = raw_post(
            port,
            "/api/me",
            b"",
            [("Authorization", f"Bearer {token} \t"), ("Content-Type", " application/json\t")],
            method="GET",
        )
        # The token verified (a padded one would be malformed): the user simply does not exist.
        assert answer.status == 404, answer.body
    finally:
        stop(server)
