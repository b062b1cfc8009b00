"""What a real `todo-mcp serve` process does with wrong, odd and hostile HTTP requests.

POST /tools/{name} answers with the envelope MCP gives and the error code as HTTP status;
bad bodies and bad JSON-RPC get 4xx (or a JSON-RPC error), never a 5xx; oversized bodies are
refused before they are read; Host headers that are not this machine's are refused (DNS
rebinding) unless configured. After each, the server still serves a good call.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.mcp.conftest import page
from tests.transports.clients import TOOL_NAMES, call, create_users, mcp_client
from tests.transports.processes import LaunchServers, ServerProcess, issue_token

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MAX_REQUEST_BYTES = 65536
HTTP_TIMEOUT_SECONDS = 15.0
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
MODERN = "2026-07-28"
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
ALLOWED_HOST = "todo.example.com"
ALLOWED_ORIGIN = "https://todo.example.com"


@pytest.fixture(scope="module")
def server_extra_env() -> dict[str, str]:
    # Small, so that "too large" is cheap to send; the default is 1 MiB.
    return {"MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)}


@pytest.fixture(scope="module")
def proxied_server(launch_servers: LaunchServers, seeded_sqlite_url: str) -> ServerProcess:
    """A server told it is reached as todo.example.com (behind a proxy)."""
    extra = {"MCP_ALLOWED_HOSTS": ALLOWED_HOST, "MCP_ALLOWED_ORIGINS": ALLOWED_ORIGIN}
    return launch_servers(database_url=seeded_sqlite_url, extra_env=extra)[0]


@pytest.fixture
async def user(seeded_sqlite_url: str) -> str:
    """A user of this test's own, with no tasks."""
    user_id = f"user-{secrets.token_hex(4)}"
    await create_users(seeded_sqlite_url, user_id)
    return user_id


@pytest.fixture
async def http(server: ServerProcess, user: str) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the server, with a valid token for `user`."""
    headers = {"Authorization": f"Bearer {issue_token(user)}"}
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, timeout=HTTP_TIMEOUT_SECONDS
    ) as client:
        yield client


async def assert_still_serving(server: ServerProcess, http: httpx.AsyncClient, user: str) -> None:
    """The process is alive and a good call still succeeds."""
    assert server.is_running(), server.log()
    response = await http.post("/tools/list_tasks", json={"user_id": user})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


def error_envelope(response: httpx.Response, code: int) -> dict[str, Any]:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["status"] == "error"
    assert body["data"] == {"error_code": code}
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


# (tool, arguments with USER standing for the test's user, expected HTTP status)
ENVELOPE_CASES: dict[str, tuple[str, dict[str, Any], int]] = {
    "list succeeds": ("list_tasks", {"user_id": "USER"}, 200),
    "blank title": ("add_task", {"user_id": "USER", "title": "   "}, 400),
    "title too long": ("add_task", {"user_id": "USER", "title": "x" * 201}, 400),
    "description too long": ("add_task", {"user_id": "USER", "title": "t", "description": "d" * 1001}, 400),
    "missing title": ("add_task", {"user_id": "USER"}, 400),
    "task id not a number": ("complete_task", {"user_id": "USER", "task_id": "abc"}, 400),
    "unknown status": ("list_tasks", {"user_id": "USER", "status": "done"}, 400),
    "update without fields": ("update_task", {"user_id": "USER", "task_id": 1}, 400),
    "missing task": ("complete_task", {"user_id": "USER", "task_id": 987654321}, 404),
    "missing task to delete": ("delete_task", {"user_id": "USER", "task_id": 987654321}, 404),
    "another user": ("list_tasks", {"user_id": "bob"}, 403),
}


@pytest.mark.parametrize("case", ENVELOPE_CASES)
async def test_tool_endpoint_returns_the_mcp_envelope_with_the_error_code_as_http_status(
    server: ServerProcess, http: httpx.AsyncClient, user: str, mode: str, case: str
) -> None:
    tool, template, status = ENVELOPE_CASES[case]
    arguments = {key: user if value == "USER" else value for key, value in template.items()}

    response = await http.post(f"/tools/{tool}", json=arguments)
    async with mcp_client(server.mcp_url, issue_token(user), mode=mode) as client:
        over_mcp = await call(client, tool, **arguments)

    assert response.status_code == status, response.text
    assert response.json() == over_mcp
    if status != 200:
        error_envelope(response, status)


async def test_a_task_added_over_http_is_the_task_mcp_lists(
    server: ServerProcess, http: httpx.AsyncClient, user: str, mode: str
) -> None:
    added = await http.post(
        "/tools/add_task", json={"user_id": user, "title": "Over HTTP", "description": None}
    )
    assert added.status_code == 200, added.text
    async with mcp_client(server.mcp_url, issue_token(user), mode=mode) as client:
        listed = await call(client, "list_tasks", user_id=user)
    assert listed["data"] == page([added.json()["data"]])


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"user_id": "alice",', b"\xff\xfe\x00", b"{'user_id': 'alice'}"],
    ids=["garbage", "truncated", "not utf-8", "single quotes"],
)
async def test_a_body_that_is_not_json_is_a_400_envelope(
    server: ServerProcess, http: httpx.AsyncClient, user: str, body: bytes
) -> None:
    response = await http.post("/tools/add_task", content=body, headers={"Content-Type": "application/json"})
    refusal = error_envelope(response, 400)
    assert "JSON" in refusal["message"]
    await assert_still_serving(server, http, user)


@pytest.mark.parametrize(
    "body",
    [[], ["alice"], "alice", 42, None, True],
    ids=["empty list", "list", "string", "number", "null", "bool"],
)
async def test_a_body_that_is_not_an_object_is_a_400_envelope(
    server: ServerProcess, http: httpx.AsyncClient, user: str, body: Any
) -> None:
    response = await http.post(
        "/tools/list_tasks", content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    refusal = error_envelope(response, 400)
    assert "object" in refusal["message"]
    await assert_still_serving(server, http, user)


async def test_an_unknown_tool_is_a_404_envelope_naming_the_tools(
    server: ServerProcess, http: httpx.AsyncClient, user: str
) -> None:
    response = await http.post("/tools/drop_database", json={"user_id": user})
    refusal = error_envelope(response, 404)
    assert "drop_database" in refusal["message"]
    for name in TOOL_NAMES:
        assert name in refusal["message"]
    await assert_still_serving(server, http, user)


async def test_a_body_just_under_the_limit_is_read_and_validated(
    server: ServerProcess, http: httpx.AsyncClient, user: str
) -> None:
    title = "x" * (MAX_REQUEST_BYTES - 1000)
    response = await http.post("/tools/add_task", json={"user_id": user, "title": title})
    error_envelope(response, 400)  # read, and refused for the title's length, not the body's size


@pytest.mark.parametrize("path", ["/tools/add_task", "/mcp"])
@pytest.mark.parametrize("chunked", [False, True], ids=["with content-length", "chunked"])
async def test_a_body_over_the_size_limit_is_refused_with_413(
    server: ServerProcess, http: httpx.AsyncClient, user: str, path: str, chunked: bool
) -> None:
    planted = f"huge-{secrets.token_hex(4)}"
    payload = json.dumps({"user_id": user, "title": planted, "description": "d" * (2 * MAX_REQUEST_BYTES)})
    if path == "/mcp":
        payload = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "add_task", "arguments": json.loads(payload)},
            }
        )
    data = payload.encode()

    async def in_chunks() -> AsyncIterator[bytes]:
        # Without a Content-Length the server can only find out by counting what arrives.
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    response = await http.post(path, content=in_chunks() if chunked else data, headers=MCP_HEADERS)
    assert response.status_code == 413, response.text
    listed = await http.post("/tools/list_tasks", json={"user_id": user})
    assert listed.json()["data"]["count"] == 0
    await assert_still_serving(server, http, user)


def _rpc(method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": method}
    if params is not None:
        message["params"] = params
    return message


def _modern(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return _rpc(method, {**(params or {}), "_meta": MODERN_META})


MODERN_HEADERS = {"MCP-Protocol-Version": MODERN}

# name -> (body, extra headers, the JSON-RPC error code it must carry, or None for any)
MALFORMED_RPC: dict[str, tuple[bytes | Any, dict[str, str], int | None]] = {
    "not json": (b"this is not json", {}, -32700),
    "truncated json": (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"', {}, -32700),
    "not utf-8": (b"\xff\xfe\xfd", {}, None),
    "empty body": (b"", {}, None),
    "wrong jsonrpc version": ({**_rpc("tools/list"), "jsonrpc": "1.0"}, {}, None),
    "no jsonrpc member": ({"id": 1, "method": "tools/list"}, {}, None),
    "unknown method": (_rpc("tasks/drop_all", {}), {}, -32601),
    "tools/call without params": (_rpc("tools/call"), {}, None),
    "tools/call with string params": (_rpc("tools/call", "add_task"), {}, None),
    "tools/call with list arguments": (_rpc("tools/call", {"name": "add_task", "arguments": [1]}), {}, None),
    "method not a string": ({**_rpc("tools/list"), "method": 42}, {}, None),
    "empty object": ({}, {}, None),
    "a bare number": (42, {}, None),
    "a batch": ([_rpc("tools/list")], {}, None),
    "modern without _meta": (_rpc("tools/list", {}), {**MODERN_HEADERS, "Mcp-Method": "tools/list"}, None),
    "modern unknown method": (
        _modern("tasks/drop_all"),
        {**MODERN_HEADERS, "Mcp-Method": "tasks/drop_all"},
        -32601,
    ),
    "modern header mismatch": (_modern("tools/list"), {**MODERN_HEADERS, "Mcp-Method": "tools/call"}, None),
    "modern unsupported version": (
        _rpc(
            "tools/list", {"_meta": {**MODERN_META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}}
        ),
        {"MCP-Protocol-Version": "2099-01-01", "Mcp-Method": "tools/list"},
        None,
    ),
    "modern tools/call without a name": (
        _modern("tools/call"),
        {**MODERN_HEADERS, "Mcp-Method": "tools/call"},
        None,
    ),
}


@pytest.mark.parametrize("case", MALFORMED_RPC)
async def test_malformed_json_rpc_gets_an_error_never_a_5xx(
    server: ServerProcess, http: httpx.AsyncClient, user: str, case: str
) -> None:
    body, headers, expected_code = MALFORMED_RPC[case]
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await http.post("/mcp", content=content, headers={**MCP_HEADERS, **headers})

    assert response.status_code < 500, response.text
    assert 400 <= response.status_code < 500 or response.status_code == 200, response.status_code
    answer = response.json()
    assert answer["jsonrpc"] == "2.0"
    assert isinstance(answer["error"]["code"], int), answer
    assert "Traceback" not in response.text
    if expected_code is not None:
        assert answer["error"]["code"] == expected_code, answer
    await assert_still_serving(server, http, user)


async def test_an_unknown_tool_over_mcp_is_invalid_params_and_the_server_keeps_serving(
    server: ServerProcess, http: httpx.AsyncClient, user: str, mode: str
) -> None:
    async with mcp_client(server.mcp_url, issue_token(user), mode=mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("drop_database", {"user_id": user})
    assert raised.value.code == -32602
    assert "list_tasks" in raised.value.message
    await assert_still_serving(server, http, user)


@pytest.mark.parametrize("path", ["/mcp", "/tools/list_tasks"])
async def test_a_host_header_that_is_not_this_machine_gets_421(
    server: ServerProcess, http: httpx.AsyncClient, user: str, path: str
) -> None:
    body = _rpc("tools/list") if path == "/mcp" else {"user_id": user}
    response = await http.post(path, json=body, headers={**MCP_HEADERS, "Host": ALLOWED_HOST})
    assert response.status_code == 421, response.text
    await assert_still_serving(server, http, user)


@pytest.mark.parametrize("path", ["/mcp", "/tools/list_tasks"])
async def test_an_origin_that_is_not_this_machine_gets_403(
    server: ServerProcess, http: httpx.AsyncClient, user: str, path: str
) -> None:
    body = _rpc("tools/list") if path == "/mcp" else {"user_id": user}
    response = await http.post(path, json=body, headers={**MCP_HEADERS, "Origin": "http://evil.example.com"})
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("path", ["/mcp", "/tools/list_tasks"])
async def test_configured_allowed_hosts_and_origins_are_admitted_and_others_still_refused(
    proxied_server: ServerProcess, user: str, path: str
) -> None:
    body = _rpc("tools/list") if path == "/mcp" else {"user_id": user}
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {issue_token(user)}"}
    async with httpx.AsyncClient(base_url=proxied_server.base_url, timeout=HTTP_TIMEOUT_SECONDS) as http:
        admitted = await http.post(path, json=body, headers={**headers, "Host": ALLOWED_HOST})
        with_origin = await http.post(
            path, json=body, headers={**headers, "Host": ALLOWED_HOST, "Origin": ALLOWED_ORIGIN}
        )
        loopback = await http.post(path, json=body, headers=headers)
        other_host = await http.post(path, json=body, headers={**headers, "Host": "evil.example.com"})
        other_origin = await http.post(
            path, json=body, headers={**headers, "Host": ALLOWED_HOST, "Origin": "https://evil.example.com"}
        )
    assert admitted.status_code == 200, admitted.text
    assert with_origin.status_code == 200, with_origin.text
    assert loopback.status_code == 200, loopback.text
    assert other_host.status_code == 421, other_host.text
    assert other_origin.status_code == 403, other_origin.text
    if path == "/mcp":
        assert "result" in admitted.json()
    else:
        assert admitted.json()["status"] == "success"


async def test_the_sdk_client_works_through_an_allowed_host_name(
    proxied_server: ServerProcess, user: str
) -> None:
    # The client connects to 127.0.0.1 but names the proxy's host, as a reverse proxy would.
    headers = {"Authorization": f"Bearer {issue_token(user)}", "Host": ALLOWED_HOST}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=HTTP_TIMEOUT_SECONDS) as transport,
        Client(streamable_http_client(proxied_server.mcp_url, http_client=transport), mode=MODERN) as client,
    ):
        result = await call(client, "add_task", user_id=user, title="Through the proxy")
    assert result["status"] == "success"
